/**
 * The outbox table's two layouts (store formats), the move from one to the other, and the
 * statements OutboxIndex (outbox-index.ts) runs on each.
 */
import type { Database, SqlValue, Statement } from 'sql.js'
import { OutpostError } from '../errors'
import { routeOf, type Route } from './outbox-ops'

/**
 * The layouts of the outbox's stored messages. `records` (format 4): no table, records in body
 * files (outbox-records.ts). `files` (format 2, `PRAGMA user_version = 2`): rows say
 * where the body is. `inline` (format 1, user_version 0): the body in the row, as every outpost
 * before body files wrote it; kept while an upgrade may still be rolled back, so the previous
 * binary can read the store (see Outbox's keepOldFormat).
 */
export type OutboxLayout = 'files' | 'inline' | 'records'

/** The store format of the outbox table with body files (format 3 adds the dedup set in runs: seen-store.ts). */
export const BODY_FILES_FORMAT = 2

/**
 * Store format 4: the messages waiting at a snapshot are records in its body files
 * (waiting-records.ts, outbox-records.ts), listed with a removed bitmap each in `waiting_files`;
 * no outbox table. Journal records that only a format-4 store may hold are gated on this.
 */
export const FORMAT_WAITING_RECORDS = 4

/** The newest store format this outpost reads and writes; a higher user_version is refused. */
export const STORE_FORMAT = FORMAT_WAITING_RECORDS

/**
 * How delivery sends a row's message (ackTimeout, retries, method); NULL in rows written before
 * routes. Nullable columns an outpost of format 2 before them ignores (it names its columns), so
 * adding them keeps format 2 and its rollback.
 */
const ROUTE_COLUMNS = 'ackTimeout REAL, retries REAL, method TEXT'

const TABLE = `
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, dest TEXT NOT NULL,
  createdAt INTEGER NOT NULL, expiresAt INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, nextAt INTEGER NOT NULL DEFAULT 0,
  bodyFile INTEGER, bodyAt INTEGER, bodyLen INTEGER NOT NULL, bodyInline BLOB,
  ${ROUTE_COLUMNS});
CREATE INDEX IF NOT EXISTS outbox_dest ON outbox (dest, seq);
PRAGMA user_version = ${BODY_FILES_FORMAT};
`
/** Exactly the table of format 1 (an older outpost creates it with IF NOT EXISTS too). */
const TABLE_INLINE = `
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, dest TEXT NOT NULL, body BLOB NOT NULL,
  createdAt INTEGER NOT NULL, expiresAt INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, nextAt INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS outbox_dest ON outbox (dest, seq);
`
export const COLUMNS = 'seq, id, dest, createdAt, expiresAt, attempts, nextAt, bodyFile, bodyAt, bodyLen, bodyInline, ackTimeout, retries, method'
/** The same row shape read from the inline layout. */
const COLUMNS_INLINE = 'seq, id, dest, createdAt, expiresAt, attempts, nextAt, NULL, NULL, length(body), body, NULL, NULL, NULL'

/** Move a format-1 table's rows to format 2 (bodies in `bodyInline`, moved out at the next snapshot). */
export const MIGRATE = `BEGIN;
  DROP INDEX IF EXISTS outbox_dest;
  ALTER TABLE outbox RENAME TO outbox_v1;
  ${TABLE}
  INSERT INTO outbox (seq, id, dest, createdAt, expiresAt, attempts, nextAt, bodyLen, bodyInline)
    SELECT seq, id, dest, createdAt, expiresAt, attempts, nextAt, length(body), body FROM outbox_v1;
  DROP TABLE outbox_v1;
  COMMIT`

/**
 * Create the outbox's tables or take the loaded ones as they are; a format-1 table is migrated
 * to format 2 unless `keepInline` (an upgrade may still roll back to a binary that reads only
 * format 1). A fresh store starts in format 4 (records), or under `keepInline` in format 1.
 * Returns the layout in use (Outbox.open moves a table's rows to records unless keepOldFormat).
 */
export function prepareOutboxTable(db: Database, keepInline = false): OutboxLayout {
  const version = Number(db.exec('PRAGMA user_version')[0]?.values[0]?.[0] ?? 0)
  if (version > STORE_FORMAT) {
    throw new OutpostError('outbox_format', `outbox: the snapshot is in store format ${version}, written by a newer outpost; this one reads formats up to ${STORE_FORMAT} (run the newer binary, or let its upgrade watchdog roll back)`)
  }
  if (db.exec(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'waiting_files'`).length > 0) return 'records'
  const cols = db.exec("SELECT name FROM pragma_table_info('outbox')")[0]?.values.map((r) => String(r[0])) ?? []
  if (cols.includes('bodyFile')) {
    // Format 2 from before routes: the route columns are added (NULL in the rows there are).
    if (!cols.includes('method')) db.exec(`ALTER TABLE outbox ADD COLUMN ackTimeout REAL; ALTER TABLE outbox ADD COLUMN retries REAL; ALTER TABLE outbox ADD COLUMN method TEXT`)
    return 'files'
  }
  if (keepInline) {
    if (cols.length === 0) db.exec(TABLE_INLINE)
    return 'inline'
  }
  if (cols.includes('body')) {
    db.exec(MIGRATE)
    return 'files'
  }
  db.exec(WAITING_TABLE)
  return 'records'
}

/**
 * Format 4's list of body files holding waiting messages: per file, its records, its length,
 * where its meta block starts and that block's CRC32 (waiting-records.ts), a bit per record
 * removed since it was written, and the delivery attempts of its live ones ([u32 ordinal]
 * [u32 attempts][f64 nextAt] each; only those with any).
 */
export const WAITING_TABLE = `CREATE TABLE IF NOT EXISTS waiting_files (n INTEGER PRIMARY KEY, records INTEGER NOT NULL, bytes INTEGER NOT NULL, metaAt INTEGER NOT NULL, metaCrc INTEGER NOT NULL, removed BLOB NOT NULL, attempts BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, dest TEXT NOT NULL, bodyLen INTEGER NOT NULL)`
/*
 * The empty `outbox` table beside it is a guard: an outpost of format 1 checks no version and
 * would take a store without the table for a new one (its CREATE TABLE IF NOT EXISTS), run with
 * none of the waiting messages, and write rows format 4 never reads; with it, it stops at its
 * first query ("no such column: body") and changes nothing. Formats 2 and 3 check user_version.
 */

export type Stmt = 'insert' | 'remove' | 'update' | 'move' | 'has' | 'get' | 'head' | 'dests' | 'all' | 'inFile' | 'inline'

/** The index's statements for a layout: the same row shape from both. */
export function prepareStatements(db: Database, layout: 'files' | 'inline'): Record<Stmt, Statement> {
  const inline = layout === 'inline'
  const cols = inline ? COLUMNS_INLINE : COLUMNS
  return {
    insert: db.prepare(inline
      ? 'INSERT OR REPLACE INTO outbox (seq, id, dest, createdAt, expiresAt, attempts, nextAt, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'
      : `INSERT OR REPLACE INTO outbox (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)`),
    remove: db.prepare(inline ? 'DELETE FROM outbox WHERE id = ? RETURNING length(body), dest, NULL' : 'DELETE FROM outbox WHERE id = ? RETURNING bodyLen, dest, bodyFile'),
    update: db.prepare('UPDATE outbox SET attempts = ?, nextAt = ? WHERE id = ?'),
    // Not used in the inline layout (no body files): harmless statements keep the shape.
    move: db.prepare(inline ? 'SELECT ?, ?, ?' : 'UPDATE outbox SET bodyFile = ?, bodyAt = ?, bodyInline = NULL WHERE seq = ?'),
    has: db.prepare('SELECT 1 FROM outbox WHERE id = ?'),
    get: db.prepare(`SELECT ${cols} FROM outbox WHERE id = ?`),
    head: db.prepare(`SELECT ${cols} FROM outbox WHERE dest = ? AND seq > ? ORDER BY seq LIMIT ?`),
    dests: db.prepare('SELECT dest, count(*) FROM outbox GROUP BY dest'),
    all: db.prepare(`SELECT ${cols} FROM outbox ORDER BY seq`),
    inFile: db.prepare(inline ? 'SELECT NULL, NULL, NULL, NULL WHERE ? IS NULL' : 'SELECT seq, id, bodyAt, bodyLen FROM outbox WHERE bodyFile = ? ORDER BY bodyAt'),
    inline: db.prepare(inline ? 'SELECT NULL, NULL WHERE 0' : 'SELECT seq, bodyInline FROM outbox WHERE bodyFile IS NULL ORDER BY seq'),
  }
}

/** DELETE of n messages by id, returning what the outbox counts (size, dest, body file) of each. */
export function removeRows(layout: 'files' | 'inline'): (rows: number) => string {
  const returning = layout === 'inline' ? 'length(body), dest, NULL' : 'bodyLen, dest, bodyFile'
  return (n) => `DELETE FROM outbox WHERE id IN (${Array<string>(n).fill('?').join(', ')}) RETURNING ${returning}`
}

/** A row read with the outbox's columns (COLUMNS, COLUMNS_INLINE) as an entry; a row of a body file has its body filled in later. */
export function entryOfRow(r: SqlValue[]): LiveEntry {
  // The same fields in the same order as an entry made at commit (outbox-apply.ts), and a route
  // as routeOf builds it: the functions that take both kinds see one shape (hidden class), where
  // two made V8 throw their optimised code away after a snapshot had stored some of a burst
  // (docs/performance.md, "the first round of fresh processes").
  const e: LiveEntry = {
    id: String(r[1]), dest: String(r[2]), seq: Number(r[0]), createdAt: Number(r[3]), expiresAt: Number(r[4]),
    attempts: Number(r[5]), nextAt: Number(r[6]), body: r[10] as Uint8Array,
  }
  // The route columns (format 2 rows written before routes, and format 1, have none).
  if (r[13] !== null && r[13] !== undefined) e.route = routeOf(r[11] !== null ? Number(r[11]) : NaN, r[12] !== null ? Number(r[12]) : NaN, String(r[13]))
  return e
}

/** A waiting message as the outbox index holds it (in memory, or read from a stored row). */
export interface LiveEntry {
  id: string
  dest: string
  seq: number
  createdAt: number
  expiresAt: number
  attempts: number
  nextAt: number
  body: Uint8Array
  route?: Route
}

/**
 * The messages that outlived a snapshot, in one of the store's layouts: sql.js rows (formats
 * 1-3, outbox-rows.ts) or records in body files (format 4, outbox-records.ts). Each was enqueued
 * before every message still in memory (OutboxIndex's hot part).
 */
export interface StoredMessages {
  readonly layout: OutboxLayout
  readonly count: number
  readonly bytes: number
  has(id: string): boolean
  get(id: string): LiveEntry | undefined
  /** Forget a message; returns its size, or 0 when it is not stored. */
  remove(id: string): number
  /** remove() of the ids of one commit that are not in memory. */
  removeAll(ids: string[]): void
  attempt(id: string, attempts: number, nextAt: number): void
  /** The first `limit` stored for `dest` with a seq above `after`, in seq order, with their bodies. */
  head(dest: string, limit: number, after: number): LiveEntry[]
  hasDest(dest: string): boolean
  destinations(): Iterable<string>
  /** Add each destination's count, bytes and oldest createdAt to `out`. */
  perDestination(out: Map<string, { count: number; bytes: number; oldest: number }>): void
  /** Every stored message in seq order, with its body. */
  all(): LiveEntry[]
  maxSeq(): number
  /** Snapshot `file` is being taken: store `hot` (the survivors in memory, in seq order), bodies into body file `file`. */
  store(file: number, hot: LiveEntry[]): void
  free(): void
}
