/**
 * The stored messages of store format 4: records in the snapshots' body files
 * (waiting-records.ts), an index of them in memory (waiting-index.ts), and per file a bitmap of the records
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
import type { Route } from './outbox-ops'
import type { LegacyEntry } from './outbox-rows'
import { FORMAT_WAITING_RECORDS, type LiveEntry, type StoredMessages, WAITING_TABLE } from './outbox-table'
import { IdTable } from './waiting-ids'
import { Columns, SlotQueue } from './waiting-index'
import { RecordsWriter, type RecordsFileInfo, scanRecords, type WaitingMeta } from './waiting-records'

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
  private readonly cols = new Columns()
  /** Slots by id (no string nor Map entry a message). */
  private readonly ids = new IdTable()
  private readonly byDest = new Map<string, SlotQueue>()
  private readonly files = new Map<number, RecordsFile>()
  /**
   * Attempts and nextAt of the slots that have any (few: those a delivery tried), not a column
   * each (12 bytes for every stored message); what a snapshot lists besides the bitmaps.
   */
  private readonly tries = new Map<number, [attempts: number, nextAt: number]>()
  /** Bodies of messages moved from format-1 rows (inline), until the next snapshot writes them. */
  private readonly inline = new Map<number, Uint8Array>()
  /** Messages not in a records file yet (moved from rows at open). */
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
    const files = db.exec('SELECT n, records, bytes, removed, attempts, metaAt, metaCrc FROM waiting_files ORDER BY n')[0]?.values ?? []
    // Room in the id table for the records not removed (a bit each in the bitmap).
    let live = 0
    for (const r of files) {
      live += Number(r[1])
      for (const byte of r[3] as Uint8Array) for (let b = byte; b !== 0; b &= b - 1) live--
    }
    s.ids.reserve(live)
    s.cols.reserve(live)
    const uses: { file: number; rows: number; bytes: number; end: number }[] = []
    for (const r of files) {
      const f: RecordsFile = { file: Number(r[0]), records: Number(r[1]), end: Number(r[2]), removed: new Uint8Array(r[3] as Uint8Array), metaAt: Number(r[5]), metaCrc: Number(r[6]) }
      const tried = new Map<number, [number, number]>()
      const a = Buffer.from(r[4] as Uint8Array)
      for (let p = 0; p + 16 <= a.length; p += 16) tried.set(a.readUInt32BE(p), [a.readUInt32BE(p + 4), a.readDoubleBE(p + 8)])
      let rows = 0
      let bytes = 0
      scanRecords(bodies.dir, f, f.removed, (block, idAt, idLen, dest, seq, createdAt, expiresAt, route, ord, at, len) => {
        const h = s.ids.hashOf(block, idAt, idLen)
        if (s.ids.findBytes(block, idAt, idLen, h) >= 0) return
        const t = tried.size > 0 ? tried.get(ord) : undefined
        s.ids.addBytes(s.addFields(dest, seq, createdAt, expiresAt, route, f.file, at, len, ord, t?.[0] ?? 0, t?.[1] ?? 0), block, idAt, idLen, h)
        rows++
        bytes += len
      })
      s.files.set(f.file, f)
      uses.push({ file: f.file, rows, bytes, end: f.end })
    }
    s.ids.trim()
    bodies.load(uses)
    return s
  }

  /** The rows of a format 1-3 store (outbox-rows.ts), moved in memory; the next snapshot writes them as records. */
  static fromRows(db: Database, bodies: BodyStore, warn: (message: string) => void, rows: LegacyEntry[]): StoredRecords {
    const s = new StoredRecords(db, bodies, warn)
    for (const e of rows) {
      const slot = s.add(e, e.file, e.at, e.len, -1, e.attempts, e.nextAt)
      if (e.file < 0) s.inline.set(slot, e.body)
      s.legacy++
    }
    return s
  }

  private add(m: WaitingMeta, file: number, at: number, len: number, ord: number, attempts: number, nextAt: number): number {
    const slot = this.addFields(m.dest, m.seq, m.createdAt, m.expiresAt, m.route, file, at, len, ord, attempts, nextAt)
    this.ids.add(slot, m.id)
    return slot
  }

  /** A slot for a message, in its destination's queue; the caller adds its id to `ids`. */
  private addFields(dest: string, seq: number, createdAt: number, expiresAt: number, route: Route | undefined, file: number, at: number, len: number, ord: number, attempts: number, nextAt: number): number {
    const c = this.cols
    const slot = c.take()
    c.seq[slot] = seq
    c.createdAt[slot] = createdAt
    c.expiresAt[slot] = expiresAt
    c.setDest(slot, dest)
    c.setRoute(slot, route)
    c.file[slot] = file
    c.at[slot] = at
    c.len[slot] = len
    c.ord[slot] = ord
    let q = this.byDest.get(dest)
    if (q === undefined) this.byDest.set(dest, (q = new SlotQueue(c)))
    q.push(slot)
    this.count++
    this.bytes += len
    if (seq > this.highestSeq) this.highestSeq = seq
    if (attempts !== 0 || nextAt !== 0) this.tries.set(slot, [attempts, nextAt])
    return slot
  }

  maxSeq(): number {
    return this.highestSeq
  }

  has(id: string): boolean {
    return this.ids.find(id) >= 0
  }

  remove(id: string): number {
    const slot = this.ids.find(id)
    if (slot < 0) return 0
    const c = this.cols
    const len = c.len[slot]!
    const dest = c.destOf(slot)
    this.ids.remove(slot)
    this.tries.delete(slot)
    this.inline.delete(slot)
    this.leave(slot)
    if (c.ord[slot]! < 0) this.legacy--
    c.release(slot)
    const q = this.byDest.get(dest)!
    q.removed(len)
    if (q.live === 0) this.byDest.delete(dest)
    this.count--
    this.bytes -= len
    return len
  }

  /** The message in `slot` no longer lives where it was: its bit set, its file's live bytes released. */
  private leave(slot: number): void {
    const c = this.cols
    const ord = c.ord[slot]!
    const file = c.file[slot]!
    if (ord >= 0) {
      const f = this.files.get(file)
      if (f !== undefined) f.removed[ord >> 3]! |= 1 << (ord & 7)
    }
    if (file >= 0) this.bodies.release(file, c.len[slot]!)
  }

  removeAll(ids: string[]): void {
    for (const id of ids) this.remove(id)
  }

  attempt(id: string, attempts: number, nextAt: number): void {
    const slot = this.ids.find(id)
    if (slot < 0) return
    if (attempts !== 0 || nextAt !== 0) this.tries.set(slot, [attempts, nextAt])
    else this.tries.delete(slot)
  }

  get(id: string): LiveEntry | undefined {
    const slot = this.ids.find(id)
    return slot < 0 ? undefined : this.withBodies([slot])[0]
  }

  head(dest: string, limit: number, after: number): LiveEntry[] {
    const q = this.byDest.get(dest)
    if (q === undefined) return []
    const picked: number[] = []
    for (const slot of q.from(after)) {
      if (picked.length >= limit) break
      picked.push(slot)
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
    // Kept up by each queue as messages come and go: a poll walks no messages.
    for (const [dest, q] of this.byDest) out.set(dest, { count: q.live, bytes: q.bytes, oldest: q.oldest() })
  }

  all(): LiveEntry[] {
    const list = [...this.ids.slots()].sort((a, b) => this.cols.seq[a]! - this.cols.seq[b]!)
    const out: LiveEntry[] = []
    for (let i = 0; i < list.length; i += READ_BATCH) out.push(...this.withBodies(list.slice(i, i + READ_BATCH)))
    return out
  }

  /** What a record says of the message in `slot`. */
  private meta(slot: number): WaitingMeta {
    const c = this.cols
    return { id: this.ids.idOf(slot), dest: c.destOf(slot), seq: c.seq[slot]!, createdAt: c.createdAt[slot]!, expiresAt: c.expiresAt[slot]!, route: c.routeOf(slot) }
  }

  /**
   * Append to body file `file`: the messages not in a records file yet, the live records of
   * sparse files (within BodyStore's budget), then `hot`; then list every file in use with its
   * removed bitmap and attempts in `waiting_files`. Nothing in memory changes unless it all
   * went into the file.
   */
  store(file: number, hot: LiveEntry[]): void {
    const c = this.cols
    const writer = new RecordsWriter(this.bodies.writer(file))
    const moved: { slot: number; at: number; ord: number }[] = []
    const dead: number[] = []
    /** Messages still in rows whose body cannot be read: not carried into format 4 (they could never be sent). */
    const lost: string[] = []
    const hotAt: number[] = []
    const move = (list: number[], from: string): boolean => {
      const start = moved.length
      let ok = true
      for (let i = 0; i < list.length; i += READ_BATCH) {
        const part = list.slice(i, i + READ_BATCH)
        const refs = part.filter((s) => c.file[s]! >= 0).map((s): BodyRef => ({ id: this.ids.idOf(s), file: c.file[s]!, at: c.at[s]!, len: c.len[s]! }))
        const read = this.bodies.read(refs)
        let k = 0
        for (const slot of part) {
          const body = c.file[slot]! >= 0 ? read[k++]! : this.inline.get(slot)!
          const id = this.ids.idOf(slot)
          if (body instanceof OutpostError) {
            ok = false
            if (from === 'rows') {
              lost.push(id)
              this.warn(`${body.code}: ${body.message}; message ${id} to ${c.destOf(slot)} cannot be moved to store format ${FORMAT_WAITING_RECORDS} without its body, and is dropped`)
            } else if (!this.damaged.has(id)) {
              this.damaged.add(id)
              this.warn(`${body.code}: ${body.message}; the message is held back and not sent (${from})`)
            }
            continue
          }
          const ord = writer.count
          moved.push({ slot, ord, at: writer.add(this.meta(slot), body) })
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
      if (this.legacy > 0) move([...this.ids.slots()].filter((s) => c.ord[s]! < 0).sort((a, b) => c.seq[a]! - c.seq[b]!), 'rows')
      const sparse = this.bodies.sparse().filter((n) => this.files.has(n))
      if (sparse.length > 0) {
        const of = new Map<number, number[]>(sparse.map((n) => [n, []]))
        for (const slot of this.ids.slots()) of.get(c.file[slot]!)?.push(slot)
        for (const [n, list] of of) if (!move(list, `not compacting ${bodyFileName(n)}`)) this.warn(`outbox: not compacting ${bodyFileName(n)}: a record in it is damaged`)
      }
      for (const e of hot) hotAt.push(writer.add(e, e.body))
      if (writer.count > 0) meta = writer.finish()
    } catch (err) {
      writer.w.abort()
      throw err
    }
    const hotOrd = writer.count - hot.length
    if (meta === undefined) writer.w.abort()
    else {
      let liveBytes = 0
      for (const m of moved) liveBytes += c.len[m.slot]!
      for (const e of hot) liveBytes += e.body.length
      const end = writer.w.bytes
      this.bodies.add(writer.w, moved.length + hot.length, liveBytes)
      const removed = new Uint8Array((writer.count + 7) >> 3)
      for (const ord of dead) removed[ord >> 3]! |= 1 << (ord & 7)
      this.files.set(file, { file, records: writer.count, end, removed, ...meta })
    }
    for (const id of lost) this.remove(id)
    for (const m of moved) {
      this.leave(m.slot)
      if (c.ord[m.slot]! < 0) this.legacy--
      c.file[m.slot] = file
      c.at[m.slot] = m.at
      c.ord[m.slot] = m.ord
      this.inline.delete(m.slot)
    }
    c.reserve(this.count + hot.length)
    this.ids.reserve(this.count + hot.length)
    for (const [i, e] of hot.entries()) this.add(e, file, hotAt[i]!, e.body.length, hotOrd + i, e.attempts, e.nextAt)
    this.list()
  }

  /** `waiting_files` as the files in use now are: one row each. */
  private list(): void {
    const c = this.cols
    const inUse = this.bodies.inUse()
    for (const n of this.files.keys()) if (!inUse.has(n)) this.files.delete(n)
    const tried = new Map<number, number[]>()
    for (const slot of this.tries.keys()) {
      let l = tried.get(c.file[slot]!)
      if (l === undefined) tried.set(c.file[slot]!, (l = []))
      l.push(slot)
    }
    const ins = this.insert ??= this.db.prepare('INSERT INTO waiting_files (n, records, bytes, removed, attempts, metaAt, metaCrc) VALUES (?, ?, ?, ?, ?, ?, ?)')
    this.db.exec('BEGIN')
    try {
      this.db.exec('DELETE FROM waiting_files')
      for (const [n, f] of this.files) {
        const list = tried.get(n) ?? []
        const a = Buffer.alloc(16 * list.length)
        for (const [i, slot] of list.entries()) {
          a.writeUInt32BE(c.ord[slot]!, 16 * i)
          const [attempts, nextAt] = this.tries.get(slot)!
          a.writeUInt32BE(attempts, 16 * i + 4)
          a.writeDoubleBE(nextAt, 16 * i + 8)
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
  private withBodies(list: number[]): LiveEntry[] {
    const c = this.cols
    const refs: BodyRef[] = []
    for (const s of list) if (c.file[s]! >= 0) refs.push({ id: this.ids.idOf(s), file: c.file[s]!, at: c.at[s]!, len: c.len[s]! })
    const read = refs.length > 0 ? this.bodies.read(refs) : []
    const out: LiveEntry[] = []
    let k = 0
    for (const s of list) {
      const body = c.file[s]! >= 0 ? read[k++]! : this.inline.get(s)!
      const id = this.ids.idOf(s)
      if (body instanceof OutpostError) {
        if (!this.damaged.has(id)) {
          this.damaged.add(id)
          this.warn(`${body.code}: ${body.message}; the message is held back and not sent (restoring the file sends it)`)
        }
        continue
      }
      const t = this.tries.get(s)
      const l: LiveEntry = { id, dest: c.destOf(s), seq: c.seq[s]!, createdAt: c.createdAt[s]!, expiresAt: c.expiresAt[s]!, attempts: t?.[0] ?? 0, nextAt: t?.[1] ?? 0, body }
      const route = c.routeOf(s)
      if (route !== undefined) l.route = route
      out.push(l)
    }
    return out
  }
}
