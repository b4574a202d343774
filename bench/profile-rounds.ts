/**
 * Where a broker benchmark's rounds wait (not part of `npm run bench`): with the nodes profiled,
 *   OUTPOST_TEST_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" npm run bench -- mqtt 2> ERR
 *   node --import tsx bench/profile-rounds.ts ERR DIR
 * prints, for each round bench/brokers.ts announced on standard error (its start and end on the
 * monotonic clock, which V8's profiles use too), how long node A's and node B's event loops were
 * busy, and for how long both waited at once: the round's stalls (a PUBACK or an ACK held back
 * on the way, a write waiting for the thread pool), which a busy machine does not hide the way it
 * hides throughput. The profiles are taken in the order the processes started: central, A, B.
 */
import fs from 'node:fs'
import path from 'node:path'

interface Profile { nodes: { id: number; callFrame: { functionName: string } }[]; startTime: number; samples: number[]; timeDeltas: number[] }

/** Per millisecond of [t0, t1) (µs), the share of it the process's event loop was busy. */
function busyPerMs(file: string, t0: number, t1: number): Float64Array {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile
  const idle = new Set(p.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id))
  const bins = new Float64Array(Math.ceil((t1 - t0) / 1000) + 1)
  let t = p.startTime
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]!
    const next = t + (p.timeDeltas[i + 1] ?? 0)
    if (idle.has(p.samples[i]!)) continue
    for (let a = Math.max(t, t0); a < Math.min(next, t1);) {
      const b = Math.floor((a - t0) / 1000)
      const e = Math.min(next, t1, t0 + (b + 1) * 1000)
      bins[b]! += (e - a) / 1000
      a = e
    }
  }
  return bins
}

const [errFile, dir] = process.argv.slice(2)
if (errFile === undefined || dir === undefined) {
  process.stderr.write('usage: node --import tsx bench/profile-rounds.ts BENCH_STDERR PROFILE_DIR\n')
  process.exit(2)
}
const rounds = [...fs.readFileSync(errFile, 'utf8').matchAll(/bench: (\w+) (\w+) round (\d+)\.\.(\d+)/g)]
const profiles = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))
  .sort((x, y) => Number(x.split('.')[3]) - Number(y.split('.')[3])).map((f) => path.join(dir, f))
for (const [, kind, name, from, to] of rounds) {
  const t0 = Number(from)
  const t1 = Number(to)
  const a = busyPerMs(profiles[1]!, t0, t1)
  const b = busyPerMs(profiles[2]!, t0, t1)
  let busyA = 0
  let busyB = 0
  let both = 0
  for (let i = 0; i < a.length; i++) {
    const x = Math.min(1, a[i]!)
    const y = Math.min(1, b[i]!)
    busyA += x
    busyB += y
    both += (1 - x) * (1 - y)
  }
  const wall = (t1 - t0) / 1000
  console.log(`${kind} ${name}: ${wall.toFixed(0)} ms, A busy ${busyA.toFixed(0)} ms, B busy ${busyB.toFixed(0)} ms, both waiting ${both.toFixed(0)} ms (${((100 * both) / wall).toFixed(0)}%)`)
}
