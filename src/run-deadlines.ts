/**
 * The methodTimeout of every unary method running in this process on one timer, instead of a
 * Node timer per run (a Timeout object, a timer-list insertion and a clearTimeout, for every
 * message a node runs: most runs end within a millisecond).
 *
 *   arm(stop, seconds) ─▶ queue of that length (armed in time order, so sorted) ─▶ one timer for the earliest
 *   timer ─▶ each run past its deadline and still running ─▶ stop.abort(method_timeout)
 *   disarm (the run ended) ─▶ left in its queue until it reaches the head; nothing running: timer cleared
 *
 * The timer is kept (not unref'd) while a run is armed, as a run's own timer was; once none is
 * running it is cleared, so that a finished `outpost call` is not held up by stale deadlines.
 */
import { OutpostError } from './errors'
import type { Stopper } from './lib/stopper'

/** setTimeout's limit: longer delays fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** One run's deadline (performance.now() ms); `live` until it ended or fired; in `queue`, whose key is `ms`. */
export interface RunDeadline { stop: Stopper; name: string; seconds: number; at: number; live: boolean; ms: number; queue: DeadlineQueue }

/** The deadlines of one length, in time order; `live`: those not yet ended or fired. */
export interface DeadlineQueue { items: RunDeadline[]; head: number; live: number }

export class RunDeadlines {
  private readonly queues = new Map<number, DeadlineQueue>()
  /** Deadlines armed and not yet disarmed or fired. */
  private live = 0
  private timer: NodeJS.Timeout | undefined
  private timerAt = Infinity
  private lastMs = NaN

  /** `stop` is aborted with method_timeout `seconds` from now, unless disarmed first. */
  arm(stop: Stopper, name: string, seconds: number): RunDeadline {
    // As setTimeout takes a delay: NaN or under 1 ms is 1 ms (a NaN would sort nowhere and arm no timer).
    const ms = seconds * 1000 >= 1 ? Math.min(seconds * 1000, MAX_TIMER_MS) : 1
    if (ms !== this.lastMs) {
      // The last length's queue, kept while none of its runs was running (disarm), goes now.
      if (this.queues.get(this.lastMs)?.live === 0) this.queues.delete(this.lastMs)
      this.lastMs = ms
    }
    let q = this.queues.get(ms)
    if (q === undefined) this.queues.set(ms, q = { items: [], head: 0, live: 0 })
    const d: RunDeadline = { stop, name, seconds, at: performance.now() + ms, live: true, ms, queue: q }
    this.live++
    q.live++
    while (q.head < q.items.length && !q.items[q.head]!.live) q.head++
    if (q.head > 1024 && q.head * 2 > q.items.length) { q.items = q.items.slice(q.head); q.head = 0 }
    else if (q.items.length - q.head > 2 * this.live + 1024) { q.items = q.items.filter((x, i) => i >= q!.head && x.live); q.head = 0 }
    q.items.push(d)
    if (d.at < this.timerAt) this.schedule(d.at)
    return d
  }

  /** The run ended: no timeout for it. */
  disarm(d: RunDeadline): void {
    if (!d.live) return
    d.live = false
    // A length none of whose runs is running: its queue goes now, not once the timer gets to it (a
    // sender giving each message a methodTimeout of its own left one a run for as long as the
    // shortest). The last armed length's stays (the usual run ends before the next one starts).
    if (--d.queue.live === 0 && d.ms !== this.lastMs && this.queues.get(d.ms) === d.queue) this.queues.delete(d.ms)
    if (--this.live > 0) return
    // Nothing runs: no timer holds the process, and what the queues hold is all stale.
    this.queues.clear()
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = Infinity
  }

  /** Deadlines held in the queues, running or ended and not yet stepped over (for tests). */
  get held(): number {
    let n = 0
    for (const q of this.queues.values()) n += q.items.length - q.head
    return n
  }

  private schedule(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timerAt = at
    this.timer = setTimeout(() => this.fire(), Math.max(1, Math.ceil(at - performance.now())))
  }

  private fire(): void {
    this.timer = undefined
    this.timerAt = Infinity
    const now = performance.now()
    const due: RunDeadline[] = []
    let next = Infinity
    for (const [ms, q] of this.queues) {
      while (q.head < q.items.length) {
        const d = q.items[q.head]!
        if (!d.live) { q.head++; continue }
        if (d.at > now) { next = Math.min(next, d.at); break }
        q.head++
        d.live = false
        this.live--
        q.live--
        due.push(d)
      }
      if (q.head === q.items.length) this.queues.delete(ms)
    }
    if (next !== Infinity) this.schedule(next)
    for (const d of due) d.stop.abort(new OutpostError('method_timeout', `${d.name} ran past its methodTimeout of ${d.seconds} s`))
  }
}

/** The process's unary runs (dispatcher, local runs, `outpost call`). */
export const RUN_DEADLINES = new RunDeadlines()
