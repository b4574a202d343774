/**
 * The stored messages of store format 4: records in the snapshots' body files
 * (waiting-records.ts), an index of them in memory, and per file a bitmap of the records
 * removed since it was written. sql.js holds one `waiting_files` row per file, not a row per
 * message (a row cost ~4-6 µs at a snapshot; a record ~0.5 µs).
 *
 *   snapshot ─▶ store(): the hot survivors, the messages still in rows (a store moved from format
 *               1-3) and the live records of sparse files appended to the snapshot's body file;
 *               `waiting_files` rewritten (records, length, removed bitmap, attempts per file)
 *   remove   ─▶ the index entry goes, its bit in its file's bitmap is set (a file never changes)
 *   open     ─▶ each listed file scanned (metadata only), its removed records skipped ─▶ the index
 *
 * A removal after the snapshot is in the journal after it, so replay sets the bit again; a
 * snapshot and the files it lists always agree (files are written once, then fsynced before the
 * snapshot naming them).
 */
import type { Database, Statement } from 'sql.js'
import { OutpostError } from '../errors'
import { bodyFileName, type BodyRef, type BodyStore } from './outbox-bodies'
import type { LegacyEntry } from './outbox-rows'
import { FORMAT_WAITING_RECORDS, type LiveEntry, type StoredMessages, WAITING_TABLE } from './outbox-table'
import { SeqQueue } from './outbox-queue'
import { RecordsWriter, type RecordsFileInfo, scanRecords, type StoredRecord } from './waiting-records'

/** A records file: how many records it holds, which are removed, where its meta block is (waiting-records.ts). */
interface RecordsFile extends RecordsFileInfo {
  removed: Uint8Array
}

/** Read bodies this many at a time when moving them. */
const READ_BATCH = 1024

export class StoredRecords implements StoredMessages {
  readonly layout = 'records'
  count = 0
  bytes = 0
  private readonly byId = new Map<string, StoredRecord>()
  private readonly byDest = new Map<string, SeqQueue>()
  private readonly files = new Map<number, RecordsFile>()
  /** Entries with attempts or nextAt set: what a snapshot lists besides the bitmaps. */
  private readonly attempted = new Set<StoredRecord>()
  /** Entries not in a records file yet (moved from rows at open). */
  private legacy = 0
  private highestSeq = 0
  /** Stored messages whose body is damaged: held back (never sent as garbage), reported once each. */
  private readonly damaged = new Set<string>()
  private insert: Statement | undefined

  private constructor(private readonly db: Database, private readonly bodies: BodyStore, private readonly warn: (message: string) => void) {
    db.exec(WAITING_TABLE)
  }

  /** The stored messages of a format-4 snapshot (or a new store): each listed file scanned. */
  static load(db: Database, bodies: BodyStore, warn: (message: string) => void): StoredRecords {
    const s = new StoredRecords(db, bodies, warn)
    const uses: { file: number; rows: number; bytes: number; end: number }[] = []
    for (const r of db.exec('SELECT n, records, bytes, removed, attempts, metaAt, metaCrc FROM waiting_files ORDER BY n')[0]?.values ?? []) {
      const f: RecordsFile = { file: Number(r[0]), records: Number(r[1]), end: Number(r[2]), removed: new Uint8Array(r[3] as Uint8Array), metaAt: Number(r[5]), metaCrc: Number(r[6]) }
      const tried = new Map<number, [number, number]>()
      const a = Buffer.from(r[4] as Uint8Array)
      for (let p = 0; p + 16 <= a.length; p += 16) tried.set(a.readUInt32BE(p), [a.readUInt32BE(p + 4), a.readDoubleBE(p + 8)])
      let rows = 0
      let bytes = 0
      scanRecords(bodies.dir, f, f.removed, (e) => {
        if (s.byId.has(e.id)) return
        const t = tried.get(e.ord)
        if (t !== undefined) [e.attempts, e.nextAt] = t
        s.add(e)
        rows++
        bytes += e.len
      })
      s.files.set(f.file, f)
      uses.push({ file: f.file, rows, bytes, end: f.end })
    }
    bodies.load(uses)
    return s
  }

  /** The rows of a format 1-3 store (outbox-rows.ts), moved in memory; the next snapshot writes them as records. */
  static fromRows(db: Database, bodies: BodyStore, warn: (message: string) => void, rows: LegacyEntry[]): StoredRecords {
    const s = new StoredRecords(db, bodies, warn)
    for (const e of rows) {
      s.add({
        id: e.id, dest: e.dest, seq: e.seq, createdAt: e.createdAt, expiresAt: e.expiresAt, attempts: e.attempts, nextAt: e.nextAt, route: e.route,
        file: e.file, at: e.at, len: e.len, ord: -1, inline: e.file < 0 ? e.body : undefined, gone: false,
      })
      s.legacy++
    }
    return s
  }

  private add(e: StoredRecord): void {
    this.byId.set(e.id, e)
    let q = this.byDest.get(e.dest)
    if (q === undefined) this.byDest.set(e.dest, (q = new SeqQueue()))
    q.push(e)
    this.count++
    this.bytes += e.len
    if (e.seq > this.highestSeq) this.highestSeq = e.seq
    if (e.attempts !== 0 || e.nextAt !== 0) this.attempted.add(e)
  }

  maxSeq(): number {
    return this.highestSeq
  }

  has(id: string): boolean {
    return this.byId.has(id)
  }

  remove(id: string): number {
    const e = this.byId.get(id)
    if (e === undefined) return 0
    this.byId.delete(id)
    this.attempted.delete(e)
    e.gone = true
    const q = this.byDest.get(e.dest)!
    q.remove(e)
    if (q.live === 0) this.byDest.delete(e.dest)
    this.count--
    this.bytes -= e.len
    this.leave(e)
    if (e.ord < 0) this.legacy--
    return e.len
  }

  /** `e` no longer lives where it was: its bit set, its file's live bytes released. */
  private leave(e: StoredRecord): void {
    if (e.ord >= 0) {
      const f = this.files.get(e.file)
      if (f !== undefined) f.removed[e.ord >> 3]! |= 1 << (e.ord & 7)
    }
    if (e.file >= 0) this.bodies.release(e.file, e.len)
  }

  removeAll(ids: string[]): void {
    for (const id of ids) this.remove(id)
  }

  attempt(id: string, attempts: number, nextAt: number): void {
    const e = this.byId.get(id)
    if (e === undefined) return
    e.attempts = attempts
    e.nextAt = nextAt
    if (attempts !== 0 || nextAt !== 0) this.attempted.add(e)
    else this.attempted.delete(e)
  }

  get(id: string): LiveEntry | undefined {
    const e = this.byId.get(id)
    return e === undefined ? undefined : this.withBodies([e])[0]
  }

  head(dest: string, limit: number, after: number): LiveEntry[] {
    const q = this.byDest.get(dest)
    if (q === undefined) return []
    const picked: StoredRecord[] = []
    for (const e of q.from(after)) {
      if (picked.length >= limit) break
      picked.push(e)
    }
    return this.withBodies(picked)
  }

  hasDest(dest: string): boolean {
    return this.byDest.has(dest)
  }

  destinations(): Iterable<string> {
    return this.byDest.keys()
  }

  perDestination(out: Map<string, { count: number; bytes: number; oldest: number }>): void {
    for (const [dest, q] of this.byDest) {
      let oldest = Infinity
      for (const e of q.from(0)) if (e.createdAt < oldest) oldest = e.createdAt
      out.set(dest, { count: q.live, bytes: q.bytes, oldest })
    }
  }

  all(): LiveEntry[] {
    const list = [...this.byId.values()].sort((a, b) => a.seq - b.seq)
    const out: LiveEntry[] = []
    for (let i = 0; i < list.length; i += READ_BATCH) out.push(...this.withBodies(list.slice(i, i + READ_BATCH)))
    return out
  }

  /**
   * Append to body file `file`: the entries not in a records file yet, the live records of
   * sparse files (within BodyStore's budget), then `hot`; then list every file in use with its
   * removed bitmap and attempts in `waiting_files`. Nothing in memory changes unless it all
   * went into the file.
   */
  store(file: number, hot: LiveEntry[]): void {
    const writer = new RecordsWriter(this.bodies.writer(file))
    const moved: { e: StoredRecord; at: number; ord: number }[] = []
    const dead: number[] = []
    const added: StoredRecord[] = []
    /** Messages still in rows whose body cannot be read: not carried into format 4 (they could never be sent). */
    const lost: StoredRecord[] = []
    const move = (list: StoredRecord[], from: string): boolean => {
      const start = moved.length
      let ok = true
      for (let i = 0; i < list.length; i += READ_BATCH) {
        const part = list.slice(i, i + READ_BATCH)
        const refs = part.filter((e) => e.file >= 0).map((e): BodyRef => ({ id: e.id, file: e.file, at: e.at, len: e.len }))
        const read = this.bodies.read(refs)
        let k = 0
        for (const e of part) {
          const body = e.file >= 0 ? read[k++]! : e.inline!
          if (body instanceof OutpostError) {
            ok = false
            if (from === 'rows') {
              lost.push(e)
              this.warn(`${body.code}: ${body.message}; message ${e.id} to ${e.dest} cannot be moved to store format ${FORMAT_WAITING_RECORDS} without its body, and is dropped`)
            } else if (!this.damaged.has(e.id)) {
              this.damaged.add(e.id)
              this.warn(`${body.code}: ${body.message}; the message is held back and not sent (${from})`)
            }
            continue
          }
          const ord = writer.count
          moved.push({ e, ord, at: writer.add(e, body) })
        }
      }
      if (!ok && from !== 'rows') {
        // A damaged records file stays (its damaged messages are held back when read); its copies are dead weight.
        for (const m of moved.splice(start)) dead.push(m.ord)
      }
      return ok
    }
    let meta: { metaAt: number; metaCrc: number } | undefined
    try {
      if (this.legacy > 0) move([...this.byId.values()].filter((e) => e.ord < 0).sort((a, b) => a.seq - b.seq), 'rows')
      const sparse = this.bodies.sparse().filter((n) => this.files.has(n))
      if (sparse.length > 0) {
        const of = new Map<number, StoredRecord[]>(sparse.map((n) => [n, []]))
        for (const e of this.byId.values()) of.get(e.file)?.push(e)
        for (const [n, list] of of) if (!move(list, `not compacting ${bodyFileName(n)}`)) this.warn(`outbox: not compacting ${bodyFileName(n)}: a record in it is damaged`)
      }
      for (const e of hot) {
        const ord = writer.count
        const at = writer.add(e, e.body)
        added.push({ id: e.id, dest: e.dest, seq: e.seq, createdAt: e.createdAt, expiresAt: e.expiresAt, route: e.route, attempts: e.attempts, nextAt: e.nextAt, file, at, len: e.body.length, ord, inline: undefined, gone: false })
      }
      if (writer.count > 0) meta = writer.finish()
    } catch (err) {
      writer.w.abort()
      throw err
    }
    if (meta === undefined) writer.w.abort()
    else {
      let liveBytes = 0
      for (const m of moved) liveBytes += m.e.len
      for (const e of added) liveBytes += e.len
      const end = writer.w.bytes
      this.bodies.add(writer.w, moved.length + added.length, liveBytes)
      const removed = new Uint8Array((writer.count + 7) >> 3)
      for (const ord of dead) removed[ord >> 3]! |= 1 << (ord & 7)
      this.files.set(file, { file, records: writer.count, end, removed, ...meta })
    }
    for (const e of lost) this.remove(e.id)
    for (const m of moved) {
      this.leave(m.e)
      if (m.e.ord < 0) this.legacy--
      m.e.file = file
      m.e.at = m.at
      m.e.ord = m.ord
      m.e.inline = undefined
    }
    for (const e of added) this.add(e)
    this.list()
  }

  /** `waiting_files` as the files in use now are: one row each. */
  private list(): void {
    const inUse = this.bodies.inUse()
    for (const n of this.files.keys()) if (!inUse.has(n)) this.files.delete(n)
    const tried = new Map<number, StoredRecord[]>()
    for (const e of this.attempted) {
      let l = tried.get(e.file)
      if (l === undefined) tried.set(e.file, (l = []))
      l.push(e)
    }
    const ins = this.insert ??= this.db.prepare('INSERT INTO waiting_files (n, records, bytes, removed, attempts, metaAt, metaCrc) VALUES (?, ?, ?, ?, ?, ?, ?)')
    this.db.exec('BEGIN')
    try {
      this.db.exec('DELETE FROM waiting_files')
      for (const [n, f] of this.files) {
        const list = tried.get(n) ?? []
        const a = Buffer.alloc(16 * list.length)
        for (const [i, e] of list.entries()) {
          a.writeUInt32BE(e.ord, 16 * i)
          a.writeUInt32BE(e.attempts, 16 * i + 4)
          a.writeDoubleBE(e.nextAt, 16 * i + 8)
        }
        ins.run([n, f.records, f.end, f.removed, a, f.metaAt, f.metaCrc])
      }
      this.db.exec(`PRAGMA user_version = ${FORMAT_WAITING_RECORDS}`)
      this.db.exec('COMMIT')
    } catch (err) {
      this.db.exec('ROLLBACK')
      throw err
    }
  }

  free(): void {
    this.insert?.free()
    this.insert = undefined
  }

  /** Entries with their bodies read; one whose body is damaged is left out (and reported once). */
  private withBodies(list: StoredRecord[]): LiveEntry[] {
    const refs: BodyRef[] = []
    for (const e of list) if (e.file >= 0) refs.push({ id: e.id, file: e.file, at: e.at, len: e.len })
    const read = refs.length > 0 ? this.bodies.read(refs) : []
    const out: LiveEntry[] = []
    let k = 0
    for (const e of list) {
      const body = e.file >= 0 ? read[k++]! : e.inline!
      if (body instanceof OutpostError) {
        if (!this.damaged.has(e.id)) {
          this.damaged.add(e.id)
          this.warn(`${body.code}: ${body.message}; the message is held back and not sent (restoring the file sends it)`)
        }
        continue
      }
      const l: LiveEntry = { id: e.id, dest: e.dest, seq: e.seq, createdAt: e.createdAt, expiresAt: e.expiresAt, attempts: e.attempts, nextAt: e.nextAt, body }
      if (e.route !== undefined) l.route = e.route
      out.push(l)
    }
    return out
  }
}
