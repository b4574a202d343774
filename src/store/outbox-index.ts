/**
 * Where the outbox's waiting messages live between journal and snapshot: new ones in memory
 * ("hot"), those that outlived a snapshot in sql.js ("stored").
 *
 *   committed op ─▶ enqueue: hot map (no sql.js work on the hot path)
 *                   remove / attempt: hot map, or one sql.js statement for a stored message
 *   snapshot     ─▶ syncToStore(): the hot survivors become rows (one transaction) and their
 *                   bodies go to a body file (outbox-bodies.ts), memory freed; live bodies of
 *                   sparse older files move along in the same transaction
 *   open         ─▶ stored rows are used where they are (no index to rebuild); the journal after
 *                   the snapshot refills the hot map
 *
 * A stored row holds no body, only where it is (bodyFile, bodyAt, bodyLen), so the sql.js
 * database (all in memory) stays ~100 bytes a message. Rows migrated from format 1 (bodies in
 * a `body` column, outbox-table.ts) keep theirs in `bodyInline` until the next snapshot moves
 * them out. While an upgrade may roll back, the table stays in format 1 (`inline` layout) and
 * snapshots store bodies in the rows, as older outposts expect.
 *
 * Every stored message was enqueued before every hot one, so per destination FIFO order is
 * "stored rows by seq, then the hot map in insertion (= seq) order". In steady operation most
 * messages are acknowledged within milliseconds and never touch sql.js.
 */
import type { Database, SqlValue, Statement } from 'sql.js'
import { OutpostError } from '../errors'
import { BodyFileWriter, bodyFileName, type BodyRef, type BodyStore } from './outbox-bodies'
import { DestQueue } from './outbox-queue'
import { BatchStatement, eachRow, hasRow, insertRows } from './sqljs'
import { COLUMNS, entryOfRow, type LiveEntry, MIGRATE, prepareStatements, removeRows, type OutboxLayout, type Stmt } from './outbox-table'

export type { LiveEntry } from './outbox-table'

export interface DestinationStats {
  count: number
  bytes: number
  /** createdAt of the oldest waiting message (ms since the epoch). */
  oldest: number
}

export class OutboxIndex {
  private readonly hot = new Map<string, LiveEntry>()
  private readonly hotByDest = new Map<string, DestQueue>()
  private hotBytes = 0
  private storedCount: number
  /** Stored rows per destination, so destinations() needs no query. */
  private readonly storedDests = new Map<string, number>()
  private storedBytes: number
  /** No stored id sorts after this one: an id past it is not stored, and needs no sql.js lookup. */
  private maxStoredId: string
  /** Stored rows whose body is still in sql.js (from an older snapshot), moved out at the next snapshot. */
  private inlineCount: number
  private readonly db: Database
  private readonly bodies: BodyStore
  private stmt: Record<Stmt, Statement>
  private layoutNow: OutboxLayout
  private readonly warn: (message: string) => void
  /** Stored messages whose body is damaged: held back (never sent as garbage), reported once each. */
  private readonly damaged = new Set<string>()
  /** Made on first use: many rows a statement (snapshot inserts in the files layout; removals in this layout). */
  private insertMany: BatchStatement | undefined
  private removeMany: BatchStatement | undefined

  /** `db` must have been through prepareOutboxTable(), which gave `layout`. */
  constructor(db: Database, bodies: BodyStore, warn: (message: string) => void, layout: OutboxLayout = 'files') {
    this.db = db
    this.bodies = bodies
    this.warn = warn
    this.layoutNow = layout
    this.stmt = prepareStatements(db, layout)
    const totals = layout === 'inline'
      ? db.exec('SELECT count(*), total(length(body)), count(*) FROM outbox')[0]?.values[0] ?? [0, 0, 0]
      : db.exec('SELECT count(*), total(bodyLen), count(*) FILTER (WHERE bodyFile IS NULL) FROM outbox')[0]?.values[0] ?? [0, 0, 0]
    this.storedCount = Number(totals[0])
    this.storedBytes = Number(totals[1])
    this.maxStoredId = String(db.exec('SELECT max(id) FROM outbox')[0]?.values[0]?.[0] ?? '')
    this.inlineCount = Number(totals[2])
    const s = this.stmt.dests
    try {
      while (s.step()) {
        const r = s.get()
        this.storedDests.set(String(r[0]), Number(r[1]))
      }
    } finally {
      s.reset()
    }
    // In the inline layout no row names a body file: any there is left from a crash or an older run.
    const files = layout === 'inline' ? [] : db.exec('SELECT bodyFile, count(*), total(bodyLen), max(bodyAt + 8 + bodyLen) FROM outbox WHERE bodyFile IS NOT NULL GROUP BY bodyFile')[0]?.values ?? []
    bodies.load(files.map((r) => ({ file: Number(r[0]), rows: Number(r[1]), bytes: Number(r[2]), end: Number(r[3]) })))
  }

  get layout(): OutboxLayout {
    return this.layoutNow
  }

  /**
   * Move from the inline layout (format 1) to body files (format 2): the rows keep their bodies
   * in `bodyInline` until syncToStore() moves them out, at the snapshot this is called for.
   */
  useBodyFiles(): void {
    if (this.layoutNow === 'files') return
    for (const st of Object.values(this.stmt)) st.free()
    this.removeMany?.free()
    this.removeMany = undefined
    try {
      this.db.exec(MIGRATE)
    } catch (err) {
      try { this.db.exec('ROLLBACK') } catch { /* not in a transaction */ }
      this.stmt = prepareStatements(this.db, 'inline')
      throw err
    }
    this.layoutNow = 'files'
    this.stmt = prepareStatements(this.db, 'files')
    this.inlineCount = this.storedCount
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
    if (q === undefined) this.hotByDest.set(e.dest, (q = new DestQueue()))
    q.add(e)
    this.hotBytes += e.body.length
  }

  /** Forget a message; returns its size, or 0 when it was not there. */
  remove(id: string): number {
    const e = this.hot.get(id)
    if (e !== undefined) {
      this.hot.delete(id)
      const q = this.hotByDest.get(e.dest)
      q?.delete(e)
      if (q?.size === 0) this.hotByDest.delete(e.dest)
      this.hotBytes -= e.body.length
      return e.body.length
    }
    if (!this.mayBeStored(id)) return 0
    const s = this.stmt.remove
    try {
      s.bind([id])
      return s.step() ? this.forgetStored(s.get()) : 0
    } finally {
      s.reset()
    }
  }

  /** Forget messages (the removals of one commit): stored ones go BATCH_ROWS to a statement. */
  removeAll(ids: string[]): void {
    let stored: BatchStatement | undefined
    for (const id of ids) {
      if (this.hot.has(id) || !this.mayBeStored(id)) this.remove(id)
      else (stored ??= this.removeMany ??= new BatchStatement(this.db, removeRows(this.layoutNow), 1, (r) => this.forgetStored(r))).add(id)
    }
    stored?.finish()
  }

  /** A stored row deleted (its bodyLen, dest, bodyFile): the counts follow; returns its size. */
  private forgetStored(r: SqlValue[]): number {
    const size = Number(r[0])
    const dest = String(r[1])
    if (r[2] === null) this.inlineCount--
    else this.bodies.release(Number(r[2]), size)
    const left = (this.storedDests.get(dest) ?? 1) - 1
    if (left > 0) this.storedDests.set(dest, left)
    else this.storedDests.delete(dest)
    this.storedCount--
    this.storedBytes -= size
    return size
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

  /** Per destination: messages waiting, their body bytes and the oldest createdAt (for `outpost status`). */
  perDestination(): Map<string, DestinationStats> {
    const out = new Map<string, DestinationStats>()
    if (this.storedCount > 0) {
      const len = this.layoutNow === 'inline' ? 'length(body)' : 'bodyLen'
      for (const r of this.db.exec(`SELECT dest, count(*), total(${len}), min(createdAt) FROM outbox GROUP BY dest`)[0]?.values ?? []) {
        out.set(String(r[0]), { count: Number(r[1]), bytes: Number(r[2]), oldest: Number(r[3]) })
      }
    }
    for (const [dest, q] of this.hotByDest) {
      const s = out.get(dest) ?? { count: 0, bytes: 0, oldest: Infinity }
      for (const e of q.values()) {
        s.count++
        s.bytes += e.body.length
        if (e.createdAt < s.oldest) s.oldest = e.createdAt
      }
      if (s.count > 0) out.set(dest, s)
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

  /**
   * Snapshot `file` is being taken: write the hot survivors into sql.js and their bodies into
   * body file `file` (with the live bodies of sparse older files and of inline rows), one
   * transaction, and let them go from memory. The file is readable at once; BodyStore.flush()
   * must write it before the snapshot is renamed into place.
   */
  syncToStore(file: number): void {
    if (this.layoutNow === 'inline') this.writeInline()
    else {
      const writer = this.bodies.writer(file)
      try {
        this.writeStored(writer)
      } catch (err) {
        writer.abort()
        throw err
      }
      if (writer.empty) writer.abort()
    }
    for (const [dest, q] of this.hotByDest) this.storedDests.set(dest, (this.storedDests.get(dest) ?? 0) + q.size)
    this.storedCount += this.hot.size
    this.storedBytes += this.hotBytes
    this.hot.clear()
    this.hotByDest.clear()
    this.hotBytes = 0
  }

  /** The inline layout's snapshot: the hot survivors become rows with their bodies (one transaction). */
  private writeInline(): void {
    if (this.hot.size === 0) return
    const ins = this.stmt.insert
    this.db.exec('BEGIN')
    try {
      for (const e of this.hot.values()) {
        ins.run([e.seq, e.id, e.dest, e.createdAt, e.expiresAt, e.attempts, e.nextAt, e.body])
        if (e.id > this.maxStoredId) this.maxStoredId = e.id
      }
      this.db.exec('COMMIT')
    } catch (err) {
      this.db.exec('ROLLBACK')
      throw err
    }
  }

  private writeStored(writer: BodyFileWriter): void {
    const file = writer.file
    const moves: { seq: number; at: number; from: number | undefined; len: number }[] = []
    if (this.inlineCount > 0) {
      eachRow(this.stmt.inline, [], (r) => {
        const body = r[1] as Uint8Array
        moves.push({ seq: Number(r[0]), at: writer.add(body), from: undefined, len: body.length })
      })
    }
    for (const from of this.bodies.sparse()) {
      const refs: (BodyRef & { seq: number })[] = []
      eachRow(this.stmt.inFile, [from], (r) => refs.push({ seq: Number(r[0]), id: String(r[1]), file: from, at: Number(r[2]), len: Number(r[3]) }))
      const moved: typeof moves = []
      let bad: OutpostError | undefined
      for (let i = 0; i < refs.length && bad === undefined; i += 1024) {
        const part = refs.slice(i, i + 1024)
        for (const [k, b] of this.bodies.read(part).entries()) {
          if (b instanceof OutpostError) bad = b
          else moved.push({ seq: part[k]!.seq, at: writer.add(b), from, len: part[k]!.len })
        }
      }
      // A damaged file stays where it is (its damaged messages are held back when read); what
      // was copied of it already is dead weight in the new file until that is compacted.
      if (bad !== undefined) this.warn(`outbox: not compacting ${bodyFileName(from)}: ${bad.message}`)
      else moves.push(...moved)
    }
    const hot = [...this.hot.values()]
    const hotAt = hot.map((e) => writer.add(e.body))
    if (writer.empty) return
    const insert = this.insertMany ??= new BatchStatement(this.db, insertRows(`INSERT OR REPLACE INTO outbox (${COLUMNS}) VALUES`, 14), 14)
    const move = this.stmt.move
    this.db.exec('BEGIN')
    try {
      for (const [i, e] of hot.entries()) {
        const r = e.route
        insert.add(e.seq, e.id, e.dest, e.createdAt, e.expiresAt, e.attempts, e.nextAt, file, hotAt[i]!, e.body.length, null, r?.ackTimeout ?? null, r?.retries ?? null, r?.method ?? null)
        if (e.id > this.maxStoredId) this.maxStoredId = e.id
      }
      insert.finish()
      for (const m of moves) move.run([file, m.at, m.seq])
      this.db.exec('COMMIT')
    } catch (err) {
      insert.clear()
      this.db.exec('ROLLBACK')
      throw err
    }
    let live = 0
    for (const e of hot) live += e.body.length
    for (const m of moves) live += m.len
    this.bodies.add(writer, hot.length + moves.length, live)
    for (const m of moves) {
      if (m.from === undefined) this.inlineCount--
      else this.bodies.release(m.from, m.len)
    }
  }

  free(): void {
    for (const s of Object.values(this.stmt)) s.free()
    this.insertMany?.free()
    this.removeMany?.free()
  }

  /** Stored entries with their bodies; one whose body is damaged is left out (and reported once). */
  private rows(stmt: Statement, params: (string | number)[]): LiveEntry[] {
    let out: LiveEntry[] = []
    const refs: BodyRef[] = []
    const fromFile: LiveEntry[] = []
    eachRow(stmt, params, (r) => {
      const e = entryOfRow(r)
      if (r[7] !== null) {
        refs.push({ id: e.id, file: Number(r[7]), at: Number(r[8]), len: Number(r[9]) })
        fromFile.push(e)
      }
      out.push(e)
    })
    if (refs.length > 0) {
      const bodies = this.bodies.read(refs)
      let bad: Set<LiveEntry> | undefined
      for (const [i, e] of fromFile.entries()) {
        const b = bodies[i]!
        if (!(b instanceof OutpostError)) {
          e.body = b
          continue
        }
        ;(bad ??= new Set()).add(e)
        if (!this.damaged.has(e.id)) {
          this.damaged.add(e.id)
          this.warn(`${b.code}: ${b.message}; the message is held back and not sent (restoring the file sends it)`)
        }
      }
      if (bad !== undefined) out = out.filter((e) => !bad.has(e))
    }
    return out
  }
}
