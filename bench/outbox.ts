import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Outbox } from '../src/store/outbox'
import type { BenchResult } from './result'

const SIZE = 200
const round = (n: number, d = 3): number => Number(n.toPrecision(d + 2))

function tmp(): string {
  // The same disk as a real data dir would use (not tmpfs).
  const base = path.join(process.cwd(), '.tmp')
  fs.mkdirSync(base, { recursive: true })
  return fs.mkdtempSync(path.join(base, 'bench-'))
}

/** Raw baseline: append the same records with one write + fdatasync per batch, batch sizes as given. */
async function rawAppend(batches: number[], record: Buffer): Promise<{ rate: number; cpu: number }> {
  const dir = tmp()
  const fd = fs.openSync(path.join(dir, 'raw.log'), 'w')
  let pos = 0
  const cpu0 = process.cpuUsage()
  const started = performance.now()
  let n = 0
  for (const size of batches) {
    const buf = Buffer.allocUnsafe(size * record.length)
    for (let i = 0; i < size; i++) record.copy(buf, i * record.length)
    await new Promise<void>((res, rej) => fs.write(fd, buf, 0, buf.length, pos, (e) => (e ? rej(e) : res())))
    pos += buf.length
    await new Promise<void>((res, rej) => fs.fdatasync(fd, (e) => (e ? rej(e) : res())))
    n += size
  }
  const secs = (performance.now() - started) / 1000
  const cpu = cpuMicros(cpu0) / n
  fs.closeSync(fd)
  fs.rmSync(dir, { recursive: true, force: true })
  return { rate: n / secs, cpu }
}

/** CPU time (user + system) of this process since `from`, in µs. */
function cpuMicros(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from)
  return d.user + d.system
}

/**
 * fdatasync after a 200-byte pwrite, median µs: over blocks already written with zeros and
 * fsynced (what a preallocated journal segment gives) and appending to a growing file.
 */
async function syncCost(mode: 'prezeroed' | 'append', count = 1000): Promise<number> {
  const dir = tmp()
  const fd = fs.openSync(path.join(dir, 'sync.log'), 'w')
  const record = Buffer.alloc(SIZE, 0x61)
  if (mode === 'prezeroed') {
    fs.writeSync(fd, Buffer.alloc(count * SIZE + 4096))
    fs.fsyncSync(fd)
  }
  const times: number[] = []
  for (let i = 0; i < count; i++) {
    fs.writeSync(fd, record, 0, SIZE, i * SIZE)
    const t = performance.now()
    await new Promise<void>((res, rej) => fs.fdatasync(fd, (e) => (e ? rej(e) : res())))
    times.push((performance.now() - t) * 1000)
  }
  fs.closeSync(fd)
  fs.rmSync(dir, { recursive: true, force: true })
  return times.sort((a, b) => a - b)[count >> 1]!
}

/**
 * `count` producers enqueue `total` messages, each awaiting its own; then a snapshot (what the
 * quiet timer does a second after such a burst: the messages still waiting move to the store).
 * rate: accepted messages a second; cpu: µs a message while accepting; stored: rate counting the
 * snapshot too; snapshotCpu: µs a message the snapshot took.
 */
async function producers(count: number, total: number): Promise<{ rate: number; cpu: number; stored: number; snapshotCpu: number; batches: number[]; dir: string }> {
  const dir = tmp()
  const batches: number[] = []
  const ob = await Outbox.open({ dir, maxBytes: 1 << 30, onBatch: (n) => batches.push(n) })
  const body = new Uint8Array(SIZE).fill(0x61)
  let next = 0
  const cpu0 = process.cpuUsage()
  const started = performance.now()
  await Promise.all(Array.from({ length: count }, async () => {
    while (next < total) {
      const i = next++
      await ob.enqueue({ id: `m${i}`, dest: `node${i % 4}`, body, createdAt: 0, expiresAt: 0 })
    }
  }))
  const ms = performance.now() - started
  const cpu = cpuMicros(cpu0) / total
  const cpu1 = process.cpuUsage()
  await ob.checkpoint()
  const stored = total / ((performance.now() - started) / 1000)
  const snapshotCpu = cpuMicros(cpu1) / total
  await ob.close()
  return { rate: total / (ms / 1000), cpu, stored, snapshotCpu, batches, dir }
}

export async function* outboxBenchmarks(): AsyncIterable<BenchResult> {
  const record = Buffer.alloc(SIZE, 0x61)

  // Rounds alternate outpost and baseline so both see the same disk weather; medians are reported.
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const seqRuns: number[] = []
  const seqBase: number[] = []
  for (let r = 0; r < 5; r++) {
    const run = await producers(1, 1000)
    seqRuns.push(run.rate)
    seqBase.push((await rawAppend(run.batches, record)).rate)
    fs.rmSync(run.dir, { recursive: true, force: true })
  }
  yield {
    name: 'outbox.enqueue.sequential', value: round(median(seqRuns)), unit: 'msg/s', baseline: round(median(seqBase)),
    ratio: round(median(seqRuns) / median(seqBase), 2), note: 'median of 5 alternating rounds of 1000 messages',
  }

  const concRuns: number[] = []
  const concBase: number[] = []
  const concCpu: number[] = []
  const baseCpu: number[] = []
  const concStored: number[] = []
  const snapCpu: number[] = []
  let batchNote = ''
  for (let r = 0; r < 3; r++) {
    const run = await producers(1000, 100_000)
    concRuns.push(run.rate)
    concCpu.push(run.cpu)
    concStored.push(run.stored)
    snapCpu.push(run.snapshotCpu)
    const raw = await rawAppend(run.batches, record)
    concBase.push(raw.rate)
    baseCpu.push(raw.cpu)
    batchNote = `${run.batches.length} batches, ${round(run.batches.reduce((a, b) => a + b, 0) / run.batches.length)} records each on average`
    fs.rmSync(run.dir, { recursive: true, force: true })
  }
  yield {
    name: 'outbox.enqueue.concurrent1000', value: round(median(concRuns)), unit: 'msg/s', baseline: round(median(concBase)),
    ratio: round(median(concRuns) / median(concBase), 2), note: `median of 3 alternating rounds of 100k; ${batchNote}`,
  }
  yield {
    name: 'outbox.cpu.perMessage', value: round(median(concCpu)), unit: 'µs', baseline: round(median(baseCpu)),
    ratio: round(median(baseCpu) / median(concCpu), 2), note: 'CPU (user + system) of the process per message over those rounds, accepting only; baseline: the raw append\'s per record',
  }
  yield {
    name: 'outbox.enqueue.concurrent1000.stored', value: round(median(concStored)), unit: 'msg/s', baseline: round(median(concBase)),
    ratio: round(median(concStored) / median(concBase), 2),
    note: `the same rounds counting the snapshot after the burst, which moves the 100k waiting messages to the store (sql.js rows, body file): ${round(median(snapCpu))} µs CPU a message`,
  }

  // Start-up with a 100k backlog: after a crash (journal to replay) and after a clean stop.
  for (const how of ['crash', 'clean'] as const) {
    const dir = tmp()
    const ob = await Outbox.open({ dir, maxBytes: 1 << 30 })
    const body = new Uint8Array(SIZE).fill(0x61)
    const pending: Promise<unknown>[] = []
    for (let i = 0; i < 100_000; i++) {
      pending.push(ob.enqueue({ id: `m${i}`, dest: `node${i % 4}`, body, createdAt: 0, expiresAt: 0 }))
      if (pending.length >= 1000) await Promise.all(pending.splice(0))
    }
    await Promise.all(pending)
    if (how === 'clean') {
      await ob.close()
    } else {
      // What SIGKILL leaves: no final snapshot, the lock file of a dead process.
      ;(ob as unknown as { lock: { release(): void } }).lock.release()
    }
    const readStart = performance.now()
    for (const f of fs.readdirSync(dir)) fs.readFileSync(path.join(dir, f))
    const rawRead = performance.now() - readStart
    const started = performance.now()
    const again = await Outbox.open({ dir, maxBytes: 1 << 30 })
    const ms = performance.now() - started
    const { count, recovery } = again.stats()
    if (count !== 100_000) throw new Error(`restart found ${count} messages, not 100000`)
    yield {
      name: `outbox.restart.100k.${how}`, value: round(ms), unit: 'ms', baseline: round(rawRead), ratio: round(rawRead / ms, 2),
      note: `baseline: reading the outbox files raw; replayed ${recovery.replayedRecords} journal records`,
    }
    await again.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  // Alternating rounds again: the journal's segments are preallocated for this difference.
  const pre: number[] = []
  const app: number[] = []
  for (let r = 0; r < 3; r++) {
    pre.push(await syncCost('prezeroed'))
    app.push(await syncCost('append'))
  }
  yield {
    name: 'disk.fdatasync.prezeroed', value: round(median(pre)), unit: 'µs', baseline: round(median(app)), ratio: round(median(app) / median(pre), 2),
    note: 'median fdatasync after a 200-byte write over zeros already on disk; baseline: the same appending to a growing file',
  }
  yield { name: 'host.cpus', value: os.cpus().length, unit: 'cores', baseline: null, ratio: null }
}
