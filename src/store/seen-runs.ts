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

/** The entry i's key: [start, end) in run.buf. */
function keyAt(run: Run, i: number): [number, number] {
  const o = run.offs[i]!
  return [o + 1, o + 1 + run.buf[o]!]
}

/** Compare entry i of `run` with key bytes k[ks, ke): <0 entry sorts first, 0 same, >0 after. */
function cmp(run: Run, i: number, k: Buffer, ks: number, ke: number): number {
  const [s, e] = keyAt(run, i)
  return run.buf.compare(k, ks, ke, s, e)
}

/** Whether `run` holds key bytes k[ks, ke). */
export function inRun(run: Run, k: Buffer, ks = 0, ke = k.length): boolean {
  let lo = 0
  let hi = run.offs.length - 1
  if (hi < 0 || cmp(run, 0, k, ks, ke) > 0 || cmp(run, hi, k, ks, ke) < 0) return false
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const c = cmp(run, mid, k, ks, ke)
    if (c === 0) return true
    if (c < 0) lo = mid + 1
    else hi = mid - 1
  }
  return false
}

/** A run read back from its bytes (a snapshot's seen_runs row): entries, and their times' bounds. */
export function loadRun(n: number, bytes: Uint8Array): Run {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const offs: number[] = []
  let minAt = Infinity
  let maxAt = -Infinity
  for (let o = 0; o < buf.length;) {
    const end = o + entryBytes(buf[o]!)
    if (end > buf.length) throw new Error(`seen run ${n}: truncated entry at ${o}`)
    offs.push(o)
    const at = buf.readDoubleLE(end - 8)
    if (at < minAt) minAt = at
    if (at > maxAt) maxAt = at
    o = end
  }
  return { n, buf, offs: Uint32Array.from(offs), minAt, maxAt }
}

/** Packs entries (appended in key order) into one run. */
class Packer {
  private buf: Buffer
  private readonly offs: number[] = []
  private o = 0
  private minAt = Infinity
  private maxAt = -Infinity

  constructor(bytes: number) {
    this.buf = Buffer.allocUnsafe(Math.max(bytes, 64))
  }

  /** Append `key` (a string, or bytes of another run) with `at`. */
  push(key: string | Buffer, at: number, ks = 0, ke = 0): void {
    const need = typeof key === 'string' ? entryBytes(Buffer.byteLength(key)) : entryBytes(ke - ks)
    if (this.o + need > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.o + need))
      this.buf.copy(bigger, 0, 0, this.o)
      this.buf = bigger
    }
    const o = this.o
    const len = typeof key === 'string' ? this.buf.write(key, o + 1, 'utf8') : key.copy(this.buf, o + 1, ks, ke)
    this.buf[o] = len
    this.buf.writeDoubleLE(at, o + 1 + len)
    this.offs.push(o)
    this.o = o + entryBytes(len)
    if (at < this.minAt) this.minAt = at
    if (at > this.maxAt) this.maxAt = at
  }

  /** Undo the last push (a key already stored in an older run). */
  pop(): void {
    this.o = this.offs.pop()!
  }

  /** The bytes the last push wrote for its key: [start, end) in the buffer. */
  lastKey(): [Buffer, number, number] {
    const o = this.offs.at(-1)!
    return [this.buf, o + 1, o + 1 + this.buf[o]!]
  }

  get count(): number {
    return this.offs.length
  }

  done(n: number): Run | undefined {
    if (this.offs.length === 0) return undefined
    // Times recomputed: a popped entry may have set them.
    const buf = Buffer.from(this.buf.subarray(0, this.o))
    return loadRun(n, buf)
  }
}

/** Keys sorted by their UTF-8 bytes: a plain sort when all are ASCII (the same order), else by bytes. */
function sortKeys(keys: string[]): string[] {
  // eslint-disable-next-line no-control-regex
  if (keys.every((k) => !/[^\x00-\x7f]/.test(k))) return keys.sort()
  return keys.map((k) => Buffer.from(k)).sort(Buffer.compare).map((b) => b.toString())
}

/** What a snapshot changes in the stored runs: rows to insert, rows to delete. */
export interface RunChanges {
  added: Run[]
  removed: number[]
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
    const changes: RunChanges = { added: [], removed: [] }
    if (this.hot.size > 0) {
      const keys = sortKeys([...this.hot.keys()])
      let bytes = 0
      for (const k of keys) bytes += entryBytes(k.length)
      const p = new Packer(bytes)
      for (const k of keys) {
        const at = this.hot.get(k)!
        if (at < pruneBefore) continue
        p.push(k, at)
        const [b, s, e] = p.lastKey()
        if (this.runs.some((r) => inRun(r, b, s, e))) p.pop()
      }
      const run = p.done(nextN())
      if (run !== undefined) {
        this.runs.push(run)
        changes.added.push(run)
      }
    }
    this.hot.clear()
    this.maintain(pruneBefore, nextN, changes)
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

/** The runs' entries as one run, in key order, without those past the window; a key in both keeps its later time. */
function merge(runs: Run[], pruneBefore: number, nextN: () => number): Run | undefined {
  let bytes = 0
  for (const r of runs) bytes += r.buf.length
  const p = new Packer(bytes)
  const at = (r: Run, i: number): number => r.buf.readDoubleLE(r.offs[i]! + 1 + r.buf[r.offs[i]!]!)
  const pos = runs.map(() => 0)
  for (;;) {
    // The smallest key at the runs' positions (two runs in practice: a linear pick is enough).
    let best = -1
    for (let j = 0; j < runs.length; j++) {
      if (pos[j]! >= runs[j]!.offs.length) continue
      if (best < 0) { best = j; continue }
      const [s, e] = keyAt(runs[best]!, pos[best]!)
      if (cmp(runs[j]!, pos[j]!, runs[best]!.buf, s, e) < 0) best = j
    }
    if (best < 0) break
    const r = runs[best]!
    const [s, e] = keyAt(r, pos[best]!)
    let t = at(r, pos[best]!)
    pos[best]!++
    // The same key in another run: one entry, the later time.
    for (let j = 0; j < runs.length; j++) {
      if (j === best || pos[j]! >= runs[j]!.offs.length || cmp(runs[j]!, pos[j]!, r.buf, s, e) !== 0) continue
      t = Math.max(t, at(runs[j]!, pos[j]!))
      pos[j]!++
    }
    if (t >= pruneBefore) p.push(r.buf, t, s, e)
  }
  return p.done(nextN())
}
