/**
 * Where the outbox's waiting messages live between journal and snapshot: new ones in memory
 * ("hot"), those that outlived a snapshot in sql.js ("stored").
 *
 *   committed op ─▶ enqueue: hot map (no sql.js work on the hot path)
 *                   remove / attempt: hot map, or one sql.js statement for a stored message
 *   snapshot     ─▶ syncToStore(): the hot survivors become rows (one transaction), memory freed
 *   open         ─▶ stored rows are used where they are (no index to rebuild); the journal after
 *                   the snapshot refills the hot map
 *
 * Every stored message was enqueued before every hot one, so per destination FIFO order is
 * "stored rows by seq, then the hot map in insertion (= seq) order". In steady operation most
 * messages are acknowledged within milliseconds and never touch sql.js.
 */
import type { Database, Statement } from 'sql.js'
import { hasRow } from './sqljs'

export interface LiveEntry {
  id: string
  dest: string
  seq: number
  createdAt: number
  expiresAt: number
  attempts: number
  nextAt: number
  body: Uint8Array
}

export const OUTBOX_TABLE = `
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, dest TEXT NOT NULL, body BLOB NOT NULL,
  createdAt INTEGER NOT NULL, expiresAt INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, nextAt INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS outbox_dest ON outbox (dest, seq);
`
const COLUMNS = 'seq, id, dest, body, createdAt, expiresAt, attempts, nextAt'

type Stmt = 'insert' | 'remove' | 'update' | 'has' | 'get' | 'head' | 'dests' | 'all'

export class OutboxIndex {
  private readonly hot = new Map<string, LiveEntry>()
  private readonly hotByDest = new Map<string, Map<string, LiveEntry>>()
  private hotBytes = 0
  private storedCount: number
  /** Stored rows per destination, so destinations() needs no query. */
  private readonly storedDests = new Map<string, number>()
  private storedBytes: number
  /** No stored id sorts after this one: an id past it is not stored, and needs no sql.js lookup. */
  private maxStoredId: string
  private readonly db: Database
  private readonly stmt: Record<Stmt, Statement>

  constructor(db: Database) {
    this.db = db
    this.stmt = {
      insert: db.prepare(`INSERT OR REPLACE INTO outbox (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
      remove: db.prepare('DELETE FROM outbox WHERE id = ? RETURNING length(body), dest'),
      update: db.prepare('UPDATE outbox SET attempts = ?, nextAt = ? WHERE id = ?'),
      has: db.prepare('SELECT 1 FROM outbox WHERE id = ?'),
      get: db.prepare(`SELECT ${COLUMNS} FROM outbox WHERE id = ?`),
      head: db.prepare(`SELECT ${COLUMNS} FROM outbox WHERE dest = ? AND seq > ? ORDER BY seq LIMIT ?`),
      dests: db.prepare('SELECT dest, count(*) FROM outbox GROUP BY dest'),
      all: db.prepare(`SELECT ${COLUMNS} FROM outbox ORDER BY seq`),
    }
    const totals = db.exec('SELECT count(*), total(length(body)) FROM outbox')[0]?.values[0] ?? [0, 0]
    this.storedCount = Number(totals[0])
    this.storedBytes = Number(totals[1])
    this.maxStoredId = String(db.exec('SELECT max(id) FROM outbox')[0]?.values[0]?.[0] ?? '')
    const s = this.stmt.dests
    try {
      while (s.step()) {
        const r = s.get()
        this.storedDests.set(String(r[0]), Number(r[1]))
      }
    } finally {
      s.reset()
    }
  }

  /** The highest seq in use, stored or hot. */
  maxSeq(): number {
    let max = Number(this.db.exec('SELECT max(seq) FROM outbox')[0]?.values[0]?.[0] ?? 0)
    for (const e of this.hot.values()) if (e.seq > max) max = e.seq
    return max
  }

  get count(): number {
    return this.storedCount + this.hot.size
  }

  get bytes(): number {
    return this.storedBytes + this.hotBytes
  }

  /** Bytes of message bodies held in memory (not yet moved to the store by a snapshot). */
  get inMemoryBytes(): number {
    return this.hotBytes
  }

  has(id: string): boolean {
    return this.hot.has(id) || (this.mayBeStored(id) && hasRow(this.stmt.has, [id]))
  }

  private mayBeStored(id: string): boolean {
    return this.storedCount > 0 && id <= this.maxStoredId
  }

  /** Add a committed message (ignored if the id is already there). */
  add(e: LiveEntry): void {
    // The outbox refuses known ids before journaling; replay never meets a stored id again
    // (a snapshot covers exactly the segments before the ones replayed).
    if (this.hot.has(e.id)) return
    this.hot.set(e.id, e)
    let q = this.hotByDest.get(e.dest)
    if (q === undefined) this.hotByDest.set(e.dest, (q = new Map()))
    q.set(e.id, e)
    this.hotBytes += e.body.length
  }

  /** Forget a message; returns its size, or 0 when it was not there. */
  remove(id: string): number {
    const e = this.hot.get(id)
    if (e !== undefined) {
      this.hot.delete(id)
      const q = this.hotByDest.get(e.dest)
      q?.delete(id)
      if (q?.size === 0) this.hotByDest.delete(e.dest)
      this.hotBytes -= e.body.length
      return e.body.length
    }
    if (!this.mayBeStored(id)) return 0
    const s = this.stmt.remove
    try {
      s.bind([id])
      if (!s.step()) return 0
      const r = s.get()
      const size = Number(r[0])
      const dest = String(r[1])
      const left = (this.storedDests.get(dest) ?? 1) - 1
      if (left > 0) this.storedDests.set(dest, left)
      else this.storedDests.delete(dest)
      this.storedCount--
      this.storedBytes -= size
      return size
    } finally {
      s.reset()
    }
  }

  attempt(id: string, attempts: number, nextAt: number): void {
    const e = this.hot.get(id)
    if (e !== undefined) {
      e.attempts = attempts
      e.nextAt = nextAt
    } else {
      this.stmt.update.run([attempts, nextAt, id])
    }
  }

  get(id: string): LiveEntry | undefined {
    return this.hot.get(id) ?? (this.mayBeStored(id) ? this.rows(this.stmt.get, [id])[0] : undefined)
  }

  /**
   * The first `limit` entries for a destination after seq `after`, FIFO: stored rows first,
   * then hot ones. (The delivery loop passes the last seq it handed out, so each call reads
   * only what is new.)
   */
  head(dest: string, limit: number, after = 0): LiveEntry[] {
    const out = this.storedDests.has(dest) ? this.rows(this.stmt.head, [dest, after, limit]) : []
    const q = this.hotByDest.get(dest)
    if (q !== undefined) {
      for (const e of q.values()) {
        if (out.length >= limit) break
        if (e.seq > after) out.push(e)
      }
    }
    return out
  }

  destinations(): string[] {
    const set = new Set(this.hotByDest.keys())
    for (const d of this.storedDests.keys()) set.add(d)
    return [...set].sort()
  }

  all(): LiveEntry[] {
    return [...this.rows(this.stmt.all, []), ...this.hot.values()]
  }

  /** Write the hot survivors into sql.js (one transaction) and let them go from memory. */
  syncToStore(): void {
    if (this.hot.size === 0) return
    const ins = this.stmt.insert
    this.db.exec('BEGIN')
    try {
      for (const e of this.hot.values()) {
        ins.run([e.seq, e.id, e.dest, e.body, e.createdAt, e.expiresAt, e.attempts, e.nextAt])
        if (e.id > this.maxStoredId) this.maxStoredId = e.id
      }
      this.db.exec('COMMIT')
    } catch (err) {
      this.db.exec('ROLLBACK')
      throw err
    }
    for (const [dest, q] of this.hotByDest) this.storedDests.set(dest, (this.storedDests.get(dest) ?? 0) + q.size)
    this.storedCount += this.hot.size
    this.storedBytes += this.hotBytes
    this.hot.clear()
    this.hotByDest.clear()
    this.hotBytes = 0
  }

  free(): void {
    for (const s of Object.values(this.stmt)) s.free()
  }

  private rows(stmt: Statement, params: (string | number)[]): LiveEntry[] {
    const out: LiveEntry[] = []
    try {
      stmt.bind(params)
      while (stmt.step()) {
        const r = stmt.get()
        out.push({
          seq: Number(r[0]), id: String(r[1]), dest: String(r[2]), body: r[3] as Uint8Array,
          createdAt: Number(r[4]), expiresAt: Number(r[5]), attempts: Number(r[6]), nextAt: Number(r[7]),
        })
      }
    } finally {
      stmt.reset()
    }
    return out
  }
}
