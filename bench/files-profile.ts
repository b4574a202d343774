/**
 * Profiling aid for the file push (not a benchmark): one push of BENCH_FILE_MB through the hub,
 * with OUTPOST_TEST_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") given to every process.
 *   OUTPOST_TEST_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" node --import tsx bench/files-profile.ts
 * Prints each process's pid (for strace -c -p PID), then the seconds of the push, the CPU seconds
 * each process spent (start-up included; `sys`: the kernel's part) and the receiver's peak RSS (MB); with --trace-gc among
 * the flags, each process's scavenges and mark-compacts.
 */
import fs from 'node:fs'
import path from 'node:path'
import { Cluster } from '../test/fixtures/cluster'
import { cp, randomFile } from '../test/files/helpers'

const MB = 1024 * 1024
const round = (n: number): number => Math.round(n * 1000) / 1000

/** User + system CPU seconds of a process so far (/proc/PID/stat, clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return round((Number(f[11]) + Number(f[12])) / 100)
}

/** The system (kernel) part of cpuSeconds. */
function sysSeconds(pid: number): number {
  return round(Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[12]) / 100)
}

function rssPeak(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
}
const SIZE = Number(process.env.BENCH_FILE_MB ?? 100) * MB
async function main(): Promise<void> {
const c = await Cluster.create(['ship1'], { files: { chunkBytes: Number(process.env.BENCH_FILE_CHUNK ?? 262144), window: Number(process.env.BENCH_FILE_WINDOW ?? 16) } })
try {
  await c.startHub()
  await c.start('central')
  await c.start('ship1')
  const src = path.join(c.dir, 'big.bin')
  randomFile(src, SIZE)
  console.log(JSON.stringify({ hub: c.hub!.child.pid, central: c.node('central').proc!.child.pid, ship1: c.node('ship1').proc!.child.pid }))
  if (process.env.PROFILE_PAUSE) await new Promise((r) => setTimeout(r, Number(process.env.PROFILE_PAUSE)))
  const t0 = performance.now()
  const r = await cp(c, 'central', [src, `ship1:${path.join(c.node('ship1').dataDir, 'files')}/a.bin`], 1_800_000)
  const secs = (performance.now() - t0) / 1000
  if (r.code !== 0) throw new Error(`cp failed: ${r.stderr}`)
  const pids = { hub: c.hub!.child.pid!, central: c.node('central').proc!.child.pid!, ship1: c.node('ship1').proc!.child.pid! }
  const cpu = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]))
  const sys = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, sysSeconds(pid)]))
  console.log(JSON.stringify({ secs: round(secs), mbps: round(SIZE / MB / secs), cpu, sys, rssPeakShip1: rssPeak(pids.ship1) }))
  // With --trace-gc in OUTPOST_TEST_NODE_ARGS: each process's collections (start-up included).
  const outputs = { hub: c.hub!.output, central: c.node('central').proc!.output, ship1: c.node('ship1').proc!.output }
  const count = (s: string, re: RegExp): number => s.split('\n').filter((l) => re.test(l)).length
  if (outputs.hub.includes('Scavenge')) {
    // PROFILE_GC_SHOW=hub (or central, ship1): that process's collections, line by line.
    const show = outputs[process.env.PROFILE_GC_SHOW as keyof typeof outputs] ?? ''
    for (const l of show.split('\n')) if (/: (Scavenge|Mark-Compact)/.test(l)) console.log(l)
    console.log(JSON.stringify({ gc: Object.fromEntries(Object.entries(outputs).map(([k, s]) => [k, { scavenge: count(s, /: Scavenge/), markCompact: count(s, /: Mark-Compact/) }])) }))
  }
} finally {
  await c.destroy()
}
}

void main()
