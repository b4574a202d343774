/**
 * One destination's messages in memory, in seq order: an array appended to at each commit, a
 * removed entry marked and skipped (the array is compacted once most of it is gone). Cheaper
 * per message than a Map per destination (an append, no hashing), which the outbox index paid
 * for every message accepted and again for every removal.
 */
import type { LiveEntry } from './outbox-table'

/** Compact once this many entries at the front are gone (and they are half the array or more). */
const FRONT_SLACK = 1024

export class DestQueue {
  /**
   * Entries in the order added (seq order). Removed from the front: the slot is emptied (the
   * entry and its body can go at once); elsewhere: in `gone` until compacted.
   */
  private items: (LiveEntry | undefined)[] = []
  /** Index of the first entry that may be live. */
  private start = 0
  private readonly gone = new WeakSet<LiveEntry>()
  /** Entries still live. */
  size = 0
  /** Body bytes of the live entries. */
  bytes = 0
  /**
   * Whether createdAt never went down along the array since it was last empty: the oldest live
   * entry is then the first (what `outpost status` asks for at every poll, without a walk).
   */
  private ordered = true

  add(e: LiveEntry): void {
    const last = this.items.length > this.start ? this.items[this.items.length - 1] : undefined
    if (last !== undefined && e.createdAt < last.createdAt) this.ordered = false
    this.items.push(e)
    this.size++
    this.bytes += e.body.length
  }

  /** `e` (an entry of this queue) is removed. */
  delete(e: LiveEntry): void {
    const { items } = this
    if (items[this.start] === e) {
      // The usual case: acknowledged in order.
      items[this.start++] = undefined
      for (let next = items[this.start]; next !== undefined && this.gone.has(next); next = items[this.start]) {
        this.gone.delete(next)
        items[this.start++] = undefined
      }
    } else {
      this.gone.add(e)
    }
    this.size--
    this.bytes -= e.body.length
    if (this.size === 0) {
      this.items = []
      this.start = 0
      this.ordered = true
    } else if (this.start >= FRONT_SLACK && this.start * 2 >= this.items.length) {
      this.items = this.items.slice(this.start)
      this.start = 0
    } else if (this.items.length - this.start > 4 * this.size + FRONT_SLACK) {
      // Removed out of order, mostly: keep only the live ones.
      this.items = this.items.slice(this.start).filter((x) => x !== undefined && !this.gone.has(x))
      this.start = 0
    }
  }

  /** createdAt of the oldest live entry (Infinity when none). */
  oldest(): number {
    if (this.size === 0) return Infinity
    // The first slot from `start` is live: removals at the front step over gone entries at once.
    if (this.ordered) return this.items[this.start]!.createdAt
    let min = Infinity
    for (const e of this.values()) if (e.createdAt < min) min = e.createdAt
    return min
  }

  /**
   * Up to `limit` live entries with a seq above `after`, in seq order, pushed onto `out`. The
   * slots from `start` on all hold entries (only `gone` marks removed ones there) in seq order:
   * the first one past `after` is found by bisection, not by stepping over the ones in flight.
   */
  after(after: number, limit: number, out: LiveEntry[]): void {
    const { items, gone } = this
    let lo = this.start
    let hi = items.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (items[mid]!.seq > after) hi = mid
      else lo = mid + 1
    }
    for (let i = lo; i < items.length && out.length < limit; i++) {
      const e = items[i]!
      if (!gone.has(e)) out.push(e)
    }
  }

  /** Live entries in seq order. */
  *values(): IterableIterator<LiveEntry> {
    const { items, gone } = this
    for (let i = this.start; i < items.length; i++) {
      const e = items[i]
      if (e !== undefined && !gone.has(e)) yield e
    }
  }
}
