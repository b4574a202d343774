/**
 * The ACK deadlines of the messages delivery has in flight (src/delivery.ts): one timer for the
 * earliest of them all, instead of a Node timer per message (a Timeout object, a timer-list
 * insertion, and a clearTimeout at its ACK, for every message).
 *
 *   arm(flight) ─▶ queue of its timeout length (flight.ms) (armed in time order, so sorted) ─▶ one timer
 *   timer ─▶ every flight past its deadline and still current ─▶ due(id) ─▶ timer for the next one
 *
 * A flight that is no longer current (ACKed, released) stays in its queue until it reaches the
 * head; ACKs come mostly in order, so that is soon, and a queue held up by one old flight is
 * compacted to about what is in flight.
 */

/** A message in flight; `ms`: its ackTimeout; `at`: when its ACK is due (performance.now() ms) once armed, else 0. */
export interface Flight { id: string; dest: string; ms: number; at: number }

interface Queue { items: Flight[]; head: number }

export class AckDeadlines {
  private readonly queues = new Map<number, Queue>()
  private timer: NodeJS.Timeout | undefined
  private timerAt = Infinity
  private stopped = false

  /**
   * `current(f)`: whether `f` is still the flight of its id (not ACKed or released since);
   * `due(id)`: its deadline passed; `inFlight()`: how many are in flight now.
   */
  constructor(private readonly o: { current: (f: Flight) => boolean; due: (id: string) => void; inFlight: () => number }) {}

  /** Start `flight`'s deadline, `flight.ms` from now (once). */
  arm(flight: Flight): void {
    if (flight.at !== 0 || !this.o.current(flight)) return
    const ms = flight.ms
    flight.at = performance.now() + ms
    let q = this.queues.get(ms)
    if (q === undefined) this.queues.set(ms, q = { items: [], head: 0 })
    while (q.head < q.items.length && !this.o.current(q.items[q.head]!)) q.head++
    if (q.head > 1024 && q.head * 2 > q.items.length) { q.items = q.items.slice(q.head); q.head = 0 }
    else if (q.items.length - q.head > 2 * this.o.inFlight() + 1024) { q.items = q.items.filter((f, i) => i >= q!.head && this.o.current(f)); q.head = 0 }
    q.items.push(flight)
    if (flight.at < this.timerAt) this.schedule(flight.at)
  }

  stop(): void {
    this.stopped = true
    if (this.timer !== undefined) clearTimeout(this.timer)
  }

  private schedule(at: number): void {
    if (this.stopped) return
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timerAt = at
    this.timer = setTimeout(() => this.fire(), Math.max(1, Math.ceil(at - performance.now())))
    this.timer.unref()
  }

  private fire(): void {
    this.timer = undefined
    this.timerAt = Infinity
    const now = performance.now()
    let next = Infinity
    for (const [ms, q] of this.queues) {
      while (q.head < q.items.length) {
        const f = q.items[q.head]!
        if (!this.o.current(f)) { q.head++; continue }
        if (f.at > now) { next = Math.min(next, f.at); break }
        q.head++
        this.o.due(f.id)
      }
      if (q.head === q.items.length) this.queues.delete(ms)
      else if (q.head > 1024 && q.head * 2 > q.items.length) { q.items = q.items.slice(q.head); q.head = 0 }
    }
    if (next !== Infinity && next < this.timerAt) this.schedule(next)
  }
}
