/**
 * One destination's messages in memory, in seq order: an array appended to at each commit, a
 * removed entry marked and skipped (the array is compacted once most of it is gone). Cheaper
 * per message than a Map per destination (an append, no hashing), which the outbox index paid
 * for every message accepted and again for every removal.
 */
import type { StoredRecord } from './waiting-records'
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

  add(e: LiveEntry): void {
    this.items.push(e)
    this.size++
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
    if (this.size === 0) {
      this.items = []
      this.start = 0
    } else if (this.start >= FRONT_SLACK && this.start * 2 >= this.items.length) {
      this.items = this.items.slice(this.start)
      this.start = 0
    } else if (this.items.length - this.start > 4 * this.size + FRONT_SLACK) {
      // Removed out of order, mostly: keep only the live ones.
      this.items = this.items.slice(this.start).filter((x) => x !== undefined && !this.gone.has(x))
      this.start = 0
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

/**
 * One destination's stored messages (format 4, outbox-records.ts) in seq order: removed ones
 * skipped, the array compacted once most are gone; a read from a seq finds its place by binary search.
 */
export class SeqQueue {
  private items: StoredRecord[] = []
  private start = 0
  private sorted = true
  live = 0
  bytes = 0

  push(e: StoredRecord): void {
    const last = this.items[this.items.length - 1]
    if (last !== undefined && last.seq > e.seq) this.sorted = false
    this.items.push(e)
    this.live++
    this.bytes += e.len
  }

  remove(e: StoredRecord): void {
    this.live--
    this.bytes -= e.len
    const { items } = this
    while (this.start < items.length && items[this.start]!.gone) this.start++
    if (this.live === 0) {
      this.items = []
      this.start = 0
    } else if (items.length - this.start > 2 * this.live + 1024 || (this.start > 1024 && this.start * 2 > items.length)) {
      this.items = items.slice(this.start).filter((x) => !x.gone)
      this.start = 0
    }
  }

  /** Live entries with a seq above `after`, in seq order. */
  *from(after: number): IterableIterator<StoredRecord> {
    if (!this.sorted) {
      this.items = this.items.slice(this.start).filter((x) => !x.gone).sort((a, b) => a.seq - b.seq)
      this.start = 0
      this.sorted = true
    }
    const { items } = this
    let lo = this.start
    let hi = items.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (items[mid]!.seq <= after) lo = mid + 1
      else hi = mid
    }
    for (let i = lo; i < items.length; i++) if (!items[i]!.gone) yield items[i]!
  }
}
