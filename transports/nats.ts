/**
 * The NATS transport, on the official `nats` client (2.x: it runs on Node 20).
 *
 *   subjects   <prefix>.<node>.<method>.<CommandACK|EventNACK>  (SPEC §2); a node subscribes to <prefix>.<self>.>
 *   offline    every message goes out with reply subject <prefix>.<self>._nr.<to>.<id>: when nobody
 *              listens on the receiver's subjects the server answers there with a 503 "no responders"
 *              status, which becomes a `nack offline` (the message waits, spending no attempt)
 *   presence   on every (re)connect a node publishes <prefix>._presence.<self> (payload: its api
 *              version; api version 1 sent nothing); the others hear it and send what waited for that
 *              node at once
 *   versions   the first message to a node whose version is not known also asks it: a probe on
 *              <prefix>.<to>._api.<self>, shaped as an ACK of nothing (a node of api version 1 drops
 *              it without a word), answered by a node of version 2 or later with its version on
 *              <prefix>.<self>._api.<to>; a message to it unacknowledged for its ackTimeout puts
 *              the answer in doubt (one envelope a publish again, and the next message asks again)
 *   batches    to a node of api version 2 or later, what is published to it in one tick after the
 *              first goes at the end of the tick in batched payloads (broker-batch.ts), on
 *              <prefix>.<to>._batch.<CommandACK|EventNACK>; to a node of version 4 or later (with
 *              transport.compress auto), a payload of ≥ 1 KiB goes compressed when that pays (broker-payload.ts)
 *   publishAll what delivery's pump finds ready, in one call: batched payloads at once (first included)
 *              to such a node, one envelope a publish to others
 *   large      envelopes past the server's max_payload cross as parts (transports/chunks.ts)
 *   reconnect  the client's own: every configured server, then those the cluster announces, each
 *              attempt after a full-jitter delay (transports/base.ts fullJitter)
 *
 * NATS does not vouch for the sender, so messages carry no authenticated `from` (docs/transports.md has
 * the subject permissions that keep one node from reaching another's subjects).
 */
import type { Msg, NatsConnection, Subscription } from 'nats'
import { encode } from '@msgpack/msgpack'
import { isOutpostError, OutpostError } from '../src/errors'
import { ACK_METHOD } from '../src/method-names'
import { abbreviate } from '../src/wire/framing'
import type { Outbound, Transport, TransportOptions, TransportPlugin } from '../src/transport'
import { fullJitter, TransportBase } from './base'
import { client, natsOptions, parseServer, SECTION, type Section } from './nats-config'
import { chunk, Unchunker } from './chunks'
import { Subjects } from './subjects'
import { BATCH_BYTES, Outcomes, packPayloads, perReceiver, PeerVersions, TickQueue } from './broker-batch'
import { announcedApi, compressPayload, envelopesOf, natsPublishBytes } from './broker-payload'

const RETRY_MS = 2_000
const AUTH_RETRY_MS = 10_000
/** How long a stop waits for drain() (which needs the server) before it closes the connection. */
const DRAIN_MS = 2_000

/** What publish() gives back for a message written at once (one resolved promise for all of them). */
const SENT = Promise.resolve()
/** Batches whose no-responders answer (which names the first id) stands for all their ids. */
const BATCHES_KEPT = 4096

class NatsTransport extends TransportBase<Section> implements Transport {
  readonly kind = 'nats'
  private readonly subjects: Subjects
  private nc: NatsConnection | undefined
  private up = false
  private wake: (() => void) | undefined
  private readonly unchunker: Unchunker
  /** The client's reconnect attempts since it was last connected. */
  private reconnects = 0
  /** What each node said of its api version (presence, or the answer to a probe). */
  private readonly peers = new PeerVersions()
  /** Nodes asked for their api version since this connection came up. */
  private readonly probed = new Set<string>()
  private readonly tick = new TickQueue<Outbound>((to, items) => this.sendBatch(to, items))
  /** A batch's first id → all its ids (a no-responders answer refuses them all). */
  private readonly batches = new Map<string, string[]>()

  /** The api version `node` announced (undefined: not heard of yet). */
  peerApi(node: string): number | undefined {
    return this.peers.get(node)
  }

  /**
   * A message to `node` went unacknowledged. The broker does not vouch for who answered a
   * probe: a wrong "2" for a node of version 1 would leave it batches it cannot read. So one
   * timeout puts its version in doubt (one envelope a publish) and the next message asks again.
   */
  unacked(node: string): void {
    if (this.peers.get(node) === undefined) return
    this.peers.doubt(node)
    this.probed.delete(node)
  }

  constructor(opts: TransportOptions<Section>) {
    super(opts)
    this.subjects = new Subjects('nats', opts.section.subjectPrefix)
    for (const s of opts.servers) parseServer(s)
    if (opts.node.startsWith('_')) throw new OutpostError('config_invalid', `node.name: names starting with _ are reserved on NATS (${opts.node})`)
    this.unchunker = new Unchunker(opts.maxMessageBytes ?? 16 * 1024 * 1024)
  }

  get connected(): boolean {
    return this.up && this.nc !== undefined && !this.nc.isClosed()
  }

  protected open(): void {
    this.startSweeping(() => this.unchunker.sweep())
    void this.run()
  }

  /** Not async: a message held for the end of its tick gets the promise its tick's batch shares, not one of its own. */
  publish(msg: Outbound): Promise<void> {
    const nc = this.nc
    if (!this.connected || nc === undefined) return Promise.reject(new OutpostError('not_connected', 'nats: not connected to a server'))
    try {
      if (this.peers.get(msg.to) === undefined && !this.probed.has(msg.to)) this.probe(nc, msg.to)
      // To a node that takes batches, the first message of a tick goes now, the rest at its end.
      if (this.peers.takesBatches(msg.to) && !this.tick.first(msg.to)) return this.tick.add(msg.to, msg)
      const wire = this.put(nc, this.subjects.message(msg.to, msg.method, msg.event), msg.id, msg.to, msg.bytes, msg.method === ACK_METHOD)
      this.opts.onWire?.([msg], wire)
      return SENT
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** One payload (compressed when `to` takes it and it pays; as parts past max_payload); its bytes on the wire. */
  private put(nc: NatsConnection, subject: string, id: string, to: string, payload: Uint8Array, ack: boolean): number {
    // ACKs need no offline notice: a lost ACK is a resend, and the resend is ACKed again.
    const reply = ack ? undefined : this.subjects.noResponders(this.opts.node, to, id)
    const bytes = this.opts.compress === 'auto' && this.peers.takesDeflate(to) ? compressPayload(payload) : payload
    let wire = 0
    for (const piece of chunk(id, to, bytes, nc.info?.max_payload ?? 1024 * 1024)) {
      this.opts.debug?.(`nats → ${subject} ${id} ${abbreviate(piece)}`)
      nc.publish(subject, piece, reply === undefined ? undefined : { reply })
      wire += natsPublishBytes(subject, reply, piece.length)
    }
    return wire
  }

  /**
   * Many messages at once (delivery's pump): handed to the client now, per receiver: to one that
   * takes batches in batched payloads (first message included), else one envelope a publish;
   * after what publish held for the end of this tick (order per receiver is kept). A payload the
   * client refuses fails exactly the messages it carries.
   */
  publishAll(msgs: readonly Outbound[], written?: () => void): Promise<readonly (Error | undefined)[] | undefined> {
    const nc = this.nc
    if (!this.connected || nc === undefined) {
      const err = new OutpostError('not_connected', 'nats: not connected to a server')
      return Promise.resolve(msgs.map(() => err))
    }
    this.tick.flush()
    const out = new Outcomes(msgs.length)
    let wire = 0
    for (const g of perReceiver(msgs)) {
      const fail = (at: number, n: number, err: Error): void => out.fail(g, at, n, err)
      try {
        if (this.peers.get(g.to) === undefined && !this.probed.has(g.to)) this.probe(nc, g.to)
      } catch (err) {
        fail(0, g.items.length, err as Error)
        continue
      }
      if (this.peers.takesBatches(g.to)) { wire += this.putBatches(nc, g.to, g.items, fail); continue }
      g.items.forEach((m, k) => {
        try { wire += this.put(nc, this.subjects.message(m.to, m.method, m.event), m.id, m.to, m.bytes, m.method === ACK_METHOD) } catch (err) { fail(k, 1, err as Error) }
      })
    }
    this.opts.onWire?.(out.taken(msgs), wire)
    for (const m of msgs) m.written?.()
    written?.()
    return Promise.resolve(out.failed)
  }

  /** The end of a tick: what else was published to `to` in it, in batched payloads, in order. */
  private async sendBatch(to: string, items: Outbound[]): Promise<void> {
    const nc = this.nc
    if (!this.connected || nc === undefined) throw new OutpostError('not_connected', 'nats: not connected to a server')
    let first: Error | undefined
    const wire = this.putBatches(nc, to, items, (_at, _n, err) => { first ??= err })
    if (first !== undefined) throw first
    this.opts.onWire?.(items, wire)
  }

  /** `items` to `to` in batched payloads, in order; `fail`: a payload's messages (from `at`, `n` of them) the client refused. Its bytes on the wire. */
  private putBatches(nc: NatsConnection, to: string, items: readonly Outbound[], fail: (at: number, n: number, err: Error) => void): number {
    const events = items.every((m) => m.event)
    // Within the server's max_payload (a batch past it would cross as parts, which work, but cost a reassembly).
    let wire = 0
    for (const p of packPayloads(items, Math.min(BATCH_BYTES, (nc.info?.max_payload ?? 1024 * 1024) - 256))) {
      try {
        const one = p.ids.length === 1 ? items[p.at] : undefined
        if (one !== undefined) { wire += this.put(nc, this.subjects.message(to, one.method, one.event), one.id, to, one.bytes, one.method === ACK_METHOD); continue }
        const acks = items.slice(p.at, p.at + p.ids.length).every((m) => m.method === ACK_METHOD)
        if (!acks) {
          this.batches.set(p.ids[0]!, p.ids)
          if (this.batches.size > BATCHES_KEPT) this.batches.delete(this.batches.keys().next().value!)
        }
        wire += this.put(nc, this.subjects.message(to, '_batch', events), p.ids[0]!, to, p.bytes, acks)
      } catch (err) {
        fail(p.at, p.ids.length, err as Error)
      }
    }
    return wire
  }

  /**
   * Ask `to` which api version it speaks. The probe is an ACK of nothing, so that a node of api
   * version 1 (which takes everything under its subject) drops it silently; a newer one answers.
   */
  private probe(nc: NatsConnection, to: string): void {
    this.probed.add(to)
    const ack = { id: '_api', toNode: to, fromNode: this.opts.node, method: ACK_METHOD, ackTimeout: 0, createdAt: 0 }
    nc.publish(this.subjects.apiProbe(to, this.opts.node), encode(ack), { reply: this.subjects.apiProbe(this.opts.node, to) })
  }

  /** On <prefix>.<self>._api.<node>: a probe from `node` (answered) or `node`'s answer to ours. */
  private apiMessage(m: Msg, prefix: string): void {
    const node = m.subject.slice(prefix.length)
    if (node === '' || node.includes('.')) return
    if (m.reply) {
      // What the asker is, our own probe or its presence says (anyone may publish here).
      m.respond(new TextEncoder().encode(String(announcedApi(this.opts.compress))))
      return
    }
    if (m.headers?.code === 503) return // away: its presence will say when it is back
    // Only the answer to a question we asked.
    if (!this.probed.has(node) || this.peers.get(node) !== undefined) return
    const v = Number(new TextDecoder().decode(m.data))
    if (Number.isInteger(v) && v > 0) this.peers.set(node, v)
  }

  /** Connect, and connect again whenever the client gives up, for as long as the transport is open. */
  private async run(): Promise<void> {
    let attempt = 0
    let warned = false
    while (!this.closed) {
      let nc: NatsConnection
      try {
        nc = await client().connect(natsOptions(this.opts, () => this.reconnects++))
      } catch (err) {
        if (this.closed) return
        const auth = /AUTHORIZATION|AUTHENTICATION|permissions/i.test(`${(err as { code?: string }).code} ${(err as Error).message}`)
        const delay = auth ? AUTH_RETRY_MS : fullJitter(attempt, RETRY_MS, 30_000)
        attempt++
        if (auth) {
          this.evq.push({ type: 'fatal', error: new OutpostError('auth_failed', `nats: the server refused this node's credentials (${(err as Error).message}); retrying in ${delay / 1000} s`) })
        } else if (!warned) {
          warned = true
          this.opts.log('warn', `nats: cannot reach ${this.opts.servers.join(', ')} (${(err as Error).message}); retrying`)
        }
        this.evq.push({ type: 'reconnecting', attempt, delayMs: delay, server: this.opts.servers[0] ?? '' })
        await this.sleep(delay)
        continue
      }
      if (this.closed) { await nc.close().catch(() => {}); return }
      attempt = 0
      warned = false
      this.nc = nc
      const subs = this.subscribe(nc)
      this.online(nc)
      void this.watch(nc)
      const err = await nc.closed()
      for (const s of subs) s.unsubscribe()
      this.nc = undefined
      if (this.up) {
        this.up = false
        this.evq.push({ type: 'disconnected', ...(err ? { error: new OutpostError('not_connected', `nats: ${err.message}`) } : {}) })
      }
      if (err && !this.closed) this.opts.log('warn', `nats: connection closed: ${err.message}`)
    }
  }

  private subscribe(nc: NatsConnection): Subscription[] {
    const nr = this.subjects.noRespondersPrefix(this.opts.node)
    const api = this.subjects.apiProbe(this.opts.node, '')
    const presence = this.subjects.presencePrefix()
    return [
      nc.subscribe(this.subjects.inbox(this.opts.node), {
        callback: (err, m) => {
          if (err) return this.opts.log('warn', `nats: subscription: ${err.message}`)
          if (m.subject.startsWith(nr)) return this.noResponders(m, nr)
          if (m.subject.startsWith(api)) return this.apiMessage(m, api)
          this.receive(m)
        },
      }),
      nc.subscribe(this.subjects.presenceAll(), {
        callback: (_err, m) => {
          const node = m.subject.slice(presence.length)
          if (node === this.opts.node) return
          this.peers.set(node, m.data.length === 0 ? 1 : Number(new TextDecoder().decode(m.data)) || 1)
          this.evq.push({ type: 'online', node })
        },
      }),
    ]
  }

  private receive(m: Msg): void {
    // <prefix>.<self>.<method...>.<kind>: the receiver is us; the parts key needs only an id.
    this.opts.debug?.(`nats ← ${m.subject} ${abbreviate(m.data)}`)
    try {
      const whole = this.unchunker.push(this.opts.node, m.data)
      if (whole === undefined) return
      // A batch's envelopes are queued in one go: their receipts share a journal commit.
      for (const bytes of envelopesOf(whole)) this.inbound.push({ bytes })
    } catch (err) {
      // That payload alone: its messages are not acknowledged (their senders send them again).
      this.drops.note('the broker', 'malformed', `nats: dropped a malformed message on ${m.subject}: ${isOutpostError(err) ? `${err.code}: ` : ''}${(err as Error).message}`)
    }
  }

  /** A 503 on <prefix>.<self>._nr.<to>.<id>: nobody listens for <to>. */
  private noResponders(m: Msg, nr: string): void {
    if (m.headers?.code !== 503) return
    const rest = m.subject.slice(nr.length)
    const dot = rest.indexOf('.')
    if (dot < 1) return
    const to = rest.slice(0, dot)
    const id = rest.slice(dot + 1)
    const ids = this.batches.get(id) ?? [id]
    this.batches.delete(id)
    for (const one of ids) this.evq.push({ type: 'nack', to, id: one, reason: 'offline' })
  }

  /** Tell the others this node listens now (they resend what waited for it). */
  private online(nc: NatsConnection): void {
    nc.flush().then(() => {
      if (nc.isClosed()) return
      // Who runs what may have changed while we were away: presence and probes say it again.
      this.peers.forget()
      this.probed.clear()
      nc.publish(this.subjects.presence(this.opts.node), new TextEncoder().encode(String(announcedApi(this.opts.compress))))
      this.up = true
      this.evq.push({ type: 'connected', server: nc.getServer() })
    }).catch(() => { /* closed meanwhile */ })
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          if (this.up) { this.up = false; this.evq.push({ type: 'disconnected' }) }
          break
        case 'reconnecting':
          this.evq.push({ type: 'reconnecting', attempt: 0, delayMs: 1_000, server: String(s.data) })
          break
        case 'reconnect':
          this.reconnects = 0
          this.online(nc)
          break
        case 'error':
          if (/AUTHORIZATION|AUTHENTICATION/i.test(String(s.data))) {
            this.evq.push({ type: 'fatal', error: new OutpostError('auth_failed', `nats: the server refused this node's credentials (${String(s.data)})`) })
          } else this.opts.log('warn', `nats: ${String(s.data)}`)
          break
        default:
          this.opts.debug?.(`nats status ${s.type} ${String(s.data)}`)
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = undefined; resolve() }, ms)
      this.wake = () => { clearTimeout(t); this.wake = undefined; resolve() }
    })
  }

  protected async shutdown(): Promise<void> {
    this.up = false
    this.wake?.()
    const nc = this.nc
    this.nc = undefined
    if (nc === undefined || nc.isClosed()) return
    // drain() waits for the server: with it away (the client reconnecting) it never ends, and
    // the node would never stop. Past DRAIN_MS the connection is closed without it.
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, DRAIN_MS) })
    await Promise.race([nc.drain().catch(() => {}), late])
    clearTimeout(timer)
    if (!nc.isClosed()) await nc.close().catch(() => {})
  }
}

export { parseServer }

export default {
  kind: 'nats',
  summary: 'a NATS server or cluster',
  schemes: ['nats', 'tls'],
  section: SECTION,
  parseServer,
  create: (o) => new NatsTransport(o),
} as const satisfies TransportPlugin<typeof SECTION.fields>
