/**
 * `npm run bench -- tcp`: node A → node B through the hub, all separate processes with their
 * durable stores, against a raw framed-MessagePack echo over loopback in the same run; the
 * node.ping round trip; the idle RSS of an agent. The same stream signed (nodeS with
 * api.signingKey → nodeC, which requires and checks the signature) against the unsigned one.
 * The A→B figures are of freshly started processes (their first round); `.warm` ones are of a
 * second round on the same processes.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { encode } from '@msgpack/msgpack'
import { encodeFrame, FrameDecoder } from '../src/wire/framing'
import { Cluster, editYaml, section, sendVia, status } from '../test/fixtures/cluster'
import { CpuMeter, cpuMsOf } from './proc-stats'
import { generateKeyPair, publicKeyText, writeKeyFile } from '../src/keys'
import type { BenchResult } from './result'

const N = 20_000
/** OUTPOST_BENCH_BIN: the nodes run another build's bin/outpost.cjs (an A/B against main; the hub stays this checkout's). */
/** OUTPOST_BENCH_EXE: the hub and the nodes run a single binary (dist/outpost-linux-x64: what operators run, on its own Node). */
const exe = process.env.OUTPOST_BENCH_EXE || undefined
const bin = exe ?? (process.env.OUTPOST_BENCH_BIN || undefined)
const runs = exe !== undefined ? `hub and nodes: ${exe}` : `nodes: ${bin ?? 'this checkout'} under node ${process.version}`
const round = (n: number, d = 3): number => Number(n.toPrecision(d + 2))
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Baseline: a window of 1000 framed 200-byte messages echoed by a separate process; msg/s and CPU µs per message (both ends). */
async function echoBaseline(count: number): Promise<{ rate: number; cpuUs: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'echo-server.ts')], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))))
  const sock = net.connect(port, '127.0.0.1')
  sock.setNoDelay(true)
  await new Promise((r) => sock.once('connect', r))
  const frame = encodeFrame({ t: 'msg', id: '01HZZZZZZZZZZZZZZZZZZZZZZZ', to: 'nodeB', b: encode({ method: 'node.pong', data: 'x'.repeat(120) }) })
  const dec = new FrameDecoder()
  const started = performance.now()
  const cpu0 = cpuMsOf(child.pid!) + process.cpuUsage().user / 1000 + process.cpuUsage().system / 1000
  let sent = 0
  let got = 0
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      sock.cork()
      while (sent < count && sent - got < 1000) { sock.write(frame); sent++ }
      process.nextTick(() => sock.uncork())
    }
    sock.on('data', (chunk: Buffer) => {
      got += dec.push(chunk).length
      if (got >= count) resolve()
      else pump()
    })
    pump()
  })
  const rate = count / ((performance.now() - started) / 1000)
  const used = process.cpuUsage()
  const cpuUs = ((cpuMsOf(child.pid!) + used.user / 1000 + used.system / 1000 - cpu0) * 1000) / count
  sock.destroy()
  child.kill()
  return { rate, cpuUs }
}

/** Sequential node.ping round trips on one open socket: submit → reply, in ms. */
function pings(socket: string, count: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socket)
    const out: number[] = []
    let t = 0
    let buf = ''
    const next = (): void => {
      if (out.length === count) { s.destroy(); resolve(out); return }
      t = performance.now()
      s.write(JSON.stringify({ op: 'send', messages: [{ toNode: 'central', method: 'node.ping', replyMethod: 'node.pong' }] }) + '\n')
    }
    s.setEncoding('utf8')
    s.on('connect', next)
    s.on('data', (d: string) => {
      buf += d
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (line.includes('"reply"')) {
        if (line.includes('"error"')) { s.destroy(); reject(new Error(`node.ping failed: ${line}`)); return }
        out.push(performance.now() - t)
      }
        else if (line.includes('"done"')) next()
      }
    })
    s.on('error', reject)
  })
}

/** "A 40 / 20, hub …": µs a message of each process's main thread / its other threads. */
function threads(th: Record<string, { main: number; other: number }>): string {
  return Object.entries(th).map(([k, v]) => `${k} ${v.main} / ${v.other}`).join(', ')
}

function rssOf(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
}

export async function* tcpBenchmarks(): AsyncIterable<BenchResult> {
  // Any node may ping (and deliver the bench's node.pong messages): the ping below runs on
  // central rather than being refused by the default methods.allow.
  const methods = { allow: [{ from: ['$central', '$self'], methods: ['*'] }, { from: ['*'], methods: ['reply.*', 'error.log', 'node.hello', 'node.ping', 'node.pong'] }] }
  const c = await Cluster.create(['nodeA', 'nodeB', 'nodeS', 'nodeC'], { log: { level: 'warn' }, hello: { interval: 30 }, delivery: { ackTimeout: 30, retries: 3, ttl: 3600 }, methods })
  // nodeS signs what its API takes with an operator key; nodeC runs node.pong only signed by it.
  const ops = generateKeyPair()
  const keyFile = path.join(c.dir, 'ops.key')
  writeKeyFile(keyFile, ops)
  editYaml(c.node('nodeS').config, (doc) => { section(doc, 'api').signingKey = keyFile })
  editYaml(c.node('nodeC').config, (doc) => { section(doc, 'security').requireSignatures = ['node.pong']; section(doc, 'security').trustedKeys = [{ name: 'ops', publicKey: publicKeyText(ops.publicKey) }] })
  try {
    await c.startHub(exe)
    await c.start('central', true, {}, bin)
    const a = await c.start('nodeA', true, {}, bin)
    const b = await c.start('nodeB', true, {}, bin)
    await sleep(3000)
    const idle = rssOf(a.child.pid!)
    yield { name: 'agent.idle.rss', value: round(idle), unit: 'MB', baseline: 75, ratio: round(75 / idle, 2), note: 'VmRSS of a freshly started, connected, idle agent; baseline: the 75 MB target' }
    // nodeB must accept nodeA's messages: node.pong is a sink that any node may deliver.
    const msg = { toNode: 'nodeB', method: 'node.pong', data: 'x'.repeat(120) }
    await sendVia(c.node('nodeA').socket, [msg], { wait: false })
    while ((await status(c.node('nodeA').socket)).outbox.count > 0) await sleep(20)

    const { rate: base, cpuUs: baseCpu } = await echoBaseline(N)
    const cpu = new CpuMeter({ A: a.child.pid!, hub: c.hub!.child.pid!, B: b.child.pid! })
    const started = performance.now()
    await sendVia(c.node('nodeA').socket, Array.from({ length: N }, () => msg), { wait: false, ms: 120_000 })
    while ((await status(c.node('nodeA').socket)).outbox.count > 0) await sleep(10)
    const rate = N / ((performance.now() - started) / 1000)
    yield {
      name: 'tcp.messages.AtoB', value: round(rate), unit: 'msg/s', baseline: round(base), ratio: round(rate / base, 2),
      note: `${N} acknowledged 200-byte messages A→hub→B, durable on both ends, until A's outbox is empty; baseline: framed MessagePack echo, window 1000`,
    }
    const us = cpu.perMessage(N)
    const th = cpu.threadsPerMessage(N)
    yield {
      name: 'tcp.cpu.perMessage', value: us.total!, unit: 'µs', baseline: round(baseCpu), ratio: round(baseCpu / us.total!, 2),
      note: `CPU (user + system, /proc/PID/stat) per message over the run above: A ${us.A} µs, hub ${us.hub} µs, B ${us.B} µs; baseline: the echo's two processes per echoed message; main thread / other threads (V8's compiler and GC workers): ${threads(th)}; ${runs}`,
    }

    // The same, signed at nodeS (api.signingKey) and checked at nodeC before it is recorded as run.
    const s = await c.start('nodeS', true, {}, bin)
    const cNode = await c.start('nodeC', true, {}, bin)
    const signedMsg = { ...msg, toNode: 'nodeC' }
    /** One unsigned round A→B: its rate, and CPU per message of A, the hub and B. */
    const unsignedRound = async (): Promise<{ rate: number; us: Record<string, number>; th: ReturnType<CpuMeter['threadsPerMessage']> }> => {
      const meter = new CpuMeter({ A: a.child.pid!, hub: c.hub!.child.pid!, B: b.child.pid! })
      const t = performance.now()
      await sendVia(c.node('nodeA').socket, Array.from({ length: N }, () => msg), { wait: false, ms: 120_000 })
      while ((await status(c.node('nodeA').socket)).outbox.count > 0) await sleep(10)
      return { rate: N / ((performance.now() - t) / 1000), us: meter.perMessage(N), th: meter.threadsPerMessage(N) }
    }
    const warm = await sendVia(c.node('nodeS').socket, [{ ...signedMsg, method: 'node.ping', replyMethod: 'node.pong' }])
    if (warm.replies[0]?.error !== undefined) throw new Error(`signed warm-up failed: ${JSON.stringify(warm.replies[0])}`)
    // S and C are fresh processes while A and B have run 20k already: a first signed round, not
    // timed, warms them alike (JIT, heap, journal files), then an unsigned round before and one
    // after the timed signed round make the baseline.
    await sendVia(c.node('nodeS').socket, Array.from({ length: N }, () => signedMsg), { wait: false, ms: 120_000 })
    while ((await status(c.node('nodeS').socket)).outbox.count > 0) await sleep(10)
    const before = await unsignedRound()
    // The same 20k A→B on the same processes once more (the second round they run): what warm
    // processes do, beside the first-round figures above, which include a fresh process's JIT
    // compiling and heap growth.
    yield {
      name: 'tcp.messages.AtoB.warm', value: round(before.rate), unit: 'msg/s', baseline: round(base), ratio: round(before.rate / base, 2),
      note: `the second round of ${N} on the same A, hub and B (warm: the first is tcp.messages.AtoB); baseline: the echo above`,
    }
    yield {
      name: 'tcp.cpu.perMessage.warm', value: before.us.total!, unit: 'µs', baseline: round(baseCpu), ratio: round(baseCpu / before.us.total!, 2),
      note: `CPU per message of that second round: A ${before.us.A} µs, hub ${before.us.hub} µs, B ${before.us.B} µs; main thread / other threads: ${threads(before.th)}; baseline: the echo's, as for tcp.cpu.perMessage`,
    }
    const signedCpu = new CpuMeter({ S: s.child.pid!, hub: c.hub!.child.pid!, C: cNode.child.pid! })
    const t0 = performance.now()
    await sendVia(c.node('nodeS').socket, Array.from({ length: N }, () => signedMsg), { wait: false, ms: 120_000 })
    while ((await status(c.node('nodeS').socket)).outbox.count > 0) await sleep(10)
    const signedRate = N / ((performance.now() - t0) / 1000)
    const signedUs = signedCpu.perMessage(N)
    // The unsigned stream once more, so that a machine getting busier or quieter meanwhile weighs on both sides alike.
    const after = await unsignedRound()
    const unsigned = (before.rate + after.rate) / 2
    const unsignedUs = { A: (before.us.A! + after.us.A!) / 2, hub: (before.us.hub! + after.us.hub!) / 2, B: (before.us.B! + after.us.B!) / 2, total: (before.us.total! + after.us.total!) / 2 }
    yield {
      name: 'tcp.messages.signed', value: round(signedRate), unit: 'msg/s', baseline: round(unsigned), ratio: round(signedRate / unsigned, 2),
      note: `the same ${N} messages S→hub→C, signed at S (api.signingKey) and checked at C (security.requireSignatures), after a first signed round to warm S and C; baseline: the unsigned A→B stream run just before and just after it, averaged; target ratio ≥ 0.8`,
    }
    // CPU rather than time: what the signatures cost whatever else the machine is doing (the run is CPU-bound on 2 cores).
    yield {
      name: 'tcp.cpu.perMessage.signed', value: signedUs.total!, unit: 'µs', baseline: unsignedUs.total!, ratio: round(unsignedUs.total! / signedUs.total!, 2),
      note: `CPU per message of the signed run: S ${signedUs.S} µs, hub ${signedUs.hub} µs, C ${signedUs.C} µs; baseline: the unsigned runs around it, A ${round(unsignedUs.A)} µs, hub ${round(unsignedUs.hub)} µs, B ${round(unsignedUs.B)} µs; ratio: unsigned / signed`,
    }
    const refused = fs.readFileSync(path.join(c.node('nodeC').dataDir, 'audit.log'), 'utf8').split('\n').filter((l) => l.includes('"denied"')).length
    if (refused > 0) throw new Error(`nodeC refused ${refused} signed messages: the signed figure would not be what it says`)

    // Round trips over one open API connection (what a tool that keeps its socket sees).
    const rtts = await pings(c.node('nodeA').socket, 300)
    rtts.sort((x, y) => x - y)
    const p = (q: number): number => rtts[Math.min(rtts.length - 1, Math.floor(q * rtts.length))]!
    yield { name: 'tcp.ping.p50', value: round(p(0.5)), unit: 'ms', baseline: 3, ratio: round(3 / p(0.5), 2), note: 'node.ping A→hub→central→hub→A, 300 sequential over one API connection, from submit to reply; baseline: the 3 ms target' }
    yield { name: 'tcp.ping.p99', value: round(p(0.99)), unit: 'ms', baseline: null, ratio: null }

    await sleep(3000)
    yield { name: 'agent.rss.afterLoad', value: round(rssOf(a.child.pid!)), unit: 'MB', baseline: null, ratio: null, note: 'VmRSS of node A, idle again after the runs above (V8 and WebAssembly keep what they grew)' }
  } finally {
    await c.destroy()
  }
}
