/**
 * The store's files in <dataDir>/outbox/: `snapshot-<n>.db` (a sql.js export covering every
 * journal segment up to n), the `journal-<n>.log` segments after it, and the `bodies-<n>.dat`
 * files the snapshot's rows point into (outbox-bodies.ts).
 *
 *   open:     newest snapshot ─▶ sql.js ─▶ replay later segments (torn tail dropped, empty ones removed)
 *   snapshot: export ─▶ body files written ─▶ tmp ─▶ fsync ─▶ rename ─▶ fsync dir ─▶ delete what it covers
 */
import fs from 'node:fs'
import path from 'node:path'
import type { Database } from 'sql.js'
import { OutpostError } from '../errors'
import { fsyncDir, listSegments, readSegment, segmentName } from './journal'
import { decodeOp, type Op } from './outbox-ops'
import { loadSqlJs } from './sqljs'

const SNAPSHOT_RE = /^snapshot-(\d{12})\.db$/
const SEGMENT_RE = /^journal-(\d{12})\.log$/
export const snapshotName = (n: number): string => `snapshot-${String(n).padStart(12, '0')}.db`

/** The newest snapshot as a sql.js database (empty when there is none), and its number. */
export async function loadSnapshot(dir: string): Promise<{ db: Database; snapshot: number }> {
  const SQL = await loadSqlJs()
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.tmp')) fs.rmSync(path.join(dir, f), { force: true })
  const numbers = fs.readdirSync(dir).map((f) => SNAPSHOT_RE.exec(f)?.[1]).filter((s): s is string => s !== undefined).map(Number).sort((a, b) => a - b)
  const snapshot = numbers.at(-1) ?? 0
  let db: Database
  if (snapshot > 0) {
    const file = path.join(dir, snapshotName(snapshot))
    try {
      db = new SQL.Database(fs.readFileSync(file))
      db.exec('SELECT count(*) FROM sqlite_master')
    } catch (cause) {
      throw new OutpostError('outbox_corrupt', `outbox: snapshot ${file} cannot be read (${(cause as Error).message}); the journal before it is gone, so keep a copy of the directory before repairing it`, { cause })
    }
  } else {
    db = new SQL.Database()
  }
  // The journal is the durable copy: sql.js needs no rollback journal file of its own
  // (with one, every transaction goes through emscripten's file layer, ~3x slower).
  db.exec('PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE; PRAGMA temp_store = MEMORY')
  return { db, snapshot }
}

/** Apply every good record of the segments after `snapshot`, in order. */
export function replayJournal(dir: string, snapshot: number, apply: (op: Op) => void, warn: (m: string) => void): { replayed: number; dropped: number; nextSegment: number } {
  const segments = listSegments(dir).filter((s) => s > snapshot)
  let replayed = 0
  let dropped = 0
  for (const [i, seg] of segments.entries()) {
    const file = path.join(dir, segmentName(seg))
    const { records, droppedBytes } = readSegment(file, seg)
    for (const [n, rec] of records.entries()) {
      try {
        apply(decodeOp(rec))
      } catch (cause) {
        throw new OutpostError('outbox_corrupt', `outbox: record ${n} of ${file} passed its CRC but cannot be applied (${(cause as Error).message}); was it written by a newer outpost?`, { cause })
      }
    }
    replayed += records.length
    // Nothing but zeros (preallocated, unused when the process stopped): free the room it takes.
    if (records.length === 0 && droppedBytes === 0) fs.rmSync(file, { force: true })
    if (droppedBytes > 0) {
      dropped += droppedBytes
      const last = i === segments.length - 1
      warn(`outbox: ${segmentName(seg)} ends in ${droppedBytes} bytes of ${last ? 'a torn write (from a crash)' : 'damaged data'}; kept the ${records.length} records before it`)
    }
  }
  return { replayed, dropped, nextSegment: Math.max(snapshot, ...segments) + 1 }
}

/**
 * Write snapshot `covered` durably (after `before`, which makes what it names durable), then
 * delete the segments it covers and older snapshots.
 * A failure costs start-up time, not data (the journal still holds everything): it is
 * reported, and false returned.
 */
export async function writeSnapshot(dir: string, covered: number, bytes: Uint8Array, warn: (m: string) => void, before?: () => Promise<void>): Promise<boolean> {
  const file = path.join(dir, snapshotName(covered))
  const tmp = `${file}.tmp`
  try {
    // What the snapshot refers to (its body files) is durable before the snapshot is.
    await before?.()
    const fh = await fs.promises.open(tmp, 'w', 0o600)
    try {
      await fh.writeFile(bytes)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await fs.promises.rename(tmp, file)
    fsyncDir(dir)
  } catch (cause) {
    warn(`outbox: snapshot ${file} failed (${(cause as Error).message}); the journal keeps the data`)
    await fs.promises.rm(tmp, { force: true }).catch(() => {})
    return false
  }
  try {
    for (const f of await fs.promises.readdir(dir)) {
      const seg = SEGMENT_RE.exec(f)?.[1]
      const snap = SNAPSHOT_RE.exec(f)?.[1]
      if ((seg !== undefined && Number(seg) <= covered) || (snap !== undefined && Number(snap) < covered)) {
        await fs.promises.rm(path.join(dir, f), { force: true })
      }
    }
  } catch (cause) {
    // Leftovers are skipped at start (older than the snapshot) and removed by the next one.
    warn(`outbox: removing files covered by ${file} failed (${(cause as Error).message})`)
  }
  return true
}
