/**
 * The store's files in <dataDir>/outbox/: `snapshot-<n>.db` (a sql.js export covering every
 * journal segment up to n), the `journal-<n>.log` segments after it, and the `bodies-<n>.dat`
 * files the snapshot's rows point into (outbox-bodies.ts) and the dedup set's `seen-<n>.run`
 * files it lists (seen-files.ts).
 *
 *   open:     newest good snapshot ─▶ sql.js ─▶ replay later segments (a torn tail cut off, damage
 *             reported and stepped over, empty segments removed)
 *   snapshot: export ─▶ body files written ─▶ checksum and tmp, each fsynced ─▶ renamed ─▶ fsync dir ─▶
 *             delete what neither it nor the snapshot before it needs
 *   open:     a snapshot failing its checksum (or quick_check) is set aside; the one before it is used
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type { Database } from 'sql.js'
import { OutpostError } from '../errors'
import { fsyncDir, listSegments, readSegment, segmentName } from './journal'
import { hasData, type DamagedStretch } from './journal-segments'
import { decodeOp, messageOf, OP_ATTEMPT, OP_ENQUEUE, OP_INBOX_ADD, OP_INBOX_DONE, OP_INBOX_START, OP_MAX, OP_REMOVE, OP_SEEN, type Op } from './outbox-ops'
import { loadSqlJs } from './sqljs'

const SNAPSHOT_RE = /^snapshot-(\d{12})\.db$/
const SEGMENT_RE = /^journal-(\d{12})\.log$/
export const snapshotName = (n: number): string => `snapshot-${String(n).padStart(12, '0')}.db`

export interface LoadedSnapshot {
  db: Database
  /** The snapshot loaded (0: none); the journal is replayed from the segment after it. */
  snapshot: number
  /** One line per snapshot found damaged and set aside (code outbox_corrupt). */
  damaged: string[]
}

/**
 * The newest good snapshot as a sql.js database (empty when there is none), and its number.
 * Each is checked against its checksum file (`snapshot-<n>.sum`), or, written by an outpost
 * before checksums, by SQLite's quick_check. A damaged one is renamed `<name>.damaged` and the
 * one before it is tried: a snapshot keeps the previous one and the journal after it, so
 * falling back loses nothing.
 */
export async function loadSnapshot(dir: string): Promise<LoadedSnapshot> {
  const SQL = await loadSqlJs()
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.tmp')) fs.rmSync(path.join(dir, f), { force: true })
  const numbers = fs.readdirSync(dir).map((f) => SNAPSHOT_RE.exec(f)?.[1]).filter((s): s is string => s !== undefined).map(Number).sort((a, b) => b - a)
  const damaged: string[] = []
  let db: Database | undefined
  let snapshot = 0
  for (const [i, n] of numbers.entries()) {
    const file = path.join(dir, snapshotName(n))
    let problem: string | undefined
    try {
      const bytes = fs.readFileSync(file)
      problem = checkSum(dir, n, bytes)
      if (problem === undefined) {
        db = new SQL.Database(bytes)
        // Without a checksum (an older outpost wrote it), SQLite's own check of its pages.
        const check = hasSum(dir, n) ? 'ok' : String(db.exec('PRAGMA quick_check')[0]?.values[0]?.[0] ?? 'no answer')
        db.exec('SELECT count(*) FROM sqlite_master')
        if (check !== 'ok') problem = `quick_check: ${check}`
      }
    } catch (cause) {
      problem = (cause as Error).message
    }
    if (problem === undefined) {
      snapshot = n
      break
    }
    db?.close()
    db = undefined
    const aside = `${file}.damaged`
    fs.renameSync(file, aside)
    fs.rmSync(path.join(dir, sumName(n)), { force: true })
    const older = numbers[i + 1]
    damaged.push(`outbox: snapshot ${file} is damaged (${problem}); moved to ${aside}; ${older !== undefined
      ? `trying the one before it, ${snapshotName(older)}, and the journal after it`
      : 'no earlier snapshot is kept, so the messages it held are lost (the journal after it is replayed)'}`)
  }
  if (damaged.length > 0) fsyncDir(dir)
  db ??= new SQL.Database()
  // The journal is the durable copy: sql.js needs no rollback journal file of its own
  // (with one, every transaction goes through emscripten's file layer, ~3x slower).
  db.exec('PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE; PRAGMA temp_store = MEMORY')
  return { db, snapshot, damaged }
}

const SUM_RE = /^snapshot-(\d{12})\.sum$/
export const sumName = (n: number): string => `snapshot-${String(n).padStart(12, '0')}.sum`

/** `sha256 <hex> <bytes>`: what snapshot-<n>.sum says of snapshot-<n>.db. */
function sumOf(bytes: Uint8Array): string {
  return `sha256 ${createHash('sha256').update(bytes).digest('hex')} ${bytes.length}\n`
}

function hasSum(dir: string, n: number): boolean {
  return fs.existsSync(path.join(dir, sumName(n)))
}

/** Undefined when the snapshot matches its checksum file or has none; else what is wrong. */
function checkSum(dir: string, n: number, bytes: Uint8Array): string | undefined {
  let want: string
  try {
    want = fs.readFileSync(path.join(dir, sumName(n)), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    return `its checksum file cannot be read: ${(err as Error).message}`
  }
  return want === sumOf(bytes) ? undefined : `it does not match ${sumName(n)}`
}

/**
 * A stretch of journal that failed its check with good records after it: what it held is lost.
 * `op` is a best-effort reading of its first record (the payload failed its CRC, so any field
 * may be wrong); `settled` says a later good record finished with that message anyway (it was
 * delivered, or the run it started finished), so it needs no outcome.
 */
export interface JournalDamage {
  file: string
  offset: number
  bytes: number
  op?: Op
  settled: boolean
}

export interface Replayed {
  replayed: number
  /** Bytes of torn tails dropped. */
  dropped: number
  damaged: JournalDamage[]
  nextSegment: number
}

/** Every record of the store starts with an op code: a quick test for where one could start. */
const startsOp = (b: number): boolean => b >= OP_ENQUEUE && b <= OP_MAX

/**
 * Apply every good record of the segments after `snapshot`, in order. Damage in the middle of a
 * segment costs only the damaged records (each is reported); a bad tail is a torn write.
 */
export function replayJournal(dir: string, snapshot: number, apply: (op: Op) => void, warn: (m: string) => void): Replayed {
  const segments = listSegments(dir).filter((s) => s > snapshot)
  // Only the newest segment holding data can end in a torn write: start-up cuts a torn tail off
  // (below), and every later segment is written by a process that started after that.
  // Read once: the files looked at here are not read again below.
  const read = new Map<number, Buffer>()
  const newest = [...segments].reverse().find((s) => {
    const buf = fs.readFileSync(path.join(dir, segmentName(s)))
    read.set(s, buf)
    return hasData(buf)
  })
  let replayed = 0
  let dropped = 0
  const damaged: JournalDamage[] = []
  // Damaged records whose message a later good record may still settle, by id.
  const open = new Map<string, JournalDamage>()
  for (const seg of segments) {
    const file = path.join(dir, segmentName(seg))
    const { records, damaged: stretches, tail, droppedBytes } = readSegment(file, seg, startsOp, read.get(seg))
    read.delete(seg)
    if (tail !== undefined && seg !== newest) stretches.push(tail)
    let next = 0
    for (const [n, rec] of records.entries()) {
      while (next < stretches.length && stretches[next]!.after === n) damaged.push(damage(file, stretches[next++]!, open))
      let op: Op
      try {
        op = decodeOp(rec)
      } catch (cause) {
        throw new OutpostError('outbox_corrupt', `outbox: record ${n} of ${file} passed its CRC but cannot be applied (${(cause as Error).message}); was it written by a newer outpost?`, { cause })
      }
      if (open.size > 0) settle(open, op)
      apply(op)
    }
    while (next < stretches.length) damaged.push(damage(file, stretches[next++]!, open))
    replayed += records.length
    // Nothing but zeros (preallocated, unused when the process stopped): free the room it takes.
    if (records.length === 0 && droppedBytes === 0 && stretches.length === 0) fs.rmSync(file, { force: true })
    if (tail !== undefined && seg === newest) {
      dropped += droppedBytes
      warn(`outbox: ${segmentName(seg)} ends in ${droppedBytes} bytes of a torn write (from a crash); kept the ${records.length} records before it`)
      cutTail(file, tail.offset)
    }
  }
  for (const d of damaged) warn(`outbox: ${describeDamage(d)} [outbox_corrupt]`)
  return { replayed, dropped, damaged, nextSegment: Math.max(snapshot, ...segments) + 1 }
}

/**
 * Cut a torn tail off its segment (durably), so that a later start, which finds this segment
 * followed by newer ones, never takes it for damage.
 */
function cutTail(file: string, at: number): void {
  const fd = fs.openSync(file, 'r+')
  try {
    fs.ftruncateSync(fd, at)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

function damage(file: string, s: DamagedStretch, open: Map<string, JournalDamage>): JournalDamage {
  let op: Op | undefined
  try {
    if (s.payload !== undefined) op = decodeOp(s.payload)
  } catch {
    // Unreadable: only where it was and how long is known.
  }
  const d: JournalDamage = { file, offset: s.offset, bytes: s.bytes, ...(op ? { op } : {}), settled: false }
  if (op !== undefined && (messageOf(op) !== undefined || op[0] === OP_INBOX_ADD)) open.set(op[1], d)
  else d.settled = true // removals, attempts, dedup marks, run marks: nothing waits on them
  return d
}

/** A good record after damage that finishes a damaged message: delivered, or its run done. */
function settle(open: Map<string, JournalDamage>, op: Op): void {
  const id = op[0] === OP_REMOVE || op[0] === OP_INBOX_DONE ? op[1] : messageOf(op)?.doneId
  const d = id === undefined ? undefined : open.get(id)
  if (d === undefined) return
  // A removal settles a message this node sent; the end of a run settles one it received.
  const received = d.op![0] === OP_INBOX_ADD
  if (op[0] === OP_REMOVE ? !received : received) {
    d.settled = true
    open.delete(id!)
  }
}

/** One line for the log: where the damage is and, as far as it can be read, what it held. */
export function describeDamage(d: JournalDamage): string {
  const where = `${d.bytes} damaged bytes at offset ${d.offset} of ${d.file}`
  const op = d.op
  if (op === undefined) return `${where} could not be read; any message recorded there is lost (the good records around it were kept)`
  const what = messageOf(op) !== undefined
    ? `message ${op[1]} to ${op[2]}`
    : op[0] === OP_INBOX_ADD ? `message ${op[1]} received from ${op[2]}` : `a ${OP_NAMES[op[0]]} record for ${op[1]}`
  return `${where}: ${what} (as far as it can be read)${d.settled ? ', settled by a later record' : ', lost'}`
}

const OP_NAMES: Record<number, string> = { [OP_REMOVE]: 'removal', [OP_ATTEMPT]: 'delivery attempt', [OP_SEEN]: 'dedup', [OP_INBOX_START]: 'run start', [OP_INBOX_DONE]: 'run end' }

/**
 * Write snapshot `covered` durably (after `before`, which makes what it names durable), with
 * its checksum file, then delete what neither it nor the snapshot before it (`previous`) needs:
 * segments up to `previous`, older snapshots. Keeping the previous snapshot and the journal
 * after it is what a damaged snapshot falls back to at start.
 * A failure costs start-up time, not data (the journal still holds everything): it is
 * reported, and false returned.
 */
export async function writeSnapshot(dir: string, covered: number, previous: number, bytes: Uint8Array, warn: (m: string) => void, before?: () => Promise<void>): Promise<boolean> {
  const file = path.join(dir, snapshotName(covered))
  const sum = path.join(dir, sumName(covered))
  const tmp = `${file}.tmp`
  try {
    // What the snapshot refers to (its body files) is durable before the snapshot is.
    await before?.()
    await writeDurably(`${sum}.tmp`, sumOf(bytes))
    await writeDurably(tmp, bytes)
    // The checksum first: a snapshot in place always has its checksum beside it.
    await fs.promises.rename(`${sum}.tmp`, sum)
    await fs.promises.rename(tmp, file)
    fsyncDir(dir)
  } catch (cause) {
    warn(`outbox: snapshot ${file} failed (${(cause as Error).message}); the journal keeps the data`)
    await fs.promises.rm(tmp, { force: true }).catch(() => {})
    await fs.promises.rm(`${sum}.tmp`, { force: true }).catch(() => {})
    return false
  }
  try {
    for (const f of await fs.promises.readdir(dir)) {
      const seg = SEGMENT_RE.exec(f)?.[1]
      const snap = SNAPSHOT_RE.exec(f)?.[1] ?? SUM_RE.exec(f)?.[1]
      if ((seg !== undefined && Number(seg) <= previous) || (snap !== undefined && Number(snap) < (previous || covered))) {
        await fs.promises.rm(path.join(dir, f), { force: true })
      }
    }
  } catch (cause) {
    // Leftovers are skipped at start (older than the snapshot) and removed by the next one.
    warn(`outbox: removing files covered by ${file} failed (${(cause as Error).message})`)
  }
  return true
}

async function writeDurably(file: string, data: Uint8Array | string): Promise<void> {
  const fh = await fs.promises.open(file, 'w', 0o600)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
}
