/**
 * The in-memory index of format 4's stored messages (outbox-records.ts): a slot per message in
 * typed columns (seq, times, where its body is; attempts in a side table of the few that have
 * any), and per destination its slots in seq order; ids by slot are packed in waiting-ids.ts.
 * 52 bytes a message in the columns, against ~180 for an object with the same fields (V8 boxes
 * each double field): with 100k waiting, the index is about what the sql.js rows of format 3 took.
 */
import type { Route } from './outbox-ops'

export class Columns {
  private cap = 0
  /** Slots in use or freed: the next new slot. */
  private top = 0
  private readonly free: number[] = []
  seq: Float64Array = new Float64Array(0)
  createdAt: Float64Array = new Float64Array(0)
  expiresAt: Float64Array = new Float64Array(0)
  at: Float64Array = new Float64Array(0)
  file: Int32Array = new Int32Array(0)
  ord: Int32Array = new Int32Array(0)
  len: Uint32Array = new Uint32Array(0)
  dest: Uint32Array = new Uint32Array(0)
  /** 0: no route; else routes[n - 1]. */
  route: Uint32Array = new Uint32Array(0)
  readonly dests: string[] = []
  private readonly destIndex = new Map<string, number>()
  readonly routes: Route[] = []
  private readonly routeIndex = new Map<string, number>()
  private lastDest: string | undefined
  private lastDestAt = 0
  private lastRoute: Route | undefined
  private lastRouteAt = 0

  /** A slot for a new message (its seq is set by the caller; a freed slot's is -1). */
  take(): number {
    const s = this.free.pop()
    if (s !== undefined) return s
    if (this.top === this.cap) this.grow()
    return this.top++
  }

  release(slot: number): void {
    this.seq[slot] = -1
    this.free.push(slot)
  }

  destOf(slot: number): string {
    return this.dests[this.dest[slot]!]!
  }

  routeOf(slot: number): Route | undefined {
    const r = this.route[slot]!
    return r === 0 ? undefined : this.routes[r - 1]
  }

  setDest(slot: number, dest: string): void {
    // A backlog is mostly runs of one destination (and a scan hands the same string each time).
    if (dest === this.lastDest) {
      this.dest[slot] = this.lastDestAt
      return
    }
    let i = this.destIndex.get(dest)
    if (i === undefined) {
      i = this.dests.push(dest) - 1
      this.destIndex.set(dest, i)
    }
    this.dest[slot] = i
    this.lastDest = dest
    this.lastDestAt = i
  }

  /** Routes are interned by value (a backlog names few). */
  setRoute(slot: number, route: Route | undefined): void {
    if (route === undefined) {
      this.route[slot] = 0
      return
    }
    if (route === this.lastRoute) {
      this.route[slot] = this.lastRouteAt
      return
    }
    const key = `${route.method}\0${route.ackTimeout ?? ''}\0${route.retries ?? ''}`
    let i = this.routeIndex.get(key)
    if (i === undefined) {
      i = this.routes.push(route) - 1
      this.routeIndex.set(key, i)
    }
    this.route[slot] = i + 1
    this.lastRoute = route
    this.lastRouteAt = i + 1
  }

  /**
   * Room for `count` slots in all, exactly (a scan at open knows how many records there are, a
   * snapshot how many it adds): no slack left after a backlog, where doubling left up to half.
   */
  reserve(count: number): void {
    if (count > this.cap) this.grow(count)
  }

  private grow(to = 0): void {
    // Doubled when a message needs a slot: each growth leaves the old columns as garbage for the collector (external memory), so few of them.
    const cap = to > 0 ? Math.max(1024, to) : Math.max(1024, this.cap * 2)
    const f64 = (a: Float64Array): Float64Array => { const b = new Float64Array(cap); b.set(a); return b }
    const i32 = (a: Int32Array): Int32Array => { const b = new Int32Array(cap); b.set(a); return b }
    const u32 = (a: Uint32Array): Uint32Array => { const b = new Uint32Array(cap); b.set(a); return b }
    this.seq = f64(this.seq)
    this.createdAt = f64(this.createdAt)
    this.expiresAt = f64(this.expiresAt)
    this.at = f64(this.at)
    this.file = i32(this.file)
    this.ord = i32(this.ord)
    this.len = u32(this.len)
    this.dest = u32(this.dest)
    this.route = u32(this.route)
    this.cap = cap
  }
}

/**
 * One destination's stored messages: slots in seq order, with the seq each had when added (a
 * slot freed and taken again has another seq, so a stale entry is told apart without touching
 * the queue at removal). Read from a seq by binary search; compacted once most are gone.
 */
export class SlotQueue {
  private slots = new Int32Array(16)
  private seqs = new Float64Array(16)
  private start = 0
  private end = 0
  private sorted = true
  /**
   * Whether createdAt never went down along the entries since the last fill: the oldest live
   * message is then the first live entry (what `outpost status` asks at every poll, without a walk).
   */
  private ordered = true
  private lastCreated = -Infinity
  live = 0
  bytes = 0

  constructor(private readonly cols: Columns) {}

  push(slot: number): void {
    const seq = this.cols.seq[slot]!
    if (this.end === this.slots.length) {
      if (this.start === 0 && this.live === this.end) this.widen()
      else this.compact(Math.max(16, 2 * (this.live + 1)))
    }
    if (this.end > this.start && this.seqs[this.end - 1]! > seq) this.sorted = false
    const created = this.cols.createdAt[slot]!
    if (created < this.lastCreated) this.ordered = false
    this.lastCreated = created
    this.slots[this.end] = slot
    this.seqs[this.end++] = seq
    this.live++
    this.bytes += this.cols.len[slot]!
  }

  /** Slot `slot` (of this queue, `len` bytes) is removed (the caller releases it afterwards). */
  removed(len: number): void {
    this.live--
    this.bytes -= len
    while (this.start < this.end && !this.valid(this.start)) this.start++
    if (this.end - this.start > 2 * this.live + 1024) this.compact(Math.max(16, 2 * this.live))
  }

  /** createdAt of the oldest live message (Infinity when none). */
  oldest(): number {
    if (this.live === 0) return Infinity
    // removed() steps `start` over removed entries at once: the entry there is live.
    if (this.ordered) return this.cols.createdAt[this.slots[this.start]!]!
    let min = Infinity
    for (let i = this.start; i < this.end; i++) {
      if (!this.valid(i)) continue
      const c = this.cols.createdAt[this.slots[i]!]!
      if (c < min) min = c
    }
    return min
  }

  /** Call after release(): whether entry i still names its message. */
  private valid(i: number): boolean {
    return this.cols.seq[this.slots[i]!] === this.seqs[i]
  }

  /** Live slots with a seq above `after`, in seq order. */
  *from(after: number): IterableIterator<number> {
    if (!this.sorted) this.sort()
    let lo = this.start
    let hi = this.end
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.seqs[mid]! <= after) lo = mid + 1
      else hi = mid
    }
    for (let i = lo; i < this.end; i++) if (this.valid(i)) yield this.slots[i]!
  }

  private sort(): void {
    const live: number[] = []
    for (let i = this.start; i < this.end; i++) if (this.valid(i)) live.push(this.slots[i]!)
    live.sort((a, b) => this.cols.seq[a]! - this.cols.seq[b]!)
    this.fill(live, Math.max(16, live.length * 2))
    this.sorted = true
  }

  /** Twice the room, every entry live and where it was (as a scan at open fills the queue). */
  private widen(): void {
    const slots = new Int32Array(this.slots.length * 2)
    slots.set(this.slots)
    const seqs = new Float64Array(this.seqs.length * 2)
    seqs.set(this.seqs)
    this.slots = slots
    this.seqs = seqs
  }

  private compact(size: number): void {
    const live: number[] = []
    for (let i = this.start; i < this.end; i++) if (this.valid(i)) live.push(this.slots[i]!)
    this.fill(live, Math.max(size, live.length + 1))
  }

  private fill(live: number[], size: number): void {
    this.slots = new Int32Array(size)
    this.seqs = new Float64Array(size)
    this.ordered = true
    this.lastCreated = -Infinity
    for (const [i, s] of live.entries()) {
      this.slots[i] = s
      this.seqs[i] = this.cols.seq[s]!
      const created = this.cols.createdAt[s]!
      if (created < this.lastCreated) this.ordered = false
      this.lastCreated = created
    }
    this.start = 0
    this.end = live.length
  }
}
