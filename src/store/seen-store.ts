/**
 * Where the receiver's seen ids and the sender's request records are stored: the two layouts
 * of the store's dedup set, and the move from the first to the second.
 *
 *   rows (formats 1 and 2): sql.js table `seen`, a row per key (~4-5 µs a row at a snapshot);
 *        kept while an upgrade may roll back to an outpost that reads only this
 *   runs (format 3): two SeenSets (seen-runs.ts), receipts and request records ('!' keys) apart
 *        (a request's time is when its reply may last come, later than the receipts beside it),
 *        each a few packed runs, each in a file (seen-files.ts) that a `seen_runs` row lists
 */
import type { Database, Statement } from 'sql.js'
import { OutpostError } from '../errors'
import { SENT_PREFIX } from './outbox-apply'
import { crc32 } from './crc32'
import { RunFiles } from './seen-files'
import { loadRun, type Run } from './seen-pack'
import { SeenSet } from './seen-runs'
import { BatchStatement, hasRow, insertRows } from './sqljs'

/** The store format of the runs layout (user_version). */
export const RUNS_FORMAT = 3

export const SEEN_ROWS_TABLE = `
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
`
/** A run file each (seen-files.ts): kind 0 receipts, 1 request records; its length and CRC32. */
const RUNS_TABLE = `CREATE TABLE IF NOT EXISTS seen_runs (n INTEGER PRIMARY KEY, kind INTEGER NOT NULL, bytes INTEGER NOT NULL, crc INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`

export type SeenLayout = 'rows' | 'runs'

export interface SeenStore {
  readonly layout: SeenLayout
  add(key: string, at: number): void
  has(key: string): boolean
  /** Into sql.js (called inside the snapshot's transaction), forgetting keys older than `pruneBefore`. */
  sync(pruneBefore: number): void
  /** After the snapshot's transaction committed. */
  committed(): void
  /** After a failed sync's rollback. */
  clear(): void
  readonly count: number
  /** The run files what sql.js holds now names (none for rows). */
  inUse(): Set<number>
  /** Write the new run files durably (before the snapshot naming them is). */
  flushFiles(): Promise<void>
  /** After a durable snapshot: delete the run files not in `kept`. */
  removeFilesExcept(kept: Set<number>): Promise<void>
  free(): void
}

const hasTable = (db: Database, name: string): boolean => db.exec(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '${name}'`).length > 0

/** The store's dedup set as the loaded snapshot has it; a `rows` one moved to runs when `runs`. */
export function openSeen(db: Database, dir: string, runs: boolean): { store: SeenStore; migrated: boolean } {
  if (hasTable(db, 'seen_runs')) return { store: new SeenRuns(db, dir, true), migrated: false }
  if (!runs) {
    db.exec(SEEN_ROWS_TABLE)
    return { store: new SeenRows(db), migrated: false }
  }
  // A store with rows (not a new one): the move is written by a snapshot at close even if nothing else is.
  const migrated = hasTable(db, 'seen')
  return { store: migrateToRuns(db, dir), migrated }
}

/** Rows to runs (format 2 to 3): every row read once, packed, the table dropped. In memory: the next snapshot writes it. */
export function migrateToRuns(db: Database, dir: string, from?: SeenStore): SeenStore {
  from?.free()
  db.exec(RUNS_TABLE)
  const runs = new SeenRuns(db, dir, false)
  if (hasTable(db, 'seen')) {
    const st = db.prepare('SELECT id, at FROM seen')
    try {
      while (st.step()) {
        const [id, at] = st.get()
        runs.add(String(id), Number(at))
      }
    } finally {
      st.free()
    }
  }
  db.exec('BEGIN')
  try {
    // Nothing is pruned: the rows were kept for their window already.
    runs.sync(-Infinity)
    runs.committed()
    db.exec(`DROP INDEX IF EXISTS seen_at; DROP TABLE IF EXISTS seen; PRAGMA user_version = ${RUNS_FORMAT}`)
    db.exec('COMMIT')
  } catch (err) {
    db.exec('ROLLBACK')
    throw err
  }
  return runs
}

/** Format 3: packed runs, a file each (seen-files.ts), listed in sql.js. */
class SeenRuns implements SeenStore {
  readonly layout = 'runs'
  private readonly receipts: SeenSet
  private readonly requests: SeenSet
  private readonly files: RunFiles
  private lastN: number
  private readonly insert: Statement
  private readonly remove: Statement
  private readonly setLast: Statement
  /** Each run's CRC32 as its row lists it (its file's bytes, once written). */
  private readonly listed = new Map<number, number>()

  /** `loaded`: the snapshot has runs (else the table was just made), whose files are read now. */
  constructor(private readonly db: Database, dir: string, loaded: boolean) {
    db.exec(RUNS_TABLE)
    this.files = new RunFiles(dir)
    const byKind: Run[][] = [[], []]
    let last = 0
    const st = db.prepare('SELECT n, kind, bytes, crc FROM seen_runs ORDER BY n')
    try {
      while (st.step()) {
        const [n, kind, bytes, crc] = st.get().map(Number) as [number, number, number, number]
        const buf = this.files.read(n, bytes, crc)
        try {
          byKind[kind === 1 ? 1 : 0]!.push(loadRun(n, buf))
        this.listed.set(n, crc)
        } catch (cause) {
          throw new OutpostError('outbox_corrupt', `outbox: the dedup set's run ${n} cannot be read (${(cause as Error).message})`, { cause })
        }
        last = Math.max(last, n)
      }
    } finally {
      st.free()
    }
    // The highest run number given out before this snapshot: a file above it is from one that never became durable.
    const given = Number(db.exec("SELECT v FROM seen_meta WHERE k = 'lastRun'")[0]?.values[0]?.[0] ?? 0)
    this.lastN = Math.max(last, given)
    if (loaded) this.files.cleanAtOpen(this.lastN)
    this.receipts = new SeenSet(byKind[0])
    this.requests = new SeenSet(byKind[1])
    this.insert = db.prepare('INSERT INTO seen_runs (n, kind, bytes, crc) VALUES (?, ?, ?, ?)')
    this.remove = db.prepare('DELETE FROM seen_runs WHERE n = ?')
    this.setLast = db.prepare("INSERT OR REPLACE INTO seen_meta (k, v) VALUES ('lastRun', ?)")
  }

  private store(kind: number, r: Run): void {
    const crc = crc32(r.buf)
    this.insert.run([r.n, kind, r.buf.length, crc])
    this.listed.set(r.n, crc)
    this.files.add(r.n, r.buf)
  }

  private set(key: string): SeenSet {
    return key.startsWith(SENT_PREFIX) ? this.requests : this.receipts
  }

  add(key: string, at: number): void {
    this.set(key).add(key, at)
  }

  has(key: string): boolean {
    return this.set(key).has(key)
  }

  sync(pruneBefore: number): void {
    const next = (): number => ++this.lastN
    for (const [kind, set] of [this.receipts, this.requests].entries()) {
      const { added, removed, updated } = set.flush(pruneBefore, next)
      for (const n of removed) {
        this.remove.run([n])
        this.listed.delete(n)
      }
      for (const r of added) this.store(kind, r)
      // A run file never changes (the snapshot before may name it): a run with a key's later time is a new one.
      for (const r of updated) {
        this.remove.run([r.n])
        this.listed.delete(r.n)
        r.n = next()
        this.store(kind, r)
      }
    }
    this.setLast.run([this.lastN])
  }

  committed(): void {}

  clear(): void {
    // A failed sync leaves sql.js rolled back and memory ahead of it: the next snapshot's
    // rows would be missing runs. Rare (sql.js out of memory); list every run again then
    // (a run whose file is on disk is not written again).
    this.db.exec('DELETE FROM seen_runs')
    // A run whose key got a later time in place (SeenSet.flush) before the failure still has its
    // number, whose file (durable, never written again) holds the old bytes: it takes a new one.
    for (const [kind, set] of [this.receipts, this.requests].entries()) {
      for (const r of set.runs) {
        const was = this.listed.get(r.n)
        if (was !== undefined && was !== crc32(r.buf)) r.n = ++this.lastN
        this.store(kind, r)
      }
    }
  }

  inUse(): Set<number> {
    return new Set([...this.receipts.runs, ...this.requests.runs].map((r) => r.n))
  }

  flushFiles(): Promise<void> {
    return this.files.flush()
  }

  removeFilesExcept(kept: Set<number>): Promise<void> {
    return this.files.removeExcept(kept)
  }

  get count(): number {
    return this.receipts.size + this.requests.size
  }

  /** Bytes the runs take in memory. */
  get bytes(): number {
    return this.receipts.bytes + this.requests.bytes
  }

  free(): void {
    this.insert.free()
    this.remove.free()
    this.setLast.free()
  }
}

/** Formats 1 and 2: a sql.js row per key. */
class SeenRows implements SeenStore {
  readonly layout = 'rows'
  private readonly hot = new Map<string, number>()
  /** No stored id sorts after this one: an id past it needs no sql.js lookup (ULIDs sort by time). */
  private maxStoredId: string
  private readonly hasSeen: Statement
  private readonly prune: Statement
  private readonly insert: BatchStatement
  /** Rows of `seen`, counted once per snapshot (a count(*) is ~1 ms). */
  private stored: number

  constructor(private readonly db: Database) {
    this.hasSeen = db.prepare('SELECT 1 FROM seen WHERE id = ?')
    this.prune = db.prepare('DELETE FROM seen WHERE at < ?')
    this.insert = new BatchStatement(db, insertRows('INSERT OR REPLACE INTO seen (id, at) VALUES', 2), 2)
    this.maxStoredId = String(db.exec('SELECT max(id) FROM seen')[0]?.values[0]?.[0] ?? '')
    this.stored = this.countStored()
  }

  private countStored(): number {
    return Number(this.db.exec('SELECT count(*) FROM seen')[0]?.values[0]?.[0] ?? 0)
  }

  add(key: string, at: number): void {
    this.hot.set(key, at)
  }

  has(key: string): boolean {
    return this.hot.has(key) || (key <= this.maxStoredId && hasRow(this.hasSeen, [key]))
  }

  sync(pruneBefore: number): void {
    for (const [id, at] of this.hot) {
      if (at < pruneBefore) continue
      this.insert.add(id, at)
      if (id > this.maxStoredId) this.maxStoredId = id
    }
    this.insert.finish()
    this.prune.run([pruneBefore])
  }

  committed(): void {
    this.hot.clear()
    this.stored = this.countStored()
  }

  clear(): void {
    this.insert.clear()
  }

  inUse(): Set<number> {
    return new Set()
  }

  async flushFiles(): Promise<void> {}

  async removeFilesExcept(): Promise<void> {}

  get count(): number {
    return this.hot.size + this.stored
  }

  free(): void {
    this.hasSeen.free()
    this.prune.free()
    this.insert.free()
  }
}
