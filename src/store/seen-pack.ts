/**
 * The packed runs of the dedup set (seen-runs.ts): their layout, lookups, packing and merging.
 *
 *   run:  [u8 length][key, UTF-8][f64 LE at] … sorted by key bytes, each key once
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
export const entryBytes = (n: number): number => 1 + n + 8

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
export function cmp(run: Run, i: number, k: Buffer, ks: number, ke: number): number {
  const o = run.offs[i]!
  return cmpBytes(run.buf, o + 1, o + 1 + run.buf[o]!, k, ks, ke)
}

/** The last key of `run`: [start, end) in run.buf. */
export function lastKeyOf(run: Run): [number, number] {
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
export const atOf = (r: Run, i: number): number => r.buf.readDoubleLE(r.offs[i]! + 1 + r.buf[r.offs[i]!]!)

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
export class Packer {
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

/**
 * Keys sorted by their UTF-8 bytes: a plain sort when all are ASCII (the same order), else by
 * bytes. The keys returned are the strings given (their times are looked up by them): a key
 * with a lone surrogate does not survive a round trip through UTF-8 (Buffer writes U+FFFD). Keys
 * whose bytes are the same (lone surrogates) are one: the first kept, its time in `times` the
 * latest of theirs.
 */
export function sortKeys(keys: string[], times: Map<string, number>): { keys: string[]; ascii: boolean } {
  if (keys.every(isAscii)) return { keys: keys.sort(), ascii: true }
  const enc = keys.map((k) => ({ k, b: Buffer.from(k) })).sort((x, y) => Buffer.compare(x.b, y.b))
  const out: string[] = []
  for (let i = 0; i < enc.length; i++) {
    const e = enc[i]!
    const prev = i > 0 ? enc[i - 1]! : undefined
    if (prev !== undefined && prev.b.equals(e.b)) {
      const kept = out[out.length - 1]!
      times.set(kept, Math.max(times.get(kept)!, times.get(e.k)!))
      continue
    }
    out.push(e.k)
  }
  return { keys: out, ascii: false }
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
export function merge(runs: Run[], pruneBefore: number, nextN: () => number): Run | undefined {
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
