/**
 * The delivery loop (SPEC §1.2): publish what waits in the outbox, await ACKs, resend, expire.
 *
 *   kick ─▶ per destination, FIFO: up to `window` messages in flight ─▶ transport.publish
 *     (what one pump finds ready goes to transport.publishAll together, when the transport has it)
 *     ACK deadline (ack-deadlines.ts): from when the transport says the bytes left (reportsWritten), else from the hand-over
 *     ACK      ─▶ outbox.remove ─▶ next
 *     timeout  ─▶ attempt spent (recorded) ─▶ resend, or give up past `retries`
 *     nack offline / disconnected ─▶ wait, spending nothing; `online` / reconnect ─▶ resume
 *     expiresAt passed ─▶ give up (ttl)
 *   withdraw (its sender: Ctrl-C, a job cancelled) ─▶ removed unsent, given up as `withdrawn`, only if
 *     never handed out: not in flight, no attempt spent, not released from a send that may have arrived
 *   drainRate / maxBytesPerSecond (src/pacing.ts) ─▶ a message waits its turn before it is handed out
 * Events (ackTimeout 0) are published once and removed. Messages to this node itself skip the
 * network: they are handed to the local dispatcher, which ACKs them through onAck.
 */
import type { GiveUpReason } from './events'
import { NO_METRICS, type Metrics } from './metrics'
import { Pacer } from './pacing'
import { AckDeadlines, type Flight } from './ack-deadlines'
import { isReply, legacyRoute, type DeliveryOptions, type Withdrawal } from './delivery-options'
import type { OutboxEntry } from './store/outbox'
import type { Outbound } from './transport'
export type { DeliveryOptions, Withdrawal } from './delivery-options'

interface Meta { ackTimeout: number; retries: number; method: string }
/** Messages whose delivery facts are kept at hand (see metaOf()). */
const META_MAX = 16_384

export class Delivery {
  private readonly o: DeliveryOptions
  private readonly now: () => number
  private readonly window: number
  private readonly metrics: Metrics
  private readonly inflight = new Map<string, Flight>()
  private readonly inflightPerDest = new Map<string, number>()
  /** Destinations the hub said are away: nothing is sent to them until `online`. */
  private readonly offline = new Set<string>()
  private readonly meta = new Map<string, Meta>()
  /** Handed out, then released without an ACK or a refusal (timeout, link drop, …): the receiver may have it. */
  private readonly handedOut = new Set<string>()
  private readonly firstSeq: number
  /** Acknowledged, removal not yet on disk: still in the outbox, never to be sent again. */
  private readonly removing = new Set<string>()
  /** Delivered this turn: their removals go to the outbox together. */
  private acked: string[] = []
  /** Per receiver: ids whose refusal (nack) is still to come for a copy sent before `online`. */
  private readonly staleNacks = new Map<string, Set<string>>()
  /**
   * Per destination: the seq of the last message handed out in FIFO order, so a pump reads
   * only what is past it (not the whole window again). Rewound whenever a message handed out
   * goes back to waiting (ACK timeout, nack, reconnect).
   */
  private readonly cursor = new Map<string, number>()
  private scheduled = false
  /** Made ready by this pump, to the transport together at its end (publishAll); `armOnWrite`: their flights timed from the write. */
  private outs: Outbound[] = []
  private armOnWrite: Flight[] = []
  private readonly pacer: Pacer | undefined
  /** A pump is due when the pacer allows the next message. */
  private paceTimer: NodeJS.Timeout | undefined
  /** Paced: which destination a pump starts with, turn about (one budget serves them all). */
  private turn = 0
  private stopped = false
  private readonly sweeper: NodeJS.Timeout
  private readonly deadlines = new AckDeadlines({ current: (f) => this.inflight.get(f.id) === f, due: (id) => this.timeout(id), inFlight: () => this.inflight.size })

  constructor(o: DeliveryOptions) {
    this.o = o
    this.now = o.now ?? Date.now
    this.window = o.window ?? 1000
    this.firstSeq = o.firstSeq ?? Infinity
    this.metrics = o.metrics ?? NO_METRICS
    const pacer = o.pacing === undefined ? undefined : new Pacer({ ...o.pacing, now: this.now })
    this.pacer = pacer?.limited === true ? pacer : undefined
    this.sweeper = setInterval(() => { this.expire(); this.kick() }, 1000)
    this.sweeper.unref()
  }

  /** Something changed (new message, ACK, reconnect): send what can go now. */
  kick(): void {
    if (this.scheduled || this.stopped) return
    this.scheduled = true
    setImmediate(() => { this.scheduled = false; this.pump() })
  }

  private pump(): void {
    if (!this.stopped) { this.collect(); this.sendOut() }
  }

  /** Send (or, with publishAll, make ready in `outs`) what can go now. */
  private collect(): void {
    const now = this.now()
    for (const dest of this.destinations()) {
      const remote = dest !== this.o.self
      if (remote && (!this.o.transport.connected || this.offline.has(dest))) continue
      const busy = this.inflightPerDest.get(dest) ?? 0
      if (busy >= this.window) continue
      // Past the cursor, the head may still hold messages in flight (after a rewind) and ACKed
      // ones whose removal is being written: they are stepped over.
      const limit = this.window - busy + 64
      const head = this.o.outbox.headView(dest, limit, this.cursor.get(dest) ?? 0)
      let stepped = 0
      for (const entry of head) {
        if ((this.inflightPerDest.get(dest) ?? 0) >= this.window) break
        if (entry.expiresAt > 0 && entry.expiresAt <= now && !this.inflight.has(entry.id)) this.giveUp({ ...entry }, 'ttl_expired')
        else if (!this.inflight.has(entry.id) && !this.removing.has(entry.id)) {
          // FIFO: a message waiting out its resend time holds back the ones behind it.
          if (entry.nextAt > now) break
          if (remote && this.pacer !== undefined) {
            const wait = this.pacer.take(entry.body.length)
            if (wait > 0) return this.pumpAfter(wait) // pump() sends what is ready so far
          }
          this.send(entry)
        }
        this.cursor.set(dest, entry.seq)
        stepped++
      }
      // A full page stepped through with room left: there may be more behind it.
      if (stepped === head.length && head.length === limit && (this.inflightPerDest.get(dest) ?? 0) < this.window) this.kick()
    }
  }

  /** The destinations with something waiting; paced, each pump starts one further along. */
  private destinations(): Iterable<string> {
    if (this.pacer === undefined) return this.o.outbox.destinations()
    const all = [...this.o.outbox.destinations()]
    const start = all.length === 0 ? 0 : this.turn++ % all.length
    return [...all.slice(start), ...all.slice(0, start)]
  }

  private pumpAfter(ms: number): void {
    if (this.paceTimer !== undefined || this.stopped) return
    this.paceTimer = setTimeout(() => { this.paceTimer = undefined; this.kick() }, ms)
  }

  /** Bytes sent to the transport outside delivery (an ACK): counted against transport.maxBytesPerSecond; returned as they are. */
  charge(bytes: Uint8Array): Uint8Array {
    this.pacer?.charge(bytes.length)
    return bytes
  }

  /**
   * How to send `entry`: its route, stored with it (the config's delivery defaults where the
   * message left them open). A message stored without one (by an outpost before routes, or
   * while an upgrade may roll back) is read once from its body.
   */
  private metaOf(entry: OutboxEntry): Meta {
    let m = this.meta.get(entry.id)
    if (m === undefined) {
      const r = entry.route ?? legacyRoute(entry.body)
      // A route with both set (stamp gives every message the defaults) serves as it is: no copy a message.
      m = r.ackTimeout !== undefined && r.retries !== undefined ? r as Meta : { ackTimeout: r.ackTimeout ?? this.o.defaults.ackTimeout, retries: r.retries ?? this.o.defaults.retries, method: r.method }
      // Kept while the message is in flight (timeouts, ACKs and give-ups need no outbox lookup).
      if (this.meta.size < META_MAX) this.meta.set(entry.id, m)
    }
    return m
  }

  private send(entry: OutboxEntry): void {
    const m = this.metaOf(entry)
    const bytes = this.o.expand === undefined ? entry.body : this.o.expand(entry.body, m.method)
    if (bytes === null) return this.dropWithdrawn(entry)
    // Paced by what goes out: the pump took the stored body's length.
    if (bytes.length > entry.body.length && entry.dest !== this.o.self) this.pacer?.charge(bytes.length - entry.body.length)
    const event = m.ackTimeout === 0
    // The ACK timer runs from when the bytes have left (the transport says so), or from now.
    const flight: Flight = { id: entry.id, dest: entry.dest, ms: Math.min(m.ackTimeout * 1000, 2 ** 31 - 1), at: 0 }
    this.inflight.set(entry.id, flight)
    this.inflightPerDest.set(entry.dest, (this.inflightPerDest.get(entry.dest) ?? 0) + 1)
    const onWritten = !event && entry.dest !== this.o.self && this.o.transport.reportsWritten === true
    if (!event && !onWritten) this.deadlines.arm(flight)
    if (entry.dest === this.o.self) {
      if (event) this.done(entry.id, entry.dest)
      this.o.local(bytes)
      return
    }
    const out: Outbound = { id: entry.id, to: entry.dest, method: m.method, event, bytes }
    if (this.o.transport.publishAll === undefined) return this.publishOne(out, onWritten ? flight : undefined)
    this.outs.push(out)
    if (onWritten) this.armOnWrite.push(flight)
  }

  /** `out` to the wire on its own; `flight`: its ACK timer starts when its bytes are written. */
  private publishOne(out: Outbound, flight: Flight | undefined): void {
    if (flight !== undefined) out.written = () => this.deadlines.arm(flight)
    this.o.transport.publish(out).then(
      () => { if (out.event) this.done(out.id, out.to) },
      () => this.unsent(out), // not connected: it goes again after the reconnect
    )
  }

  /** What this pump made ready, in one call: one promise and one write callback for them all. */
  private sendOut(): void {
    const outs = this.outs
    if (outs.length === 0) return
    const flights = this.armOnWrite
    this.outs = []
    this.armOnWrite = []
    if (outs.length === 1) return this.publishOne(outs[0]!, flights[0])
    const written = flights.length === 0 ? undefined : (): void => { for (const f of flights) this.deadlines.arm(f) }
    this.o.transport.publishAll!(outs, written).then(
      (failed) => outs.forEach((out, k) => { if (failed?.[k] !== undefined) this.unsent(out); else if (out.event) this.done(out.id, out.to) }),
      () => { for (const out of outs) this.unsent(out) },
    )
  }

  /** The transport did not take `out`: it waits (attempt unspent) and goes again. */
  private unsent(out: Outbound): void {
    this.release(out.id)
    this.handedOut.add(out.id) // the transport may have written some of it
    this.cursor.delete(out.to)
  }

  /** Whether `id` is on its way now, or its removal is being written (delivery.whenFull does not drop it then). */
  busy(id: string): boolean {
    return this.inflight.has(id) || this.removing.has(id)
  }

  /** The receiver acknowledged `id`. */
  onAck(id: string): void {
    if (this.removing.has(id)) return
    // The usual case, in flight with its facts at hand: no lookup in the outbox.
    const flight = this.inflight.get(id)
    const m = this.meta.get(id)
    if (flight !== undefined && m !== undefined) {
      this.metrics.acked(m.method)
      this.done(id, flight.dest)
      return
    }
    const entry = this.o.outbox.get(id)
    // A late ACK (after a timeout or a restart) still means delivered.
    if (!this.inflight.has(id) && entry === undefined) return
    this.metrics.acked(entry !== undefined ? this.metaOf(entry).method : '')
    this.done(id, entry?.dest)
  }

  /** `id` reached `dest` (undefined when it is already gone from the outbox): it leaves the outbox. */
  private done(id: string, dest: string | undefined): void {
    if (dest !== undefined) this.o.events?.({ type: 'delivered', id, toNode: dest, method: this.meta.get(id)?.method ?? '' })
    this.release(id)
    this.meta.delete(id)
    this.handedOut.delete(id)
    this.removing.add(id)
    // The removals of one turn (an ACK of many ids) are written with one promise for all.
    if (this.acked.push(id) === 1) queueMicrotask(() => this.removeAcked())
    this.kick()
  }

  private removeAcked(): void {
    const ids = this.acked
    this.acked = []
    this.o.outbox.removeAll(ids)
      .catch((err: Error) => this.o.log('error', `delivery: cannot remove ${ids.length === 1 ? ids[0] : `${ids.length} delivered messages (${ids[0]}, …)`}: ${err.message}`))
      .finally(() => { for (const id of ids) this.removing.delete(id); this.kick() })
  }

  /** Stop waiting for `id` without spending an attempt. */
  private release(id: string): void {
    const f = this.inflight.get(id)
    if (f === undefined) return
    this.inflight.delete(id)
    const n = (this.inflightPerDest.get(f.dest) ?? 1) - 1
    if (n <= 0) this.inflightPerDest.delete(f.dest)
    else this.inflightPerDest.set(f.dest, n)
  }

  private timeout(id: string): void {
    const f = this.inflight.get(id)
    if (f === undefined) return
    this.release(id)
    this.handedOut.add(id)
    this.cursor.delete(f.dest)
    this.o.transport.unacked?.(f.dest)
    const entry = this.o.outbox.get(id)
    if (entry === undefined) return
    const m = this.metaOf(entry)
    const attempts = entry.attempts + 1
    if (attempts > m.retries) {
      this.giveUp(entry, 'not_delivered')
      return
    }
    this.metrics.retried(m.method)
    this.o.log('debug', `delivery: no ACK for ${id} from ${entry.dest} in ${m.ackTimeout} s; attempt ${attempts + 1} of ${m.retries + 1}`)
    this.o.outbox.recordAttempt(id, attempts, this.now()).then(() => this.kick(), (err: Error) => this.o.log('error', `delivery: ${err.message}`))
  }

  /**
   * Withdraw messages that wait here never handed out: removed (on disk before this resolves) and given up as `withdrawn` (an error reply to their
   * sender, an `expired` event). Decided in this turn: one in flight, or handed out once (the receiver may have it), is `in_flight`; a reply, `reply`.
   */
  async withdraw(ids: readonly string[]): Promise<Map<string, Withdrawal>> {
    const out = new Map<string, Withdrawal>()
    const taken: OutboxEntry[] = []
    for (const id of ids) {
      if (out.has(id)) continue
      const entry = this.o.outbox.get(id)
      const reply = entry !== undefined && isReply(entry.body) // its requester's only outcome (SPEC §1): whoever asks, it goes
      const handed = entry === undefined || reply || this.inflight.has(id) || this.removing.has(id) || this.handedOut.has(id) || entry.attempts > 0 || entry.seq < this.firstSeq
      out.set(id, entry === undefined ? 'unknown' : reply ? 'reply' : handed ? 'in_flight' : 'withdrawn')
      if (handed) continue
      taken.push(entry)
      this.removing.add(id) // never handed out from now on
      this.meta.delete(id)
    }
    if (taken.length === 0) return out
    await this.o.outbox.removeAll(taken.map((e) => e.id)).finally(() => { for (const e of taken) this.removing.delete(e.id); this.kick() })
      .catch((err: Error) => { this.o.log('error', `delivery: cannot withdraw ${taken[0]!.id}${taken.length > 1 ? ` and ${taken.length - 1} more` : ''}: ${err.message}`); throw err })
    for (const e of taken) {
      this.o.log('info', `delivery: ${e.id} to ${e.dest} withdrawn by its sender before it was sent`)
      this.o.events?.({ type: 'expired', id: e.id, toNode: e.dest, method: (e.route ?? legacyRoute(e.body)).method, reason: 'withdrawn' })
      this.o.onGiveUp(e, 'withdrawn')
    }
    return out
  }

  /** A message its sender withdrew as it was about to go (expand): removed unsent. */
  private dropWithdrawn(entry: OutboxEntry): void {
    if (this.removing.has(entry.id)) return
    this.o.log('debug', `delivery: ${entry.id} to ${entry.dest} was withdrawn by its sender; removed unsent`)
    this.meta.delete(entry.id)
    this.removing.add(entry.id)
    this.o.outbox.remove(entry.id).finally(() => this.removing.delete(entry.id)).catch((err: Error) => this.o.log('error', `delivery: cannot remove ${entry.id}: ${err.message}`))
  }

  private giveUp(entry: OutboxEntry, reason: GiveUpReason): void {
    if (this.removing.has(entry.id)) return
    this.o.events?.({ type: 'expired', id: entry.id, toNode: entry.dest, method: this.metaOf(entry).method, reason })
    this.release(entry.id)
    this.meta.delete(entry.id)
    this.handedOut.delete(entry.id)
    this.removing.add(entry.id)
    this.o.outbox.remove(entry.id).finally(() => this.removing.delete(entry.id)).then(
      () => this.o.onGiveUp(entry, reason),
      (err: Error) => this.o.log('error', `delivery: cannot remove ${entry.id}: ${err.message}`),
    )
  }

  /** Messages whose ttl ran out at the head of a destination that cannot be reached. */
  private expire(): void {
    const now = this.now()
    for (const dest of this.o.outbox.destinations()) {
      for (const entry of this.o.outbox.head(dest, 64)) {
        if (entry.expiresAt > 0 && entry.expiresAt <= now && !this.inflight.has(entry.id) && !this.removing.has(entry.id)) this.giveUp(entry, 'ttl_expired')
      }
    }
  }

  /** The hub says `to` is away (or stuck: `busy`, src/hub-flow.ts): hold its messages without spending attempts. */
  onNack(id: string, to: string, reason: string): void {
    const stale = this.staleNacks.get(to)
    if (stale?.delete(id)) return // for a copy sent before we heard `to` was back; resent already
    if (reason !== 'offline' && reason !== 'busy') this.o.log('warn', `delivery: ${id} to ${to} refused by the hub: ${reason}`)
    this.offline.add(to)
    // The others in flight to `to` are refused too, their nacks on the way: those may come after
    // `online` (the hub refuses a pair's messages until our echo), and must not stop it again.
    let expected = this.staleNacks.get(to)
    for (const [fid, f] of this.inflight) {
      if (f.dest !== to) continue
      if (fid !== id) (expected ??= new Set()).add(fid)
      this.release(fid)
    }
    if (expected !== undefined) this.staleNacks.set(to, expected)
    this.cursor.delete(to)
  }

  /**
   * `node` is back. Copies still in flight left before we knew: the hub refuses them (and we
   * ignore those refusals); everything goes again from the oldest message, in order.
   */
  onOnline(node: string): void {
    const stale = this.staleNacks.get(node) ?? new Set<string>()
    for (const [fid, f] of this.inflight) if (f.dest === node) { stale.add(fid); this.release(fid); this.handedOut.add(fid) }
    this.staleNacks.set(node, stale)
    this.offline.delete(node)
    this.cursor.delete(node)
    this.kick()
  }

  onConnected(): void {
    this.offline.clear()
    this.staleNacks.clear()
    this.cursor.clear()
    this.kick()
  }

  /** The link dropped: what was in flight goes again after the reconnect, attempts unspent. */
  onDisconnected(): void {
    for (const [id, f] of this.inflight) if (f.dest !== this.o.self) { this.release(id); this.handedOut.add(id) }
    this.cursor.clear()
  }

  stop(): void {
    this.stopped = true
    clearInterval(this.sweeper)
    this.deadlines.stop()
    if (this.paceTimer !== undefined) clearTimeout(this.paceTimer)
    for (const id of [...this.inflight.keys()]) this.release(id)
  }
}
