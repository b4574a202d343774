/**
 * The stored messages of formats 1-3: a sql.js row each (outbox-table.ts), the body in a body
 * file (outbox-bodies.ts) or, in format 1, in the row. Kept while an upgrade may roll back to
 * an outpost that reads only these (keepOldFormat); otherwise Outbox.open moves the rows to
 * records (format 4, outbox-records.ts), and toRecords() is how.
 *
 *   snapshot ─▶ store(): the hot survivors become rows (one transaction) and their bodies go to a
 *               body file, with the live bodies of sparse older files and of inline rows
 *   open     ─▶ rows used where they are (no index to rebuild)
 *
 * A stored row holds no body, only where it is (bodyFile, bodyAt, bodyLen), so the sql.js
 * database (all in memory) stays ~100 bytes a message. Rows migrated from format 1 (bodies in
 * a `body` column) keep theirs in `bodyInline` until the next snapshot moves them out.
 */
import type { Database, SqlValue, Statement } from 'sql.js'
import { OutpostError } from '../errors'
import { BodyFileWriter, bodyFileName, type BodyRef, type BodyStore } from './outbox-bodies'
import { BatchStatement, eachRow, hasRow, insertRows } from './sqljs'
import { COLUMNS, entryOfRow, type LiveEntry, prepareStatements, removeRows, type Stmt, type StoredMessages } from './outbox-table'

/** A stored message as toRecords() hands it over: where its body is (a body file, or inline). */
export interface LegacyEntry extends LiveEntry {
  /** Its body file and where the body is in it; file -1: the body is `body` (inline rows). */
  file: number
  at: number
  len: number
}

export class StoredRows implements StoredMessages {
  private storedCount: number
  /** Stored rows per destination, so destinations() needs no query. */
  private readonly storedDests = new Map<string, number>()
  private storedBytes: number
  /** No stored id sorts after this one: an id past it is not stored, and needs no sql.js lookup. */
  private maxStoredId: string
  /** Stored rows whose body is still in sql.js (from an older snapshot), moved out at the next snapshot. */
  private inlineCount: number
  private readonly stmt: Record<Stmt, Statement>
  /** Stored messages whose body is damaged: held back (never sent as garbage), reported once each. */
  private readonly damaged = new Set<string>()
  /** Made on first use: many rows a statement (snapshot inserts in the files layout; removals in this layout). */
  private insertMany: BatchStatement | undefined
  private removeMany: BatchStatement | undefined

  /** `db` must have been through prepareOutboxTable(), which gave `layout`. */
  constructor(private readonly db: Database, private readonly bodies: BodyStore, private readonly warn: (message: string) => void, readonly layout: 'files' | 'inline') {
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

  /**
   * Every row, in seq order, with where its body is, for the move to records (format 4); the
   * table is dropped. The body files keep their rows' counts (BodyStore) until the records have
   * been written elsewhere. Rows are read in order of body file and offset, bodies left where
   * they are (inline ones in memory until the snapshot writes them).
   */
  toRecords(): LegacyEntry[] {
    const out: LegacyEntry[] = []
    const cols = this.layout === 'inline' ? 'seq, id, dest, createdAt, expiresAt, attempts, nextAt, NULL, NULL, length(body), body, NULL, NULL, NULL' : COLUMNS
    const st = this.db.prepare(`SELECT ${cols} FROM outbox ORDER BY seq`)
    try {
      eachRow(st, [], (r) => {
        const e = entryOfRow(r) as LegacyEntry
        e.file = r[7] === null ? -1 : Number(r[7])
        e.at = r[8] === null ? 0 : Number(r[8])
        e.len = Number(r[9])
        if (e.file >= 0) e.body = new Uint8Array(0)
        out.push(e)
      })
    } finally {
      st.free()
    }
    this.free()
    this.db.exec('DROP INDEX IF EXISTS outbox_dest; DROP TABLE IF EXISTS outbox')
    return out
  }

  maxSeq(): number {
    return Number(this.db.exec('SELECT max(seq) FROM outbox')[0]?.values[0]?.[0] ?? 0)
  }

  get count(): number {
    return this.storedCount
  }

  get bytes(): number {
    return this.storedBytes
  }

  has(id: string): boolean {
    return this.mayBeStored(id) && hasRow(this.stmt.has, [id])
  }

  private mayBeStored(id: string): boolean {
    return this.storedCount > 0 && id <= this.maxStoredId
  }

  remove(id: string): number {
    if (!this.mayBeStored(id)) return 0
    const s = this.stmt.remove
    try {
      s.bind([id])
      return s.step() ? this.forgetStored(s.get()) : 0
    } finally {
      s.reset()
    }
  }

  /** Stored ones go BATCH_ROWS to a statement. */
  removeAll(ids: string[]): void {
    let stored: BatchStatement | undefined
    for (const id of ids) {
      if (this.mayBeStored(id)) (stored ??= this.removeMany ??= new BatchStatement(this.db, removeRows(this.layout), 1, (r) => this.forgetStored(r))).add(id)
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
    this.stmt.update.run([attempts, nextAt, id])
  }

  get(id: string): LiveEntry | undefined {
    return this.mayBeStored(id) ? this.rows(this.stmt.get, [id])[0] : undefined
  }

  head(dest: string, limit: number, after: number): LiveEntry[] {
    return this.storedDests.has(dest) ? this.rows(this.stmt.head, [dest, after, limit]) : []
  }

  hasDest(dest: string): boolean {
    return this.storedDests.has(dest)
  }

  destinations(): Iterable<string> {
    return this.storedDests.keys()
  }

  perDestination(out: Map<string, { count: number; bytes: number; oldest: number }>): void {
    if (this.storedCount === 0) return
    const len = this.layout === 'inline' ? 'length(body)' : 'bodyLen'
    for (const r of this.db.exec(`SELECT dest, count(*), total(${len}), min(createdAt) FROM outbox GROUP BY dest`)[0]?.values ?? []) {
      out.set(String(r[0]), { count: Number(r[1]), bytes: Number(r[2]), oldest: Number(r[3]) })
    }
  }

  all(): LiveEntry[] {
    return this.rows(this.stmt.all, [])
  }

  /**
   * Write the hot survivors into sql.js and their bodies into body file `file` (with the live
   * bodies of sparse older files and of inline rows), one transaction. The file is readable at
   * once; BodyStore.flush() must write it before the snapshot is renamed into place.
   */
  store(file: number, hot: LiveEntry[]): void {
    if (this.layout === 'inline') this.writeInline(hot)
    else {
      const writer = this.bodies.writer(file)
      try {
        this.writeStored(writer, hot)
      } catch (err) {
        writer.abort()
        throw err
      }
      if (writer.empty) writer.abort()
    }
    for (const e of hot) this.storedDests.set(e.dest, (this.storedDests.get(e.dest) ?? 0) + 1)
    this.storedCount += hot.length
    for (const e of hot) this.storedBytes += e.body.length
  }

  /** The inline layout's snapshot: the hot survivors become rows with their bodies (one transaction). */
  private writeInline(hot: LiveEntry[]): void {
    if (hot.length === 0) return
    const ins = this.stmt.insert
    this.db.exec('BEGIN')
    try {
      for (const e of hot) {
        ins.run([e.seq, e.id, e.dest, e.createdAt, e.expiresAt, e.attempts, e.nextAt, e.body])
        if (e.id > this.maxStoredId) this.maxStoredId = e.id
      }
      this.db.exec('COMMIT')
    } catch (err) {
      this.db.exec('ROLLBACK')
      throw err
    }
  }

  private writeStored(writer: BodyFileWriter, hot: LiveEntry[]): void {
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
    this.insertMany = undefined
    this.removeMany = undefined
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
