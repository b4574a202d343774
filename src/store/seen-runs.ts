/**
 * A set of keys, each with a time, kept as a few sorted, packed runs (store format 3): the
 * receiver's seen ids and the sender's request records (receiver-index.ts). What is new since
 * the last snapshot lives in a Map; a snapshot packs it, sorted, into one run (one buffer,
 * written once to a run file: seen-files.ts), instead of a sql.js row per key (~4-5 µs each).
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

import { atOf, cmp, entryBytes, findInRun, inRun, lastKeyOf, merge, Packer, sortKeys, type Run } from './seen-pack'

export type { Run } from './seen-pack'

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

  /**
   * The greatest stored key as a string: a key above it (a new ULID) is in no run, found without
   * encoding it. Undefined when there is none, or when it holds a surrogate (string order and
   * byte order can then disagree).
   */
  private maxKey: string | undefined

  constructor(runs: Run[] = []) {
    this.runs = runs
    this.findMax()
  }

  private findMax(): void {
    let top: Run | undefined
    for (const r of this.runs) if (top === undefined || cmp(r, r.offs.length - 1, top.buf, ...lastKeyOf(top)) > 0) top = r
    const max = top === undefined ? undefined : top.buf.toString('utf8', ...lastKeyOf(top))
    this.maxKey = max === undefined || /[\uD800-\uDFFF]/.test(max) ? undefined : max
  }

  /**
   * The greatest key in `hot` (string order): a key above it is not there, answered without a
   * lookup in a Map of up to a checkpoint's ids (a new ULID, which sorts by time, nearly always is).
   */
  private hotMax: string | undefined

  add(key: string, at: number): void {
    this.hot.set(key, at)
    if (this.hotMax === undefined || key > this.hotMax) this.hotMax = key
  }

  has(key: string): boolean {
    const pastRuns = this.runs.length === 0 || (this.maxKey !== undefined && key > this.maxKey)
    if (pastRuns && (this.hotMax === undefined || key > this.hotMax)) return false
    if (this.hot.has(key)) return true
    if (pastRuns) return false
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
      const { keys, ascii } = sortKeys([...this.hot.keys()], this.hot)
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
    this.hotMax = undefined
    this.maintain(pruneBefore, nextN, changes)
    // A run rewritten and then merged away or dropped is no update; one added this time is written whole.
    changes.updated = changes.updated.filter((r) => this.runs.includes(r) && !changes.added.includes(r))
    this.findMax()
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

