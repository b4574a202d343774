/**
 * The NATS transport, on the official `nats` client (2.x: it runs on Node 20).
 *
 *   subjects   <prefix>.<node>.<method>.<CommandACK|EventNACK>  (SPEC §2); a node subscribes to <prefix>.<self>.>
 *   offline    every message goes out with reply subject <prefix>.<self>._nr.<to>.<id>: when nobody
 *              listens on the receiver's subjects the server answers there with a 503 "no responders"
 *              status, which becomes a `nack offline` (the message waits, spending no attempt)
 *   presence   on every (re)connect a node publishes <prefix>._presence.<self>; the others hear it
 *              and send what waited for that node at once
 *   large      envelopes past the server's max_payload cross as parts (transports/chunks.ts)
 *   reconnect  the client's own: every configured server, then those the cluster announces, each
 *              attempt after a full-jitter delay (transports/base.ts fullJitter)
 *
 * NATS does not vouch for the sender, so messages carry no authenticated `from` (docs/transports.md has
 * the subject permissions that keep one node from reaching another's subjects).
 */
import type { ConnectionOptions, Msg, NatsConnection, Subscription } from 'nats'
import { OutpostError } from '../src/errors'
import { ACK_METHOD } from '../src/method-names'
import { abbreviate } from '../src/wire/framing'
import { nstr, obj, str, type Infer } from '../src/config/spec'
import type { Outbound, ServerAddress, Transport, TransportOptions, TransportPlugin } from '../src/transport'
import { fullJitter, readConfigFile, TransportBase } from './base'
import { chunk, Unchunker } from './chunks'
import { Subjects } from './subjects'

/**
 * The client is loaded when a NATS transport is created, not when outpost starts: it costs
 * ~12 MB of memory that nodes on another transport should not pay. (A static string: the
 * bundler still includes it.)
 */
const client = (): typeof import('nats') => require('nats') as typeof import('nats')

const RETRY_MS = 2_000
/** The client's own reconnects: full jitter from 0 up to 0.5, 1, 2 … 30 s (see fullJitter). */
const RECONNECT_MIN_MS = 500
const RECONNECT_MAX_MS = 30_000
const AUTH_RETRY_MS = 10_000

const DEFAULT_PORT = 4222

export function parseServer(url: string): ServerAddress {
  const m = /^(nats|tls):\/\/(?:[^@/]*@)?(\[[^\]]+\]|[^:/@]+)(?::(\d+))?\/?$/.exec(url)
  if (!m) throw new OutpostError('config_invalid', `transport.servers: ${JSON.stringify(url)} is not a nats:// (or tls://) URL, as transport.kind nats needs`)
  return { url, scheme: m[1]!, host: m[2]!.replace(/^\[(.*)\]$/, '$1'), port: m[3] ? Number(m[3]) : DEFAULT_PORT }
}

/** transport.nats of the config. */
const SECTION = obj({
  user: nstr('NATS user.'),
  pass: nstr('NATS password.'),
  token: nstr('NATS token.'),
  nkeySeed: nstr('File holding an nkey seed.'),
  creds: nstr('A .creds file (JWT and seed).'),
  subjectPrefix: str('outpost', 'Subjects are <prefix>.<node>.<method>.<CommandACK|EventNACK>.'),
}, 'NATS options.')
type Section = Infer<typeof SECTION>

class NatsTransport extends TransportBase<Section> implements Transport {
  readonly kind = 'nats'
  private readonly subjects: Subjects
  private nc: NatsConnection | undefined
  private up = false
  private wake: (() => void) | undefined
  private readonly unchunker: Unchunker
  /** The client's reconnect attempts since it was last connected. */
  private reconnects = 0

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

  async publish(msg: Outbound): Promise<void> {
    const nc = this.nc
    if (!this.connected || nc === undefined) throw new OutpostError('not_connected', 'nats: not connected to a server')
    const subject = this.subjects.message(msg.to, msg.method, msg.event)
    // ACKs need no offline notice: a lost ACK is a resend, and the resend is ACKed again.
    const reply = msg.method === ACK_METHOD ? undefined : this.subjects.noResponders(this.opts.node, msg.to, msg.id)
    for (const piece of chunk(msg.id, msg.to, msg.bytes, nc.info?.max_payload ?? 1024 * 1024)) {
      this.opts.debug?.(`nats → ${subject} ${msg.id} ${abbreviate(piece)}`)
      nc.publish(subject, piece, reply === undefined ? undefined : { reply })
    }
  }

  private options(): ConnectionOptions {
    const { section: nats, tls } = this.opts
    const o: ConnectionOptions = {
      servers: this.opts.servers.map((s) => s.replace(/^tls:\/\//, 'nats://')),
      name: `outpost ${this.opts.node} ${this.opts.version}`,
      maxReconnectAttempts: -1,
      reconnectDelayHandler: () => fullJitter(this.reconnects++, RECONNECT_MIN_MS, RECONNECT_MAX_MS),
      waitOnFirstConnect: false,
      pingInterval: 15_000,
      maxPingOut: 3,
    }
    if (nats.user) o.user = nats.user
    if (nats.pass) o.pass = nats.pass
    if (nats.token) o.token = nats.token
    if (nats.creds) o.authenticator = client().credsAuthenticator(readConfigFile('transport.nats.creds', nats.creds))
    else if (nats.nkeySeed) o.authenticator = client().nkeyAuthenticator(new TextEncoder().encode(readConfigFile('transport.nats.nkeySeed', nats.nkeySeed).toString().trim()))
    if (tls.ca || tls.cert || this.opts.servers.some((s) => s.startsWith('tls://'))) {
      o.tls = {}
      if (tls.ca) o.tls.caFile = tls.ca
      if (tls.cert) o.tls.certFile = tls.cert
      if (tls.key) o.tls.keyFile = tls.key
    }
    return o
  }

  /** Connect, and connect again whenever the client gives up, for as long as the transport is open. */
  private async run(): Promise<void> {
    let attempt = 0
    let warned = false
    while (!this.closed) {
      let nc: NatsConnection
      try {
        nc = await client().connect(this.options())
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
    const presence = this.subjects.presencePrefix()
    return [
      nc.subscribe(this.subjects.inbox(this.opts.node), {
        callback: (err, m) => {
          if (err) return this.opts.log('warn', `nats: subscription: ${err.message}`)
          if (m.subject.startsWith(nr)) return this.noResponders(m, nr)
          this.receive(m)
        },
      }),
      nc.subscribe(this.subjects.presenceAll(), {
        callback: (_err, m) => {
          const node = m.subject.slice(presence.length)
          if (node !== this.opts.node) this.evq.push({ type: 'online', node })
        },
      }),
    ]
  }

  private receive(m: Msg): void {
    // <prefix>.<self>.<method...>.<kind>: the receiver is us; the parts key needs only an id.
    this.opts.debug?.(`nats ← ${m.subject} ${abbreviate(m.data)}`)
    try {
      const whole = this.unchunker.push(this.opts.node, m.data)
      if (whole !== undefined) this.inbound.push({ bytes: whole })
    } catch (err) {
      this.opts.log('warn', `nats: dropped a malformed message on ${m.subject}: ${(err as Error).message}`)
    }
  }

  /** A 503 on <prefix>.<self>._nr.<to>.<id>: nobody listens for <to>. */
  private noResponders(m: Msg, nr: string): void {
    if (m.headers?.code !== 503) return
    const rest = m.subject.slice(nr.length)
    const dot = rest.indexOf('.')
    if (dot < 1) return
    this.evq.push({ type: 'nack', to: rest.slice(0, dot), id: rest.slice(dot + 1), reason: 'offline' })
  }

  /** Tell the others this node listens now (they resend what waited for it). */
  private online(nc: NatsConnection): void {
    nc.flush().then(() => {
      if (nc.isClosed()) return
      nc.publish(this.subjects.presence(this.opts.node), new Uint8Array(0))
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
    if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close().catch(() => {}))
  }
}

export default {
  kind: 'nats',
  summary: 'a NATS server or cluster',
  schemes: ['nats', 'tls'],
  section: SECTION,
  parseServer,
  create: (o) => new NatsTransport(o),
} as const satisfies TransportPlugin<typeof SECTION.fields>
