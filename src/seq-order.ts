/**
 * The replies to one request, passed on to a waiting client in `seq` order (stream methods
 * send seq 0, 1, … and a final reply). Delivery is FIFO per pair of nodes, so this only
 * matters when a resend overtook: a chunk waits for the earlier ones, a duplicate is dropped,
 * and after GAP_WAIT_MS a chunk that never came is given up on.
 */
import type { Envelope } from './wire/envelope'

/** How long a final reply waits for missing earlier chunks before it is passed on anyway. */
export const GAP_WAIT_MS = 10_000

/**
 * Stream replies passed on in `seq` order, per request: a chunk that overtook an earlier one
 * waits for it; a duplicate is dropped. A reply without seq (unary, error) flushes what is held.
 */
export class SeqOrder {
  private readonly streams = new Map<string, { next: number; held: Map<number, Envelope>; timer?: NodeJS.Timeout | undefined }>()

  constructor(private readonly deliver: (env: Envelope) => void, private readonly gapWaitMs = GAP_WAIT_MS) {}

  add(env: Envelope): void {
    const key = env.inReplyTo ?? ''
    const st = this.streams.get(key) ?? { next: 0, held: new Map<number, Envelope>() }
    this.streams.set(key, st)
    if (env.seq === undefined) {
      this.flush(key)
      this.deliver(env)
      return
    }
    if (env.seq < st.next || st.held.has(env.seq)) return
    st.held.set(env.seq, env)
    for (let e = st.held.get(st.next); e !== undefined; e = st.held.get(st.next)) {
      st.held.delete(st.next++)
      this.deliver(e)
    }
    // A chunk was lost for good (its delivery gave up): do not wait for it for ever.
    if (st.held.size > 0 && st.timer === undefined && this.streams.get(key) === st) st.timer = setTimeout(() => this.flush(key), this.gapWaitMs)
  }

  /** Pass on whatever is held for this request, in order. */
  private flush(key: string): void {
    const st = this.streams.get(key)
    if (!st) return
    if (st.timer) clearTimeout(st.timer)
    st.timer = undefined
    const held = [...st.held.entries()].sort(([a], [b]) => a - b)
    st.held.clear()
    for (const [seq, env] of held) { st.next = seq + 1; this.deliver(env) }
  }

  forget(key: string): void {
    const st = this.streams.get(key)
    if (st?.timer) clearTimeout(st.timer)
    this.streams.delete(key)
  }

  close(): void {
    for (const key of [...this.streams.keys()]) this.forget(key)
  }
}
