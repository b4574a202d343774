/**
 * `npm run bench -- fleet`: a job over N real agents (BENCH_FLEET_N, default 12) on one hub,
 * from submit at central to every node's final reply stored (kept by reply.job, synced, and the
 * job's record ended). The baseline, measured in the same run on the same agents, is a plain
 * fan-out send of the same message with its replies watched (no job record, nothing kept).
 * Each figure is the median of BENCH_FLEET_RUNS (default 5) runs; the message is cli.run true.
 */
import net from 'node:net'
import { Cluster, editYaml, section } from '../test/fixtures/cluster'
import type { BenchResult } from './result'

const N = Number(process.env.BENCH_FLEET_N ?? 12)
const RUNS = Number(process.env.BENCH_FLEET_RUNS ?? 5)
const round = (n: number): number => Number(n.toPrecision(4))
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** One request on central's socket; resolves when `done` says the answer is complete. */
function ask(socket: string, request: unknown, done: (obj: Record<string, unknown>) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socket)
    let buf = ''
    s.setEncoding('utf8')
    s.on('connect', () => s.write(JSON.stringify(request) + '\n'))
    s.on('data', (d: string) => {
      buf += d
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const obj = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>
        buf = buf.slice(nl + 1)
        if (obj.error !== undefined) { s.destroy(); reject(new Error(JSON.stringify(obj.error))); return }
        if (done(obj)) { s.destroy(); resolve(); return }
      }
    })
    s.on('error', reject)
  })
}

export async function* fleetBenchmarks(): AsyncIterable<BenchResult> {
  const names = Array.from({ length: N }, (_, i) => `n${String(i + 1).padStart(2, '0')}`)
  const c = await Cluster.create(names, { log: { level: 'warn' } })
  try {
    for (const [i, n] of names.entries()) editYaml(c.node(n).config, (d) => { section(d, 'node').labels = { role: i % 2 === 0 ? 'db' : 'web' } })
    await c.startHub()
    await c.start('central')
    for (const n of names) await c.start(n)
    const socket = c.node('central').socket
    // Central must know every node's labels before the selector can pick them.
    for (const end = Date.now() + 60_000; ;) {
      let listed: { name: string; labels?: Record<string, string> }[] = []
      await ask(socket, { op: 'nodes' }, (o) => { listed = o.nodes as typeof listed; return true })
      if (names.every((n) => listed.find((x) => x.name === n)?.labels !== undefined)) break
      if (Date.now() > end) throw new Error('the fleet did not say hello')
      await new Promise((r) => setTimeout(r, 100))
    }
    const message = { toNodes: ['role in (db,web)'], method: 'cli.run', methodArgs: ['true'] }
    const job = async (options: Record<string, unknown>): Promise<number> => {
      const t = performance.now()
      await ask(socket, { op: 'job.create', message, options, watch: true }, (o) => o.done === true)
      return performance.now() - t
    }
    const plain = async (): Promise<number> => {
      const t = performance.now()
      await ask(socket, { op: 'send', messages: [message], wait: true }, (o) => o.done === true)
      return performance.now() - t
    }
    await plain() // warm up: shells, page cache
    const base: number[] = []
    const all: number[] = []
    const batched: number[] = []
    for (let r = 0; r < RUNS; r++) {
      base.push(await plain())
      all.push(await job({}))
      batched.push(await job({ batch: '25%' }))
    }
    const b = median(base)
    for (const [name, xs] of [[`fleet job to ${N} agents, all at once: submit to every reply stored`, all], [`fleet job to ${N} agents, --batch 25%: submit to every reply stored`, batched]] as const) {
      const v = median(xs)
      yield { name, value: round(v), unit: 'ms', baseline: round(b), ratio: round(b / v), note: `baseline: plain fan-out send to the same ${N} agents with replies watched; median of ${RUNS}` }
    }
  } finally {
    await c.destroy()
  }
}
