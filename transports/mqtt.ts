/**
 * The MQTT transport, on MQTT.js 5 (MQTT 3.1.1, which every broker speaks).
 *
 *   topics     <prefix>/<node>/<method>/<CommandACK|EventNACK>  (SPEC §2), QoS 1; a node subscribes to
 *              <prefix>/<self>/# with a persistent session (clean: false, client id <prefix>-<self>), so
 *              the broker keeps what arrives while the node is briefly away
 *   window     at most transport.mqtt.window QoS 1 publishes await the broker's PUBACK (MQTT.js hangs
 *              past ~65k unbounded in-flight publishes: 16-bit packet ids)
 *   presence   retained <prefix>/_presence/<node>: "online <apiVersion>" on connect (api version 1
 *              said "online"), "offline" as the last will and on a clean stop. A message for a node
 *              known to be offline is not published: it is nacked `offline` (it waits in the outbox,
 *              spending no attempt) and goes when the node's "online" arrives
 *   batches    to a node whose presence says api version 2 or later, what is published to it in one
 *              tick after the first goes at the end of the tick in batched payloads (broker-batch.ts),
 *              on <prefix>/<node>/_batch/<CommandACK|EventNACK>; to a node that says 4 or later (and with
 *              transport.compress auto), a payload of ≥ 1 KiB goes compressed when that pays (broker-payload.ts)
 *   publishAll what delivery's pump finds ready, in one call: batched payloads at once (first included)
 *              to such a node, one envelope a publish to others; `written` at the PUBACK of them all
 *   large      envelopes past 256 KiB cross as parts (transports/chunks.ts), within the 1 MiB packet
 *              cap some brokers (EMQX) set by default
 *   sockets    Nagle's algorithm off on the connection (small publishes are not held for the broker's
 *              TCP ACK); the broker's side is its own setting (mosquitto: set_tcp_nodelay true, docs/transports.md)
 *   reconnect  across the server list (MQTT.js rotates through `servers`), each outage at its own
 *              period drawn evenly from 0.25–2 s; after a refusal of the
 *              credentials, every 10 s
 *
 * The broker does not vouch for the sender: messages carry no authenticated `from`.
 */
import type { IClientOptions, MqttClient } from 'mqtt'
import { isOutpostError, OutpostError } from '../src/errors'
import { ACK_METHOD } from '../src/method-names'
import { abbreviate } from '../src/wire/framing'
import { int, nstr, obj, str, type Infer } from '../src/config/spec'
import type { Outbound, ServerAddress, Transport, TransportOptions, TransportPlugin } from '../src/transport'
import { fullJitter, readConfigFile, TransportBase } from './base'
import { chunk, Unchunker } from './chunks'
import { Subjects } from './subjects'
import { Outcomes, packPayloads, perReceiver, PeerVersions, TickQueue } from './broker-batch'
import { announcedApi, compressPayload, envelopesOf, mqttPublishBytes } from './broker-payload'

/**
 * MQTT.js is loaded when an MQTT transport is created, not when outpost starts: it costs
 * ~12 MB of memory that nodes on another transport should not pay. (A static string: the
 * bundler still includes it.)
 */
const mqttClient = (): typeof import('mqtt') => require('mqtt') as typeof import('mqtt')

const DEFAULT_PORTS: Record<string, number> = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443 }
const PART_BYTES = 256 * 1024
const AUTH_RETRY_MS = 10_000
/** Reconnects after an outage are spread evenly over this range. */
const RECONNECT_MIN_MS = 250
const RECONNECT_MAX_MS = 2_000

interface Server extends ServerAddress { protocol: 'mqtt' | 'mqtts' | 'ws' | 'wss' }

export function parseServer(url: string): Server {
  const m = /^(mqtts?|wss?):\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(url)
  if (!m) throw new OutpostError('config_invalid', `transport.servers: ${JSON.stringify(url)} is not mqtt://host:port or mqtts://host:port, as transport.kind mqtt needs`)
  const protocol = m[1] as Server['protocol']
  return { url, scheme: protocol, protocol, host: m[2]!.replace(/^\[(.*)\]$/, '$1'), port: m[3] ? Number(m[3]) : DEFAULT_PORTS[protocol]! }
}

/** transport.mqtt of the config. */
const SECTION = obj({
  username: nstr('MQTT user name.'),
  password: nstr('MQTT password.'),
  topicPrefix: str('outpost', 'Topics are <prefix>/<node>/<method>/<CommandACK|EventNACK>.'),
  window: int(1000, 'Most QoS 1 publishes awaiting the broker at once.', 1),
}, 'MQTT options.')
type Section = Infer<typeof SECTION>

/** A counting semaphore: the window of publishes awaiting PUBACK. */
class Window {
  private free: number
  private readonly waiters: ((taken: boolean) => void)[] = []

  constructor(size: number) {
    this.free = size
  }

  /** undefined: a place taken now; else a wait for one: true once taken, false when the connection dropped meanwhile. */
  acquire(): Promise<boolean> | undefined {
    if (this.free > 0) { this.free--; return undefined }
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  release(): void {
    const next = this.waiters.shift()
    if (next) next(true)
    else this.free++
  }

  /** The connection dropped: who waits is told so (it fails what it would publish); the places stay with the publishes in flight. */
  cancel(): void {
    for (const w of this.waiters.splice(0)) w(false)
  }
}

class MqttTransport extends TransportBase<Section> implements Transport {
  readonly kind = 'mqtt'
  /** Outbound.written: the broker's PUBACK of a message's last piece. */
  readonly reportsWritten = true
  private readonly prefix: string
  private readonly topics: Subjects
  private readonly servers: Server[]
  private client: MqttClient | undefined
  private up = false
  private authTimer: NodeJS.Timeout | undefined
  private readonly window: Window
  /** Nodes whose retained presence says offline. */
  private readonly away = new Set<string>()
  private readonly unchunker: Unchunker
  /** What each node's presence says of its api version. */
  private readonly peers = new PeerVersions()
  private readonly tick = new TickQueue<Outbound>((to, items) => this.sendBatch(to, items))
  /** The last publishAll until it has handed everything over (undefined once it has). */
  private allBusy: Promise<undefined> | undefined

  /** The api version `node` announced in its retained presence (undefined: not heard of). */
  peerApi(node: string): number | undefined {
    return this.peers.get(node)
  }

  constructor(opts: TransportOptions<Section>) {
    super(opts)
    this.prefix = opts.section.topicPrefix
    this.topics = new Subjects('mqtt', this.prefix)
    this.servers = opts.servers.map(parseServer)
    if (opts.node.startsWith('_')) throw new OutpostError('config_invalid', `node.name: names starting with _ are reserved on MQTT (${opts.node})`)
    this.window = new Window(opts.section.window)
    this.unchunker = new Unchunker(opts.maxMessageBytes ?? 16 * 1024 * 1024)
  }

  get connected(): boolean {
    return this.up && this.client !== undefined && this.client.connected
  }

  protected open(): void {
    this.startSweeping(() => this.unchunker.sweep())
    const client = mqttClient().connect(this.options())
    this.client = client
    client.on('connect', () => this.onConnect(client))
    // Intake full: the broker connection is not read until the node has taken it (base.ts; the broker holds the rest).
    client.on('message', (topic, payload) => { this.onMessage(topic, payload); this.throttle(client.stream) })
    // MQTT.js retries at one fixed period until it connects: each outage draws its own, evenly
    // from 0.25 to 2 s, before the client's own close handler sets the timer with it (a period
    // near 0 would hammer the broker for the whole outage).
    client.prependListener('close', () => { client.options.reconnectPeriod = RECONNECT_MIN_MS + fullJitter(0, RECONNECT_MAX_MS - RECONNECT_MIN_MS, RECONNECT_MAX_MS) })
    client.on('close', () => {
      if (this.up) { this.up = false; this.evq.push({ type: 'disconnected' }) }
      this.window.cancel()
    })
    client.on('reconnect', () => this.evq.push({ type: 'reconnecting', attempt: 0, delayMs: client.options.reconnectPeriod ?? 1_000, server: describe(this.servers) }))
    client.on('error', (err) => {
      const code = (err as { code?: number }).code
      if (code === 4 || code === 5 || code === 134 || code === 135) {
        this.evq.push({ type: 'fatal', error: new OutpostError('auth_failed', `mqtt: the broker refused this node's credentials (${err.message}); retrying in ${AUTH_RETRY_MS / 1000} s`) })
        // MQTT.js does not reconnect after a refused CONNACK.
        clearTimeout(this.authTimer)
        this.authTimer = setTimeout(() => { if (!this.closed) client.reconnect() }, AUTH_RETRY_MS)
      } else this.opts.log('warn', `mqtt: ${err.message}`)
    })
  }

  private options(): IClientOptions {
    const { section: m, tls } = this.opts
    const o: IClientOptions = {
      servers: this.servers.map((s) => ({ host: s.host, port: s.port, protocol: s.protocol })),
      clientId: `${this.prefix}-${this.opts.node}`,
      clean: false,
      keepalive: 30,
      reconnectPeriod: 1_000,
      connectTimeout: 10_000,
      resubscribe: true,
      will: { topic: this.presenceTopic(this.opts.node), payload: Buffer.from('offline'), qos: 1, retain: true },
    }
    if (m.username) o.username = m.username
    if (m.password) o.password = m.password
    if (tls.ca) o.ca = readConfigFile('transport.tls.ca', tls.ca)
    if (tls.cert) o.cert = readConfigFile('transport.tls.cert', tls.cert)
    if (tls.key) o.key = readConfigFile('transport.tls.key', tls.key)
    return o
  }

  private presenceTopic(node: string): string {
    return this.topics.presence(node)
  }

  private onConnect(client: MqttClient): void {
    // Nagle's algorithm off (MQTT.js leaves it on): a small publish (an ACK of many ids, a deflated
    // batch) written while our last small one waits for the broker's TCP ACK would wait for it,
    // and a peer that sends nothing back delays that ACK up to 40 ms. nats.js does the same.
    ;(client.stream as { setNoDelay?: (on: boolean) => unknown }).setNoDelay?.(true)
    // The retained presence that comes with the subscription says again who runs what.
    this.peers.forget()
    const mine = this.topics.inbox(this.opts.node)
    client.subscribe({ [mine]: { qos: 1 }, [this.topics.presenceAll()]: { qos: 1 } }, (err) => {
      if (err) {
        this.evq.push({ type: 'fatal', error: new OutpostError('auth_failed', `mqtt: the broker refused the subscription to ${mine}: ${err.message}`) })
        return
      }
      client.publish(this.presenceTopic(this.opts.node), `online ${announcedApi(this.opts.compress)}`, { qos: 1, retain: true })
      this.up = true
      this.evq.push({ type: 'connected', server: describe(this.servers) })
    })
  }

  private onMessage(topic: string, payload: Buffer): void {
    const presence = this.topics.presencePrefix()
    if (topic.startsWith(presence)) {
      const node = topic.slice(presence.length)
      if (node === this.opts.node) return
      const said = payload.toString()
      if (said === 'offline') {
        this.away.add(node)
      } else if (said === 'online' || said.startsWith('online ')) {
        this.peers.set(node, Number(said.slice(7)) || 1)
        this.away.delete(node)
        this.evq.push({ type: 'online', node })
      }
      return
    }
    this.opts.debug?.(`mqtt ← ${topic} ${abbreviate(payload)}`)
    try {
      const whole = this.unchunker.push(this.opts.node, payload)
      if (whole === undefined) return
      // A batch's envelopes are queued in one go: their receipts share a journal commit.
      for (const bytes of envelopesOf(whole)) this.inbound.push({ bytes })
    } catch (err) {
      // That payload alone: its messages are not acknowledged (their senders send them again).
      this.drops.note('the broker', 'malformed', `mqtt: dropped a malformed message on ${topic}: ${isOutpostError(err) ? `${err.code}: ` : ''}${(err as Error).message}`)
    }
  }

  /** Not async: a message held for the end of its tick gets the promise its tick's batch shares, not one of its own. */
  publish(msg: Outbound): Promise<void> {
    const client = this.client
    if (!this.connected || client === undefined) return Promise.reject(new OutpostError('not_connected', 'mqtt: not connected to a broker'))
    if (msg.method !== ACK_METHOD && this.away.has(msg.to)) {
      this.evq.push({ type: 'nack', id: msg.id, to: msg.to, reason: 'offline' })
      return Promise.resolve()
    }
    // To a node that takes batches, the first message of a tick goes now, the rest at its end.
    if (this.peers.takesBatches(msg.to) && !this.tick.first(msg.to)) return this.tick.add(msg.to, msg)
    return this.publishOne(client, msg)
  }

  private async publishOne(client: MqttClient, msg: Outbound): Promise<void> {
    const wire = await this.put(client, this.topics.message(msg.to, msg.method, msg.event), msg.id, msg.to, msg.bytes, msg.written)
    this.opts.onWire?.([msg], wire)
  }

  /**
   * Many messages at once (delivery's pump): to the client now, per receiver: to one that takes
   * batches in batched payloads (first message included), else one envelope a publish; after
   * what publish held for the end of this tick (order per receiver is kept). One promise for the
   * call (a wait only when the window of publishes awaiting PUBACK is full); `written` once the
   * broker acknowledged all of them. A payload that finds the broker gone fails exactly its
   * messages (and the rest of its receiver's, which must not overtake them).
   */
  publishAll(msgs: readonly Outbound[], written?: () => void): Promise<readonly (Error | undefined)[] | undefined> {
    // A call still waiting for the window goes on first: a later pump's messages must not overtake it.
    const before = this.allBusy
    const run = before === undefined ? this.handOver(msgs, written) : before.then(() => this.handOver(msgs, written))
    const mine = run.then(() => undefined, () => undefined)
    this.allBusy = mine
    void mine.then(() => { if (this.allBusy === mine) this.allBusy = undefined })
    return run
  }

  private async handOver(msgs: readonly Outbound[], written?: () => void): Promise<readonly (Error | undefined)[] | undefined> {
    const client = this.client
    const gone = (): OutpostError => new OutpostError('not_connected', 'mqtt: not connected to a broker')
    if (!this.connected || client === undefined) { const err = gone(); return msgs.map(() => err) }
    this.tick.flush()
    const out = new Outcomes(msgs.length)
    // The PUBACKs still to come (and this call's own, until it has handed over everything).
    let owed = 1
    const acked = (): void => {
      if (--owed > 0) return
      for (const m of msgs) m.written?.()
      written?.()
    }
    let wire = 0
    for (const g of perReceiver(msgs)) {
      if (this.away.has(g.to)) {
        // As publish: nacked `offline`, taken (it waits in the outbox, spending no attempt).
        for (const m of g.items) if (m.method !== ACK_METHOD) this.evq.push({ type: 'nack', id: m.id, to: m.to, reason: 'offline' })
        continue
      }
      const batching = this.peers.takesBatches(g.to)
      const events = batching && g.items.every((m) => m.event)
      const payloads = batching ? packPayloads(g.items) : g.items.map((m, k) => ({ ids: [m.id], bytes: m.bytes, at: k }))
      payloads: for (const p of payloads) {
        const one = p.ids.length === 1 ? g.items[p.at]! : undefined
        const topic = one !== undefined ? this.topics.message(g.to, one.method, one.event) : this.topics.message(g.to, '_batch', events)
        const id = one?.id ?? `batch of ${p.ids.length}`
        const pieces = this.pieces(id, g.to, p.bytes)
        for (let k = 0; k < pieces.length; k++) {
          const wait = this.window.acquire()
          const taken = wait === undefined || await wait
          if (!taken || (k === 0 && !this.connected)) {
            // The broker went away while this waited for the window: this payload and the rest to its receiver fail.
            if (taken) this.window.release()
            out.fail(g, p.at, g.items.length - p.at, gone())
            break payloads
          }
          const last = k === pieces.length - 1
          if (last) owed++
          wire += this.send(client, topic, id, pieces[k]!, last ? acked : undefined)
        }
      }
    }
    this.opts.onWire?.(out.taken(msgs), wire)
    acked()
    return out.failed
  }

  /** One payload (compressed when `to` takes it and it pays; as parts past 256 KiB), within the window of publishes awaiting PUBACK; `written` at the PUBACK of the last; its bytes on the wire. */
  private async put(client: MqttClient, topic: string, id: string, to: string, payload: Uint8Array, written?: () => void): Promise<number> {
    let wire = 0
    const pieces = this.pieces(id, to, payload)
    for (const [k, piece] of pieces.entries()) {
      const wait = this.window.acquire()
      if (wait && !(await wait)) throw new OutpostError('not_connected', 'mqtt: the broker went away while this waited for the window')
      wire += this.send(client, topic, id, piece, k === pieces.length - 1 ? written : undefined)
    }
    return wire
  }

  /** A payload as it goes: compressed when `to` takes it and it pays, as parts past 256 KiB. */
  private pieces(id: string, to: string, payload: Uint8Array): Uint8Array[] {
    const bytes = this.opts.compress === 'auto' && this.peers.takesDeflate(to) ? compressPayload(payload) : payload
    return chunk(id, to, bytes, PART_BYTES + 256)
  }

  /** One QoS 1 publish, its place in the window taken; `acked` at its PUBACK. Its bytes on the wire. */
  private send(client: MqttClient, topic: string, id: string, piece: Uint8Array, acked?: () => void): number {
    this.opts.debug?.(`mqtt → ${topic} ${id} ${abbreviate(piece)}`)
    client.publish(topic, Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength), { qos: 1 }, () => { this.window.release(); acked?.() })
    return mqttPublishBytes(topic, piece.length)
  }

  /** The end of a tick: what else was published to `to` in it, in batched payloads, in order. */
  private async sendBatch(to: string, items: Outbound[]): Promise<void> {
    const client = this.client
    if (!this.connected || client === undefined) throw new OutpostError('not_connected', 'mqtt: not connected to a broker')
    const events = items.every((m) => m.event)
    let wire = 0
    for (const p of packPayloads(items)) {
      const one = p.ids.length === 1 ? items[p.at] : undefined
      const topic = one !== undefined ? this.topics.message(to, one.method, one.event) : this.topics.message(to, '_batch', events)
      const carried = p.ids.map((_, k) => items[p.at + k]?.written)
      wire += await this.put(client, topic, p.ids.length === 1 ? p.ids[0]! : `batch of ${p.ids.length}`, to, p.bytes, () => { for (const w of carried) w?.() })
    }
    this.opts.onWire?.(items, wire)
  }

  protected async shutdown(): Promise<void> {
    clearTimeout(this.authTimer)
    const client = this.client
    if (client) {
      if (this.connected) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 1_000)
          client.publish(this.presenceTopic(this.opts.node), 'offline', { qos: 1, retain: true }, () => { clearTimeout(t); resolve() })
        })
      }
      this.up = false
      await new Promise<void>((resolve) => client.end(false, {}, () => resolve()))
    }
  }
}

function describe(servers: Server[]): string {
  return servers.map((s) => `${s.protocol}://${s.host}:${s.port}`).join(', ')
}

export default {
  kind: 'mqtt',
  summary: 'an MQTT broker (QoS 1)',
  schemes: ['mqtt', 'mqtts', 'ws', 'wss'],
  section: SECTION,
  parseServer,
  create: (o) => new MqttTransport(o),
} as const satisfies TransportPlugin<typeof SECTION.fields>
