/**
 * A set of keys, each with a time, kept as a few sorted, packed runs (store format 3): the
 * receiver's seen ids and the sender's request records (receiver-index.ts). What is new since
 * the last snapshot lives in a Map; a snapshot packs it, sorted, into one run (one buffer, and
 * one sql.js row holding the same bytes), instead of a sql.js row per key (~4-5 µs each).
 *
 *   run:  [u8 length][key, UTF-8][f64 LE at] … sorted by key bytes, each key once
 *   snapshot: new keys ─▶ sorted ─▶ packed run ─▶ runs past the window dropped, runs a quarter
 *             expired rewritten, the newest two merged while the newer holds half the older or more
 *
 * Runs grow by merging the newest two (sizes fall geometrically: log n runs, each key copied
 * log n times over its life). A key is looked up only in runs whose first..last range holds it:
 * new ids (ULIDs, which sort by time) are past every run, and cost no search.
 * Keys are kept at least until `at` falls out of the window (a run is pruned once its estimated
 * expired share reaches a quarter, by its oldest and newest times): a key may outlive the window
 * by up to a quarter of its run's span, never less.
 */

export interface Run {
  /** Its row in sql.js's seen_runs table. */
  n: number
  buf: Buffer
  /** Where each entry starts in buf. */
  offs: Uint32Array
  minAt: number
  maxAt: number
}

/** Bytes of a packed entry of an n-byte key. */
const entryBytes = (n: number): number => 1 + n + 8

/**
 * a[as, ae) against b[bs, be) as bytes: <0, 0, >0. A loop here rather than Buffer.compare: keys
 * are short, and the native call costs more than the comparison (~3x, measured at a snapshot).
 */
function cmpBytes(a: Buffer, as: number, ae: number, b: Buffer, bs: number, be: number): number {
  const n = Math.min(ae - as, be - bs)
  for (let i = 0; i < n; i++) {
    const d = a[as + i]! - b[bs + i]!
    if (d !== 0) return d
  }
  return (ae - as) - (be - bs)
}

/** Compare entry i of `run` with key bytes k[ks, ke): <0 entry sorts first, 0 same, >0 after. */
function cmp(run: Run, i: number, k: Buffer, ks: number, ke: number): number {
  const o = run.offs[i]!
  return cmpBytes(run.buf, o + 1, o + 1 + run.buf[o]!, k, ks, ke)
}

/** The last key of `run`: [start, end) in run.buf. */
function lastKeyOf(run: Run): [number, number] {
  const o = run.offs[run.offs.length - 1]!
  return [o + 1, o + 1 + run.buf[o]!]
}

/** Where `run` holds key bytes k[ks, ke): its entry's index, or -1. */
export function findInRun(run: Run, k: Buffer, ks = 0, ke = k.length): number {
  let lo = 0
  let hi = run.offs.length - 1
  if (hi < 0 || cmp(run, hi, k, ks, ke) < 0 || cmp(run, 0, k, ks, ke) > 0) return -1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const c = cmp(run, mid, k, ks, ke)
    if (c === 0) return mid
    if (c < 0) lo = mid + 1
    else hi = mid - 1
  }
  return -1
}

/** Whether `run` holds key bytes k[ks, ke). */
export function inRun(run: Run, k: Buffer, ks = 0, ke = k.length): boolean {
  return findInRun(run, k, ks, ke) >= 0
}

/** Entry i's time. */
const atOf = (r: Run, i: number): number => r.buf.readDoubleLE(r.offs[i]! + 1 + r.buf[r.offs[i]!]!)

/** A run read back from its bytes (a snapshot's seen_runs row): entries, and their times' bounds. */
export function loadRun(n: number, bytes: Uint8Array): Run {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let count = 0
  for (let o = 0; o < buf.length; o += entryBytes(buf[o]!)) count++
  const offs = new Uint32Array(count)
  let minAt = Infinity
  let maxAt = -Infinity
  let i = 0
  for (let o = 0; o < buf.length;) {
    const end = o + entryBytes(buf[o]!)
    if (end > buf.length) throw new Error(`seen run ${n}: truncated entry at ${o}`)
    offs[i++] = o
    const at = buf.readDoubleLE(end - 8)
    if (at < minAt) minAt = at
    if (at > maxAt) maxAt = at
    o = end
  }
  return { n, buf, offs, minAt, maxAt }
}

/** Packs entries (appended in key order) into one run. */
class Packer {
  private buf: Buffer
  private offs: Uint32Array
  private count = 0
  private o = 0
  private minAt = Infinity
  private maxAt = -Infinity
  /** An entry was taken back: the times' bounds are recomputed at the end. */
  private popped = false

  constructor(bytes: number, entries: number) {
    this.buf = Buffer.allocUnsafe(Math.max(bytes, 64))
    this.offs = new Uint32Array(Math.max(entries, 16))
  }

  private room(need: number): void {
    if (this.o + need > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.o + need))
      this.buf.copy(bigger, 0, 0, this.o)
      this.buf = bigger
    }
    if (this.count === this.offs.length) {
      const more = new Uint32Array(this.offs.length * 2)
      more.set(this.offs)
      this.offs = more
    }
    this.offs[this.count++] = this.o
  }

  private timed(at: number): void {
    if (at < this.minAt) this.minAt = at
    if (at > this.maxAt) this.maxAt = at
  }

  /** Append a key given as a string (`ascii`: every char code below 128, written a byte each). */
  pushKey(key: string, at: number, ascii: boolean): void {
    const len = ascii ? key.length : Buffer.byteLength(key)
    this.room(entryBytes(len))
    const { buf } = this
    const o = this.o
    buf[o] = len
    if (ascii) for (let i = 0; i < len; i++) buf[o + 1 + i] = key.charCodeAt(i)
    else buf.write(key, o + 1, 'utf8')
    buf.writeDoubleLE(at, o + 1 + len)
    this.o = o + entryBytes(len)
    this.timed(at)
  }

  /** Append entry i of `run` (key and time) with time `at`. */
  pushEntry(run: Run, i: number, at: number): void {
    const from = run.offs[i]!
    const size = entryBytes(run.buf[from]!)
    this.room(size)
    const { buf } = this
    const o = this.o
    const src = run.buf
    for (let k = 0; k < size - 8; k++) buf[o + k] = src[from + k]!
    buf.writeDoubleLE(at, o + size - 8)
    this.o = o + size
    this.timed(at)
  }

  /**
   * Append entries [i, j) of `run` as they are (one copy: keys and times), when none of them is
   * past the window and no other run has a key among them.
   */
  pushBlock(run: Run, i: number, j: number): void {
    if (j <= i) return
    const from = run.offs[i]!
    const to = j < run.offs.length ? run.offs[j]! : run.buf.length
    const n = j - i
    if (this.o + (to - from) > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.o + (to - from)))
      this.buf.copy(bigger, 0, 0, this.o)
      this.buf = bigger
    }
    if (this.count + n > this.offs.length) {
      const more = new Uint32Array(Math.max(this.offs.length * 2, this.count + n))
      more.set(this.offs.subarray(0, this.count))
      this.offs = more
    }
    run.buf.copy(this.buf, this.o, from, to)
    const shift = this.o - from
    for (let k = 0; k < n; k++) this.offs[this.count + k] = run.offs[i + k]! + shift
    this.count += n
    this.o += to - from
    this.timed(run.minAt)
    this.timed(run.maxAt)
  }

  /** Undo the last push (a key already stored in an older run). */
  pop(): void {
    this.o = this.offs[--this.count]!
    this.popped = true
  }

  /** The bytes the last push wrote for its key: [start, end) in the buffer. */
  lastKey(): [Buffer, number, number] {
    const o = this.offs[this.count - 1]!
    return [this.buf, o + 1, o + 1 + this.buf[o]!]
  }

  done(n: number): Run | undefined {
    if (this.count === 0) return undefined
    // Copied to its size: a run lives for hours.
    const buf = Buffer.from(this.buf.subarray(0, this.o))
    if (this.popped) return loadRun(n, buf)
    return { n, buf, offs: this.offs.slice(0, this.count), minAt: this.minAt, maxAt: this.maxAt }
  }
}

/** Whether every char code of `k` is below 128 (its UTF-8 is a byte a char, and sorts as the string does). */
function isAscii(k: string): boolean {
  for (let i = 0; i < k.length; i++) if (k.charCodeAt(i) > 127) return false
  return true
}

/** Keys sorted by their UTF-8 bytes: a plain sort when all are ASCII (the same order), else by bytes. */
function sortKeys(keys: string[]): { keys: string[]; ascii: boolean } {
  if (keys.every(isAscii)) return { keys: keys.sort(), ascii: true }
  return { keys: keys.map((k) => Buffer.from(k)).sort(Buffer.compare).map((b) => b.toString()), ascii: false }
}

/** What a snapshot changes in the stored runs: rows to insert, rows to delete, rows rewritten (a key's later time). */
export interface RunChanges {
  added: Run[]
  removed: number[]
  updated: Run[]
}

export class SeenSet {
  /** Keys added since the last snapshot. */
  readonly hot = new Map<string, number>()
  /** Oldest first. */
  runs: Run[] = []

  constructor(runs: Run[] = []) {
    this.runs = runs
  }

  add(key: string, at: number): void {
    this.hot.set(key, at)
  }

  has(key: string): boolean {
    if (this.hot.has(key)) return true
    if (this.runs.length === 0) return false
    const k = Buffer.from(key)
    for (let i = this.runs.length - 1; i >= 0; i--) if (inRun(this.runs[i]!, k)) return true
    return false
  }

  /** Keys held in runs (a key replayed after a crash is in at most one of them and the Map). */
  get storedCount(): number {
    let n = 0
    for (const r of this.runs) n += r.offs.length
    return n
  }

  get size(): number {
    return this.hot.size + this.storedCount
  }

  /** Bytes the runs take (the same again in sql.js). */
  get bytes(): number {
    let n = 0
    for (const r of this.runs) n += r.buf.length + r.offs.byteLength
    return n
  }

  /**
   * At a snapshot: the new keys as one run (keys already stored, as a crash's replayed journal
   * brings back, left out; keys past the window too), then pruning and merging. `nextN` numbers
   * new runs.
   */
  flush(pruneBefore: number, nextN: () => number): RunChanges {
    const changes: RunChanges = { added: [], removed: [], updated: [] }
    if (this.hot.size > 0) {
      const { keys, ascii } = sortKeys([...this.hot.keys()])
      let bytes = 0
      for (const k of keys) bytes += entryBytes(k.length)
      const p = new Packer(bytes, keys.length)
      const runs = this.runs
      // The greatest stored key: the sorted new keys past it (new ULIDs: nearly all) need no lookup.
      let top: Run | undefined
      for (const r of runs) if (top === undefined || cmp(r, r.offs.length - 1, top.buf, ...lastKeyOf(top)) > 0) top = r
      let pastAll = top === undefined
      for (const k of keys) {
        const at = this.hot.get(k)!
        if (at < pruneBefore) continue
        p.pushKey(k, at, ascii)
        if (pastAll) continue
        const [b, s, e] = p.lastKey()
        if (cmp(top!, top!.offs.length - 1, b, s, e) < 0) {
          pastAll = true
          continue
        }
        for (const r of runs) {
          const i = findInRun(r, b, s, e)
          if (i < 0) continue
          // Stored already (a journal replayed over a snapshot holding it, a key marked again):
          // one entry, with the later time, so that it is never forgotten early.
          p.pop()
          if (atOf(r, i) < at) {
            r.buf.writeDoubleLE(at, r.offs[i]! + 1 + r.buf[r.offs[i]!]!)
            if (at > r.maxAt) r.maxAt = at
            if (!changes.updated.includes(r)) changes.updated.push(r)
          }
          break
        }
      }
      const run = p.done(nextN())
      if (run !== undefined) {
        this.runs.push(run)
        changes.added.push(run)
      }
    }
    this.hot.clear()
    this.maintain(pruneBefore, nextN, changes)
    // A run rewritten and then merged away or dropped is no update; one added this time is written whole.
    changes.updated = changes.updated.filter((r) => this.runs.includes(r) && !changes.added.includes(r))
    return changes
  }

  private maintain(pruneBefore: number, nextN: () => number, changes: RunChanges): void {
    const replace = (old: Run[], by: Run | undefined): void => {
      for (const r of old) {
        const added = changes.added.indexOf(r)
        if (added >= 0) changes.added.splice(added, 1)
        else changes.removed.push(r.n)
      }
      if (by !== undefined) changes.added.push(by)
    }
    const kept: Run[] = []
    for (const r of this.runs) {
      if (r.maxAt < pruneBefore) {
        replace([r], undefined)
        continue
      }
      // The share expired, estimated from the run's span of times: a quarter or more, rewritten.
      if (r.minAt < pruneBefore && (pruneBefore - r.minAt) * 4 >= r.maxAt - r.minAt) {
        const by = merge([r], pruneBefore, nextN)
        replace([r], by)
        if (by !== undefined) kept.push(by)
        continue
      }
      kept.push(r)
    }
    this.runs = kept
    while (this.runs.length >= 2) {
      const newer = this.runs.at(-1)!
      const older = this.runs.at(-2)!
      if (newer.offs.length * 2 < older.offs.length) break
      const by = merge([older, newer], pruneBefore, nextN)
      replace([older, newer], by)
      this.runs.splice(-2, 2, ...(by !== undefined ? [by] : []))
    }
  }
}

/** The first entry of `run` from i on whose key is not below entry k of `other` (binary search). */
function firstNotBelow(run: Run, i: number, other: Run, k: number): number {
  const o = other.offs[k]!
  const ks = o + 1
  const ke = ks + other.buf[o]!
  let lo = i
  let hi = run.offs.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (cmp(run, mid, other.buf, ks, ke) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** The runs' entries as one run, in key order, without those past the window; a key in both keeps its later time. */
function merge(runs: Run[], pruneBefore: number, nextN: () => number): Run | undefined {
  let bytes = 0
  let entries = 0
  for (const r of runs) {
    bytes += r.buf.length
    entries += r.offs.length
  }
  const p = new Packer(bytes, entries)
  const at = atOf
  const pos = runs.map(() => 0)
  for (;;) {
    // The smallest key at the runs' positions (two runs in practice: a linear pick is enough).
    let best = -1
    for (let j = 0; j < runs.length; j++) {
      if (pos[j]! >= runs[j]!.offs.length) continue
      if (best < 0) { best = j; continue }
      const b = runs[best]!
      const o = b.offs[pos[best]!]!
      if (cmp(runs[j]!, pos[j]!, b.buf, o + 1, o + 1 + b.buf[o]!) < 0) best = j
    }
    if (best < 0) break
    const r = runs[best]!
    const i = pos[best]!
    if (runs.length === 2 && r.minAt >= pruneBefore) {
      // Keys of this run below the other's next one go in one copy (runs of consecutive
      // snapshots of ULIDs barely overlap: a merge is then little more than a memcpy).
      const other = runs[1 - best]!
      const op = pos[1 - best]!
      const j = op < other.offs.length ? firstNotBelow(r, i, other, op) : r.offs.length
      if (j > i + 1) {
        p.pushBlock(r, i, j)
        pos[best] = j
        continue
      }
    }
    const o = r.offs[i]!
    let t = at(r, i)
    pos[best]!++
    // The same key in another run: one entry, the later time.
    for (let j = 0; j < runs.length; j++) {
      if (j === best || pos[j]! >= runs[j]!.offs.length || cmp(runs[j]!, pos[j]!, r.buf, o + 1, o + 1 + r.buf[o]!) !== 0) continue
      t = Math.max(t, at(runs[j]!, pos[j]!))
      pos[j]!++
    }
    if (t >= pruneBefore) p.pushEntry(r, i, t)
  }
  return p.done(nextN())
}
