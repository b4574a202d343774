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

/**
 * The dedup set at a snapshot: `rounds` snapshots, each after 60k receipts and 20k request
 * records, in store format 3 (packed runs) or the rows of formats 1-2 (keepOldFormat on a new
 * store keeps them). Per snapshot: CPU µs (user + system) and wall ms (the event loop is blocked
 * for most of it); then the restart after a crash (journal to replay: the last round's records)
 * and after a clean stop, and the process's heap + sql.js growth is left to bench/seen-rss.ts.
 */
export async function seenSnapshots(layout: 'runs' | 'rows', rounds = 4): Promise<{ cpu: number[]; ms: number[]; restart: Record<'crash' | 'clean', number> }> {
  const dir = tmp()
  const opts = { dir, maxBytes: 1 << 30, checkpointBytes: 1 << 30, keepOldFormat: layout === 'rows' }
  const ob = await Outbox.open(opts)
  const cpu: number[] = []
  const ms: number[] = []
  const id = (n: number): string => `01J${String(n).padStart(23, '0')}`
  const fill = async (r: number): Promise<void> => {
    for (let b = 0; b < 60; b++) await ob.markSeen(Array.from({ length: 1000 }, (_, i) => id(r * 60_000 + b * 1000 + i)))
    for (let b = 0; b < 20; b++) await Promise.all(Array.from({ length: 1000 }, (_, i) => ob.recordRequest(id(1e9 + r * 20_000 + b * 1000 + i), `node${i % 7}`, 'reply.m', Date.now() + 3_600_000)))
  }
  for (let r = 0; r < rounds; r++) {
    await fill(r)
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    await ob.checkpoint()
    ms.push(performance.now() - t0)
    cpu.push(cpuMicros(c0))
  }
  // One more round left in the journal, then as after SIGKILL (no final snapshot).
  await fill(rounds)
  ;(ob as unknown as { lock: { release(): void } }).lock.release()
  const restart = { crash: 0, clean: 0 }
  let t0 = performance.now()
  const again = await Outbox.open(opts)
  restart.crash = performance.now() - t0
  const want = (rounds + 1) * 80_000
  if (again.stats().seen !== want) throw new Error(`restart found ${again.stats().seen} seen, not ${want}`)
  await again.close()
  t0 = performance.now()
  const third = await Outbox.open(opts)
  restart.clean = performance.now() - t0
  await third.close()
  fs.rmSync(dir, { recursive: true, force: true })
  return { cpu, ms, restart }
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
    note: `the same rounds counting the snapshot after the burst, which moves the 100k waiting messages to the store (records in a body file, store format 4): ${round(median(snapCpu))} µs CPU a message`,
  }

  // The dedup set at a snapshot: packed runs (format 3) against the rows of format 2, alternated.
  const seen: Record<'runs' | 'rows', Awaited<ReturnType<typeof seenSnapshots>>[]> = { runs: [], rows: [] }
  for (let r = 0; r < 2; r++) for (const layout of ['rows', 'runs'] as const) seen[layout].push(await seenSnapshots(layout))
  const pick = (layout: 'runs' | 'rows', f: (x: Awaited<ReturnType<typeof seenSnapshots>>) => number): number => median(seen[layout].map(f))
  for (const [k, label] of [[0, 'first'], [3, 'fourth']] as const) {
    const v = pick('runs', (x) => x.cpu[k]! / 80_000)
    const b = pick('rows', (x) => x.cpu[k]! / 80_000)
    yield {
      name: `outbox.snapshot.seen80k.${label}`, value: round(v), unit: 'µs', baseline: round(b), ratio: round(b / v, 2),
      note: `CPU a key of the ${label} snapshot of 60k receipts + 20k request records (${k * 80}k stored before it): packed runs (format 3); baseline: a sql.js row each (format 2); wall ${round(pick('runs', (x) => x.ms[k]!))} ms vs ${round(pick('rows', (x) => x.ms[k]!))} ms; the larger of 2 alternated rounds`,
    }
  }
  for (const how of ['crash', 'clean'] as const) {
    const v = pick('runs', (x) => x.restart[how])
    const b = pick('rows', (x) => x.restart[how])
    yield {
      name: `outbox.restart.seen400k.${how}`, value: round(v), unit: 'ms', baseline: round(b), ratio: round(b / v, 2),
      note: `open with ${how === 'crash' ? '320k keys in the snapshot and 80k in the journal (SIGKILL)' : 'all 400k keys in the snapshot (a clean stop)'}: runs; baseline: rows`,
    }
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
