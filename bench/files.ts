/**
 * `npm run bench -- files`: file transfer (issue 15). A push of BENCH_FILE_MB (200) MB from
 * central through the hub to ship1 with `outpost cp`, against the same bytes through a plain
 * TCP relay process on loopback (sender → relay → receiver writing the file and fsyncing it),
 * measured in the same run (and against that relay with its sender a process started for the
 * send, as `outpost cp` is: both clocks then include a process start); the receiver's peak RSS during the push (issue target ≤ 150 MB
 * for 500 MB: BENCH_FILE_MB=500); and the bytes sent again when the hub is restarted three
 * times during a push (target ≤ 10% of the file).
 *
 * Bytes sent again = chunks that reached the receiver more than once (duplicates its
 * dispatcher absorbed, counted from its debug log, and duplicates that reached file.chunk)
 * plus chunks the sender sent again because the commit found them missing.
 *
 * BENCH_FILE_BEFORE_BIN=/path/to/other/bin/outpost.cjs adds the same push by that build's agents
 * (through this build's hub, with BENCH_FILE_BEFORE_CHUNK / _WINDOW, default 131072 × 8, the
 * settings before 2026-12-05) in the same run, for a before/after ratio under the same load;
 * BENCH_FILE_BEFORE_HUB=1 runs that push through that build's hub too (to compare hubs).
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { Cluster, freePort } from '../test/fixtures/cluster'
import { cp, randomFile, transfersOf, until } from '../test/files/helpers'
import type { BenchResult } from './result'

const MB = 1024 * 1024
const SIZE = Number(process.env.BENCH_FILE_MB ?? 200) * MB
/** files.chunkBytes and files.window (default: the config's defaults). */
const CHUNK = Number(process.env.BENCH_FILE_CHUNK ?? 262144)
const WINDOW = Number(process.env.BENCH_FILE_WINDOW ?? 16)
const BEFORE_BIN = process.env.BENCH_FILE_BEFORE_BIN
const round = (n: number, d = 3): number => Number(n.toPrecision(d + 2))

function rssOf(pid: number): number {
  try { return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024 } catch { return 0 }
}

/** User + system CPU seconds of processes so far (/proc/PID/stat, clock ticks of 1/100 s). */
function cpuOf(pids: number[]): number {
  let ticks = 0
  for (const pid of pids) {
    try {
      const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
      ticks += Number(f[11]) + Number(f[12])
    } catch { /* gone */ }
  }
  return ticks / 100
}

/** The hub's and the nodes' pids. */
const pidsOf = (c: Cluster): number[] => [c.hub!.child.pid!, c.node('central').proc!.child.pid!, c.node('ship1').proc!.child.pid!]

/** A relay process: what comes in on the second port goes out to the one connection on the first. */
const RELAY = `
const net = require('node:net')
let recv
let waiting
const out = net.createServer((s) => { recv = s; if (waiting) waiting() })
const inp = net.createServer((s) => { s.pause(); const go = () => { s.pipe(recv); s.resume() }; if (recv) go(); else waiting = go })
out.listen(Number(process.argv[1]), '127.0.0.1', () => inp.listen(Number(process.argv[2]), '127.0.0.1', () => process.stdout.write('ready\\n')))
`

/** The relay's sender as a process of its own, started for the send as `outpost cp` is: file → port. */
const SENDER = `
const net = require('node:net')
const fs = require('node:fs')
const s = net.connect(Number(process.argv[1]), '127.0.0.1', () => fs.createReadStream(process.argv[2]).pipe(s))
`

/**
 * Seconds to send `file` through a plain relay process into `out` (fsynced). `spawned`: the
 * sender is a process started at the clock's start (node -e, SENDER), as `outpost cp` is a
 * process started for the push; else it runs in this process, already started.
 */
async function relayRun(file: string, out: string, spawned = false): Promise<number> {
  const [recvPort, sendPort] = [await freePort(), await freePort()]
  const relay = spawn(process.execPath, ['-e', RELAY, String(recvPort), String(sendPort)], { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    await new Promise<void>((resolve) => relay.stdout!.once('data', () => resolve()))
    const t0 = performance.now()
    await new Promise<void>((resolve, reject) => {
      const r = net.connect(recvPort, '127.0.0.1')
      const w = fs.createWriteStream(out)
      r.pipe(w)
      w.on('finish', () => { const fd = fs.openSync(out, 'r+'); fs.fsyncSync(fd); fs.closeSync(fd); resolve() })
      r.on('error', reject)
      if (spawned) {
        const sender = spawn(process.execPath, ['-e', SENDER, String(sendPort), file], { stdio: ['ignore', 'ignore', 'inherit'] })
        sender.on('exit', (code) => { if (code !== 0) reject(new Error(`the relay's sender exited with ${code}`)) })
      } else {
        const s = net.connect(sendPort, '127.0.0.1', () => fs.createReadStream(file).pipe(s))
        s.on('error', reject)
      }
      // The sender's end reaches the receiver as the relay's pipe ends it.
    })
    return (performance.now() - t0) / 1000
  } finally {
    relay.kill()
  }
}

/**
 * Seconds of a push of `src` (SIZE bytes) by the agents of build `bin`, through this build's hub
 * (with BENCH_FILE_BEFORE_HUB=1, that build's hub too); CPU seconds of all three and of the hub.
 */
async function otherBuildPush(bin: string, src: string): Promise<{ secs: number; cpu: number; hubCpu: number }> {
  const chunkBytes = Number(process.env.BENCH_FILE_BEFORE_CHUNK ?? 131072)
  const window = Number(process.env.BENCH_FILE_BEFORE_WINDOW ?? 8)
  const c = await Cluster.create(['ship1'], { files: { chunkBytes, window } })
  try {
    await c.startHub(process.env.BENCH_FILE_BEFORE_HUB === '1' ? bin : undefined)
    await c.start('central', true, {}, bin)
    await c.start('ship1', true, {}, bin)
    const cpu0 = cpuOf(pidsOf(c))
    const hub0 = cpuOf([c.hub!.child.pid!])
    const t0 = performance.now()
    const r = await cp(c, 'central', [src, `ship1:${path.join(c.node('ship1').dataDir, 'files')}/a.bin`], 1_800_000)
    if (r.code !== 0) throw new Error(`cp by ${bin} failed: ${r.stderr}`)
    return { secs: (performance.now() - t0) / 1000, cpu: cpuOf(pidsOf(c)) - cpu0, hubCpu: cpuOf([c.hub!.child.pid!]) - hub0 }
  } finally {
    await c.destroy()
  }
}

export async function* filesBenchmarks(): AsyncIterable<BenchResult> {
  const c = await Cluster.create(['ship1'], { log: { level: 'debug' }, files: { chunkBytes: CHUNK, window: WINDOW } })
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const src = path.join(c.dir, 'big.bin')
    randomFile(src, SIZE)
    const dir = path.join(c.node('ship1').dataDir, 'files')

    // 1. Throughput, with the receiver's RSS sampled.
    const pid = c.node('ship1').proc!.child.pid!
    let peak = rssOf(pid)
    const sampler = setInterval(() => { peak = Math.max(peak, rssOf(pid)) }, 100)
    const cpu0 = cpuOf(pidsOf(c))
    const hub0 = cpuOf([c.hub!.child.pid!])
    const t0 = performance.now()
    const r = await cp(c, 'central', [src, `ship1:${dir}/a.bin`], 1_800_000)
    const secs = (performance.now() - t0) / 1000
    const cpu = cpuOf(pidsOf(c)) - cpu0
    const hubCpu = cpuOf([c.hub!.child.pid!]) - hub0
    clearInterval(sampler)
    if (r.code !== 0) throw new Error(`cp failed: ${r.stderr}`)
    const base = await relayRun(src, path.join(c.dir, 'relay.bin'))
    fs.rmSync(path.join(c.dir, 'relay.bin'))
    const started = await relayRun(src, path.join(c.dir, 'relay.bin'), true)
    fs.rmSync(path.join(c.dir, 'relay.bin'))
    const rate = SIZE / MB / secs
    const baseRate = SIZE / MB / base
    const startedRate = SIZE / MB / started
    yield { name: `files: ${SIZE / MB} MB push central→hub→ship1 (outpost cp)`, value: round(rate), unit: 'MB/s', baseline: round(baseRate), ratio: round(rate / baseRate), note: `baseline: the same bytes through a plain TCP relay process on loopback, written and fsynced; chunks ${CHUNK} B × window ${WINDOW}` }
    yield { name: `files: the same push against a relay whose sender is a process started for it`, value: round(rate), unit: 'MB/s', baseline: round(startedRate), ratio: round(rate / startedRate), note: 'baseline: the relay above, its sender a node process started at the clock\'s start (as outpost cp is a process started for the push: ~0.15 s of it here), not a part of the bench already running' }
    if (BEFORE_BIN !== undefined) {
      const other = await otherBuildPush(BEFORE_BIN, src)
      const before = SIZE / MB / other.secs
      yield { name: `files: ${SIZE / MB} MB push by the build in BENCH_FILE_BEFORE_BIN`, value: round(before), unit: 'MB/s', baseline: round(baseRate), ratio: round(before / baseRate), note: `${BEFORE_BIN}; this build's push was ${round(rate / before)}× as fast; against the relay with its sender started: ${round(before / startedRate)}` }
      yield { name: `files: CPU seconds of hub + central + ship1 per 100 MB pushed`, value: round(cpu / (SIZE / MB) * 100), unit: 's', baseline: round(other.cpu / (SIZE / MB) * 100), ratio: round(other.cpu / cpu), note: 'baseline: the build in BENCH_FILE_BEFORE_BIN; ratio: its CPU over this build\'s (less load-sensitive than MB/s on a shared machine)' }
      yield { name: `files: the hub's CPU seconds per 100 MB pushed`, value: round(hubCpu / (SIZE / MB) * 100), unit: 's', baseline: round(other.hubCpu / (SIZE / MB) * 100), ratio: round(other.hubCpu / hubCpu), note: `baseline: the push by the build in BENCH_FILE_BEFORE_BIN, through ${process.env.BENCH_FILE_BEFORE_HUB === '1' ? 'its own hub' : 'this build\'s hub (BENCH_FILE_BEFORE_HUB=1: its own)'}` }
    } else {
      yield { name: `files: CPU seconds of hub + central + ship1 per 100 MB pushed`, value: round(cpu / (SIZE / MB) * 100), unit: 's', baseline: null, ratio: null, note: 'user + system, /proc' }
      yield { name: `files: the hub's CPU seconds per 100 MB pushed`, value: round(hubCpu / (SIZE / MB) * 100), unit: 's', baseline: null, ratio: null, note: 'user + system, /proc' }
    }
    yield { name: `files: receiver peak RSS during the ${SIZE / MB} MB push`, value: round(peak), unit: 'MB', baseline: 150, ratio: round(150 / peak), note: 'baseline: the issue\'s cap (150 MB during a 500 MB transfer)' }

    // 2. Bytes sent again over three hub restarts, the transfer slowed to span them.
    const out = c.node('ship1').proc!
    const from = out.output.length
    const run = cp(c, 'central', [src, `ship1:${dir}/b.bin`], 1_800_000)
    for (const frac of [0.2, 0.45, 0.7]) {
      await until(c.node('central').socket, (t) => t.state === 'sending' && t.bytes >= t.size * frac && t.bytes < t.size, 600_000)
      await c.hub!.stop('SIGKILL')
      await c.startHub()
    }
    const r2 = await run
    if (r2.code !== 0) throw new Error(`cp through hub restarts failed: ${r2.stderr}`)
    const dups = (out.output.slice(from).match(/is a duplicate; ACKed again/g) ?? []).length
    const id = (r2.lines.find((l) => l.transfer !== undefined)!.transfer as { id: string }).id
    const sent = (await transfersOf(c.node('central').socket)).find((t) => t.id === id)!
    const got = (await transfersOf(c.node('ship1').socket)).find((t) => t.id === id)!
    const again = dups * CHUNK + got.resent + sent.resent
    yield { name: 'files: bytes sent again after three hub restarts', value: round((again / SIZE) * 100), unit: '% of the file', baseline: 10, ratio: round(10 / Math.max(0.001, (again / SIZE) * 100)), note: `${again} bytes: ${dups} duplicate chunks absorbed, ${got.resent} bytes written twice avoided, ${sent.resent} resent after commit; baseline: the issue's cap` }
  } finally {
    await c.destroy()
  }
}
