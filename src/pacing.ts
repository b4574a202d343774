/**
 * How fast delivery may send: `delivery.drainRate` (messages a second) and
 * `transport.maxBytesPerSecond` (bytes a second, for metered links), each a token bucket that
 * refills continuously and holds at most one second's worth. A node back from an outage drains
 * its backlog at these rates instead of all at once; a lone message still goes at once.
 *
 *   delivery.pump ─ take(bytes) ─▶ 0: send now │ ms: wait that long, then pump again
 *   an ACK sent straight back ─ charge(bytes) ─▶ counted against the byte cap, never held back
 *
 *   transport ─ WireMeter.report(messages, wire bytes) ─▶ settle: the estimate is replaced by
 *                 what was written (after batching and compression)
 *
 * A message is taken at its envelope plus FRAME_ALLOWANCE for the transport's framing (an
 * estimate: the pump decides before the transport has framed, batched or compressed it); a
 * transport that reports what it wrote (tcp, MQTT, NATS) then settles the difference, so the cap
 * holds on the bytes that cross the connection. Session frames are never held back but owe what
 * they wrote (up to a second's worth), so outbox traffic waits for them. Pings, hellos and
 * TCP/IP headers are not counted. A message larger than the whole bucket goes when the bucket is full, and the
 * bucket owes the difference: the long-run rate holds.
 */
import { FRAME_METHOD } from './sessions/frames'

/** Bytes counted per message for its framing on the wire, beside its envelope. */
export const FRAME_ALLOWANCE = 64

export interface PacingOptions {
  /** Messages a second; 0: unlimited. */
  drainRate: number
  /** Bytes a second; 0: unlimited. */
  maxBytesPerSecond: number
  now?: () => number
  /** Where the transport reports the bytes it wrote for messages (settles the estimates). */
  meter?: WireMeter
}

/** Messages as the transport reports them: their method (session frames are not paced) and envelope. */
export type Metered = readonly { method: string; bytes: Uint8Array }[]

/**
 * Between the transport (made first, given `report` as TransportOptions.onWire) and the Pacer
 * (made later by delivery, with `meter`): what the transport wrote for which messages.
 */
export class WireMeter {
  private listener: ((msgs: Metered, wire: number) => void) | undefined

  /** The transport wrote `wire` bytes carrying `msgs` (frames, batches, compressed or not). */
  readonly report = (msgs: Metered, wire: number): void => {
    this.listener?.(msgs, wire)
  }

  listen(fn: (msgs: Metered, wire: number) => void): void {
    this.listener = fn
  }
}

class Bucket {
  private tokens: number
  private last: number

  constructor(private readonly rate: number, private readonly now: () => number) {
    this.tokens = rate
    this.last = now()
  }

  private refill(): void {
    const t = this.now()
    this.tokens = Math.min(this.rate, this.tokens + ((t - this.last) * this.rate) / 1000)
    this.last = t
  }

  /** ms until `n` may be taken (0: now); a request larger than the bucket needs a full bucket. */
  wait(n: number): number {
    this.refill()
    const need = Math.min(n, this.rate)
    return this.tokens >= need ? 0 : Math.ceil(((need - this.tokens) * 1000) / this.rate)
  }

  take(n: number): void {
    this.tokens -= n
  }

  /** Take `n` that was spent without waiting, leaving at most one second's worth owed. */
  owe(n: number): void {
    this.tokens = Math.min(this.tokens, Math.max(-this.rate, this.tokens - n))
  }

  /** Give back (or take more): an estimate taken earlier proved `n` too high (negative: too low). */
  refund(n: number): void {
    this.tokens = Math.min(this.rate, this.tokens + n)
  }
}

export class Pacer {
  private readonly messages: Bucket | undefined
  private readonly bytes: Bucket | undefined

  constructor(o: PacingOptions) {
    const now = o.now ?? Date.now
    this.messages = o.drainRate > 0 ? new Bucket(o.drainRate, now) : undefined
    this.bytes = o.maxBytesPerSecond > 0 ? new Bucket(o.maxBytesPerSecond, now) : undefined
    if (this.bytes !== undefined) o.meter?.listen((msgs, wire) => this.settle(msgs, wire))
  }

  /** Whether there is any limit at all (none: delivery skips the bookkeeping). */
  get limited(): boolean {
    return this.messages !== undefined || this.bytes !== undefined
  }

  /** A message of `size` envelope bytes is to be sent: 0 if it may go now (and it is counted), else the ms to wait. */
  take(size: number): number {
    const cost = size + FRAME_ALLOWANCE
    const wait = Math.max(this.messages?.wait(1) ?? 0, this.bytes?.wait(cost) ?? 0)
    if (wait > 0) return wait
    this.messages?.take(1)
    this.bytes?.take(cost)
    return 0
  }

  /** Bytes sent outside delivery (ACKs): counted against the byte cap, never delayed. */
  charge(size: number): void {
    this.bytes?.take(size + FRAME_ALLOWANCE)
  }

  /**
   * The transport wrote `wire` bytes for `msgs`. Messages and ACKs were taken at envelope +
   * FRAME_ALLOWANCE each: the bucket is settled to what was written for them. Session frames
   * (shells, tunnels; never held back, they are interactive) owe their share of the bytes: what
   * they write leaves less for the outbox, so the link's total holds to the cap while they stay
   * under it. Their debt is bounded to one second's worth, so a tunnel that outruns the cap holds
   * the outbox back while it runs, not for what it sent beyond the cap afterwards.
   */
  settle(msgs: Metered, wire: number): void {
    const bytes = this.bytes
    if (bytes === undefined) return
    let taken = 0
    let live = 0
    let all = 0
    for (const m of msgs) {
      all += m.bytes.length
      if (m.method === FRAME_METHOD) live += m.bytes.length
      else taken += m.bytes.length + FRAME_ALLOWANCE
    }
    const liveWire = live === 0 ? 0 : live === all ? wire : Math.round((wire * live) / all)
    if (taken > 0) bytes.refund(taken - (wire - liveWire))
    if (liveWire > 0) bytes.owe(liveWire)
  }
}
