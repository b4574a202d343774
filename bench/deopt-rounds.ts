/**
 * Node A's (the sender's) deopts and TurboFan compiles per round (not part of `npm run bench`):
 *   node --import tsx bench/deopt-rounds.ts [ROUNDS] [BIN]
 * runs the tcp bench's A→hub→B stream (20k 200-byte node.pong messages a round) with only A under
 * `--trace-opt --trace-deopt` (DEOPT_VERBOSE=1: `--trace-deopt-verbose` too; DEOPT_DUMP=FILE: A's whole trace), and prints per round: A's CPU µs a message (main / other threads),
 * its completed compiles (first ones, after a deopt, again without one) and its deopts by function and reason. BIN: another build's
 * bin/outpost.cjs for A and B (an A/B against main). DEOPT_HELLO: the nodes' hello.interval in seconds (30, as in
 * the bench; a hello during a round brings a burst of "wrong map" deopts in A), DEOPT_FLAGS: more V8 flags for A.
 */
import fs from 'node:fs'
import { Cluster, sendVia, status } from '../test/fixtures/cluster'
import { CpuMeter } from './proc-stats'

const N = 20_000
const rounds = Number(process.argv[2] ?? 4)
const bin = process.argv[3] || undefined
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Functions (by SharedFunctionInfo) TurboFan has completed before, and those deoptimised since their last compile. */
const compiledBefore = new Set<string>()
const deoptedSince = new Set<string>()

const bundles = new Map<string, string[]>()
/** The bundle's module ("src/x.ts") that holds line `line` of `file`. */
function moduleAt(file: string, line: number): string {
  if (!file.startsWith('/')) return file
  let lines = bundles.get(file)
  if (lines === undefined) bundles.set(file, lines = fs.readFileSync(file, 'utf8').split('\n'))
  for (let j = line - 1; j >= 0; j--) if (/^\/\/ (src|node_modules)\//.test(lines[j]!)) return lines[j]!.slice(3)
  return file
}

interface Round {
  /** Completed TurboFan compiles: of functions never compiled before, again after a deopt, again without one (OSR code dropped, closures). */
  first: number
  afterDeopt: number
  again: number
  /** Their "took" times summed (prepare + execute + finalize, wall clock: inflated on a loaded machine). */
  ms: number
  /** Deopts by "function | reason | kind [| module:bundle line]". */
  deopts: Map<string, number>
}

function summarise(text: string): Round {
  const round: Round = { first: 0, afterDeopt: 0, again: 0, ms: 0, deopts: new Map() }
  // "[bailout (kind: deopt-eager, reason: wrong map): begin. deoptimizing 0x.. <JSFunction stampInto (sfi = 0x..)>, ..."; with
  // DEOPT_VERBOSE the next line says where: ";;; deoptimize at <…/dist/outpost.cjs:LINE:COL>" (mapped to the bundle's
  // module comment, "// src/….ts", above it). "[completed compiling 0x.. <JSFunction f (sfi = 0x..)> (target TURBOFAN) OSR - took 0.010, 1.481, 0.019 ms]".
  const re = /\[bailout \(kind: ([\w-]+), reason: ([^)]*)\): begin\. deoptimizing [^<]*<JSFunction ([^ >]*) \(sfi = (0x[0-9a-f]+)[^\n]*\n(?:\s*;;; deoptimize at <([^>]*):(\d+):\d+>)?|\[completed compiling [^<]*<JSFunction [^ >]* \(sfi = (0x[0-9a-f]+)\)> \(target TURBOFAN\)[^\n]*? - took ([\d.]+), ([\d.]+), ([\d.]+) ms\]/g
  for (const m of text.matchAll(re)) {
    if (m[4] !== undefined) {
      const at = m[5] !== undefined ? ` | ${moduleAt(m[5], Number(m[6]))}:${m[6]}` : ''
      const key = `${m[3] || '(anon)'} | ${m[2]} | ${m[1]}${at}`
      round.deopts.set(key, (round.deopts.get(key) ?? 0) + 1)
      deoptedSince.add(m[4])
      continue
    }
    const sfi = m[7]!
    round.ms += Number(m[8]) + Number(m[9]) + Number(m[10])
    if (!compiledBefore.has(sfi)) round.first++
    else if (deoptedSince.has(sfi)) round.afterDeopt++
    else round.again++
    compiledBefore.add(sfi)
    deoptedSince.delete(sfi)
  }
  return round
}

async function main(): Promise<void> {
  const methods = { allow: [{ from: ['$central', '$self'], methods: ['*'] }, { from: ['*'], methods: ['reply.*', 'error.log', 'node.hello', 'node.ping', 'node.pong'] }] }
  const c = await Cluster.create(['nodeA', 'nodeB'], { log: { level: 'warn' }, hello: { interval: Number(process.env.DEOPT_HELLO ?? 30) }, delivery: { ackTimeout: 30, retries: 3, ttl: 3600 }, methods })
  try {
    await c.startHub()
    await c.start('central', true, {}, bin)
    const saved = process.env.OUTPOST_TEST_NODE_ARGS
    process.env.OUTPOST_TEST_NODE_ARGS = `${saved ?? ''} --trace-opt --trace-deopt ${process.env.DEOPT_VERBOSE ? '--trace-deopt-verbose' : ''} ${process.env.DEOPT_FLAGS ?? ''}`
    const a = await c.start('nodeA', true, {}, bin)
    if (saved === undefined) delete process.env.OUTPOST_TEST_NODE_ARGS
    else process.env.OUTPOST_TEST_NODE_ARGS = saved
    const b = await c.start('nodeB', true, {}, bin)
    await sleep(3000)
    const msg = { toNode: 'nodeB', method: 'node.pong', data: 'x'.repeat(120) }
    await sendVia(c.node('nodeA').socket, [msg], { wait: false })
    while ((await status(c.node('nodeA').socket)).outbox.count > 0) await sleep(20)
    for (let r = 1; r <= rounds; r++) {
      const from = a.output.length
      a.output += `\n=== round ${r} ===\n`
      const meter = new CpuMeter({ A: a.child.pid!, B: b.child.pid! })
      await sendVia(c.node('nodeA').socket, Array.from({ length: N }, () => msg), { wait: false, ms: 120_000 })
      while ((await status(c.node('nodeA').socket)).outbox.count > 0) await sleep(10)
      const us = meter.perMessage(N)
      const th = meter.threadsPerMessage(N)
      await sleep(200)
      const { first, afterDeopt, again, ms, deopts } = summarise(a.output.slice(from))
      const total = [...deopts.values()].reduce((x, y) => x + y, 0)
      const wrongMap = [...deopts].filter(([k]) => k.includes('| wrong map |')).reduce((x, [, v]) => x + v, 0)
      console.log(`round ${r}: A ${us.A} µs (main ${th.A!.main} / other ${th.A!.other}), B ${us.B} µs; A: ${first + afterDeopt + again} compiles (${first} first, ${afterDeopt} after a deopt, ${again} again without one), ${ms.toFixed(0)} ms wall = ${(ms * 1000 / N).toFixed(1)} µs a message; ${total} deopts, ${wrongMap} of them wrong map`)
      for (const [k, v] of [...deopts].sort((x, y) => y[1] - x[1])) console.log(`  ${v} ${k}`)
    }
    if (process.env.DEOPT_DUMP) fs.writeFileSync(process.env.DEOPT_DUMP, a.output)
  } finally {
    await c.destroy()
  }
}

void main()
