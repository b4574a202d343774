/**
 * The TCP transport: framed MessagePack to the built-in hub (SPEC §3).
 *
 *   start ─▶ for each server, each address its name resolves to: connect ─▶ hello ─▶ welcome
 *          ├ redirect ─▶ the server list it names, from the top
 *          ├ error    ─▶ auth_failed is reported (fatal event) and retried slowly
 *          └ close    ─▶ capped exponential backoff with full jitter ─▶ again
 *   publish ─▶ msg frame, or part frames past 8 KiB; writes in one tick are corked together;
 *   publishAll ─▶ the same for many messages at once (batch frames per receiver from a hub of
 *   apiVersion 2), one write callback and one promise for them all;
 *   the write callback of a message's last frame calls its `written` (delivery starts its ACK timer)
 *   (hub of apiVersion 2: the first message of a tick is written at once, the rest of the tick's
 *   at its end, per receiver in batch frames)
 *   (hub of apiVersion 3: an ACK of many ids is an `acks` frame; a hub offering `deflate`, with
 *   transport.compress auto: a frame of ≥ 1 KiB of envelopes goes as a zbatch when that pays)
 *   frames in ─▶ msg / reassembled parts ─▶ messages() (intake full: not read, base.ts); nack / online ─▶ events()
 */
import dns from 'node:dns/promises'
import net from 'node:net'
import tls from 'node:tls'
import { ERROR_CODES, OutpostError, isOutpostError, type ErrorCode } from '../src/errors'
import { encodeFrame, FrameDecoder, splitEnvelope, type Frame } from '../src/wire/framing'
import { Reassembler } from '../src/wire/reassembler'
import type { Outbound, ServerAddress, Transport, TransportOptions, TransportPlugin } from '../src/transport'
import { API_VERSION } from '../src/version'
import { fullJitter, readConfigFile, TransportBase } from './base'
import { onHubFrame } from './hub-frames'
import { BATCH_API, type Outgoing } from '../src/wire/batch'
import { describe, framesOf, writeFrames } from './tcp-write'
import { ACKS_API } from '../src/wire/acks'

const DEFAULT_PORT = 7430
const CONNECT_TIMEOUT_MS = 10_000
const PING_EVERY_MS = 15_000
const DEAD_AFTER_MS = 45_000
const BACKOFF_MIN_MS = 250
const BACKOFF_MAX_MS = 30_000
const AUTH_BACKOFF_MS = 10_000
const MAX_REDIRECTS = 3
/** Past this much unsent data, publish waits for the socket to drain. */
const HIGH_WATER = 4 * 1024 * 1024

interface Target extends ServerAddress { secure: boolean }

/** Once `sock` has drained (or closed). */
function drained(sock: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => { sock.off('drain', done); sock.off('close', done); resolve() }
    sock.on('drain', done)
    sock.on('close', done)
  })
}

export function parseServer(url: string): Target {
  const m = /^(tcp|tls):\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(url)
  if (!m) throw new OutpostError('config_invalid', `transport.servers: ${JSON.stringify(url)} is not tcp://host:port or tls://host:port`)
  return { url, scheme: m[1]!, secure: m[1] === 'tls', host: m[2]!.replace(/^\[(.*)\]$/, '$1'), port: m[3] ? Number(m[3]) : DEFAULT_PORT }
}

class TcpTransport extends TransportBase implements Transport {
  readonly kind = 'tcp'
  /** Outbound.written: the socket's write callback of a message's last frame. */
  readonly reportsWritten = true
  private servers: string[] // transport.servers, or the last redirect's until none of those can be reached
  private readonly configured: string[]
  private sock: net.Socket | undefined
  private welcomed = false
  private corked = false
  private wake: (() => void) | undefined
  private refused = false // the hub refused our credentials: back off at least AUTH_BACKOFF_MS
  private pending: net.Socket | undefined // the connection being set up (not welcomed yet): close() must end it too
  private readonly reassembler: Reassembler
  /** The hub takes batch frames (its welcome said apiVersion 2 or later). */
  private batching = false
  /** The hub takes `acks` frames (welcome apiVersion 3 or later). */
  private acking = false
  /** Compress batches: transport.compress is auto and the hub offers `deflate`. */
  private deflate = false
  /** A message was published in this tick: the next ones wait for the flush. */
  private tickOpen = false
  /** Published in this tick, sent at the next (batching only). */
  private queued: Array<Outgoing & { to: string; method: string; done: (err?: Error) => void; written?: (() => void) | undefined }> = []

  constructor(opts: TransportOptions) {
    super(opts)
    this.servers = this.configured = [...opts.servers]
    for (const s of this.servers) parseServer(s)
    this.reassembler = new Reassembler({ maxBytes: opts.maxMessageBytes ?? 16 * 1024 * 1024 })
  }

  get connected(): boolean { return this.welcomed && this.sock !== undefined && !this.sock.destroyed }

  get manyIdAcks(): boolean { return this.acking && this.connected }

  protected open(): void {
    // Parts of a message whose sender went away are dropped after a minute.
    this.startSweeping(() => this.reassembler.sweep())
    void this.run()
  }

  async publish(msg: Outbound): Promise<void> {
    const sock = this.sock
    if (!this.connected || sock === undefined) throw new OutpostError('not_connected', 'tcp: not connected to a hub')
    if (msg.acks !== undefined) return this.publishAcks(sock, msg, msg.acks)
    if (this.batching && this.tickOpen) {
      return new Promise<void>((resolve, reject) => {
        this.queued.push({ id: msg.id, to: msg.to, method: msg.method, bytes: msg.bytes, written: msg.written, done: (err) => (err === undefined ? resolve() : reject(err)) })
      })
    }
    if (this.batching) {
      // The first message of a tick is written at once; what follows in the tick is batched.
      this.tickOpen = true
      process.nextTick(() => { this.tickOpen = false; this.flush() })
    }
    const frames = splitEnvelope(msg.id, msg.to, msg.bytes)
    this.corkTick(sock)
    const wire = writeFrames(sock, frames, this.deflate, this.opts.debug, msg.written)
    this.opts.onWire?.([msg], wire)
    if (sock.writableLength > HIGH_WATER) await drained(sock)
  }

  /**
   * Many messages at once (delivery's pump): written now, per receiver in as few frames as fit
   * (batch frames for a hub of apiVersion 2 or later, else a msg or parts each), after what
   * publish queued earlier in this tick (order per receiver is kept).
   */
  publishAll(msgs: readonly Outbound[], written?: () => void): Promise<readonly (Error | undefined)[] | undefined> {
    const sock = this.sock
    if (!this.connected || sock === undefined) {
      const err = new OutpostError('not_connected', 'tcp: not connected to a hub')
      return Promise.resolve(msgs.map(() => err))
    }
    if (this.queued.length > 0) this.flush()
    const frames = this.batching ? framesOf(msgs) : msgs.flatMap((m) => splitEnvelope(m.id, m.to, m.bytes))
    const done = (): void => { for (const m of msgs) m.written?.(); written?.() }
    this.corkTick(sock)
    let wire = 0
    try {
      wire = writeFrames(sock, frames, this.deflate, this.opts.debug, done)
    } catch (err) {
      // As in flush: the messages stay in the outbox; the connection starts again rather than leave a gap.
      this.opts.log('error', `tcp: cannot send: ${(err as Error).message}`)
      sock.destroy()
      return Promise.resolve(msgs.map(() => err as Error))
    }
    this.opts.onWire?.(msgs, wire)
    return sock.writableLength <= HIGH_WATER ? Promise.resolve(undefined) : drained(sock).then(() => undefined)
  }

  /** Writes in one tick go out together. */
  private corkTick(sock: net.Socket): void {
    if (this.corked) return
    this.corked = true
    sock.cork()
    process.nextTick(() => { this.corked = false; sock.uncork() })
  }

  /** An ACK of many ids: one `acks` frame, written at once (ACKs keep no order with messages). */
  private async publishAcks(sock: net.Socket, msg: Outbound, ids: string[]): Promise<void> {
    if (!this.acking) throw new OutpostError('not_connected', 'tcp: this hub does not take ACKs of many ids (apiVersion < 3)')
    const f: Frame = { t: 'acks', id: msg.id, to: msg.to, ids, b: msg.bytes }
    const bytes = encodeFrame(f)
    this.corkTick(sock)
    this.opts.debug?.(`tcp → ${describe(f)}`)
    sock.write(bytes)
    this.opts.onWire?.([msg], bytes.length)
  }

  /**
   * What was published in the last tick, per receiver in as few frames as fit (in order per
   * receiver); each publish resolves once its frames are written (or the socket has drained).
   */
  private flush(): void {
    const queued = this.queued
    if (queued.length === 0) return
    this.queued = []
    const sock = this.sock
    if (!this.connected || sock === undefined) {
      const err = new OutpostError('not_connected', 'tcp: not connected to a hub')
      for (const q of queued) q.done(err)
      return
    }
    // The tick's messages are written together: the last frame's write callback says they all left.
    const written = (): void => { for (const q of queued) q.written?.() }
    sock.cork()
    try {
      const wire = writeFrames(sock, framesOf(queued), this.deflate, this.opts.debug, written)
      this.opts.onWire?.(queued, wire)
    } catch (err) {
      // Not expected (packFrames sizes every frame): the messages stay in the outbox, and the
      // connection starts again rather than carrying on with a gap in the order.
      this.opts.log('error', `tcp: cannot send: ${(err as Error).message}`)
      for (const q of queued) q.done(err as Error)
      sock.destroy()
      return
    } finally {
      sock.uncork()
    }
    const settle = (): void => { for (const q of queued) q.done() }
    if (sock.writableLength <= HIGH_WATER) return settle()
    void drained(sock).then(settle)
  }

  /** The connect / reconnect loop, for as long as the transport is open. */
  private async run(): Promise<void> {
    let attempt = 0
    let warned = false
    let redirects = 0
    while (!this.closed) {
      let outcome: 'connected' | 'redirect' | 'failed' = 'failed'
      outer: for (const url of this.servers) {
        const target = parseServer(url)
        let addresses: string[]
        try {
          addresses = net.isIP(target.host) ? [target.host] : (await dns.lookup(target.host, { all: true })).map((a) => a.address)
        } catch (err) {
          this.report(warned, `cannot resolve ${target.host}: ${(err as Error).message}`)
          continue
        }
        for (const address of addresses) {
          if (this.closed) return
          outcome = await this.session(target, address, warned)
          if (outcome === 'connected') { attempt = 0; warned = false }
          if (outcome !== 'failed') break outer
        }
      }
      if (this.closed) return
      // A redirect is followed at once, but hubs redirecting in a circle get the usual backoff.
      redirects = outcome === 'redirect' ? redirects + 1 : 0
      if (outcome === 'redirect' && redirects <= MAX_REDIRECTS) continue
      if (outcome === 'failed') warned = true
      // None of the hubs a redirect named answers: back to transport.servers (a hub that redirects still sends it there again).
      if (outcome === 'failed' && this.servers !== this.configured) { this.opts.log('warn', `cannot reach ${this.servers.join(', ')}, where a hub redirected it; back to ${this.configured.join(', ')}`); this.servers = this.configured }
      let delayMs = fullJitter(attempt, BACKOFF_MIN_MS, BACKOFF_MAX_MS)
      if (this.refused) delayMs = Math.max(delayMs, AUTH_BACKOFF_MS)
      this.refused = false
      attempt = Math.min(attempt + 1, 20)
      this.evq.push({ type: 'reconnecting', attempt, delayMs, server: this.servers[0] ?? '' })
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delayMs)
        this.wake = () => { clearTimeout(t); resolve() }
      })
      this.wake = undefined
    }
  }

  private report(quiet: boolean, message: string): void {
    this.opts.log(quiet ? 'debug' : 'warn', message)
  }

  /** One connection: resolves when it ends, saying how. */
  private session(target: Target, address: string, quiet: boolean): Promise<'connected' | 'redirect' | 'failed'> {
    return new Promise((resolve) => {
      let outcome: 'connected' | 'redirect' | 'failed' = 'failed'
      const where = `${target.url} (${address})`
      let sock: net.Socket
      try {
        sock = target.secure ? tls.connect(this.tlsOptions(target, address)) : net.connect({ host: address, port: target.port })
      } catch (err) {
        // An unreadable CA/cert/key file or a bad PEM: report and retry with the backoff.
        this.opts.log('error', `${where}: cannot set up TLS: ${(err as Error).message}`)
        resolve('failed')
        return
      }
      this.pending = sock
      const decoder = new FrameDecoder()
      let lastRx = Date.now()
      const timer = setTimeout(() => { this.report(quiet, `${where}: no welcome within ${CONNECT_TIMEOUT_MS / 1000} s`); sock.destroy() }, CONNECT_TIMEOUT_MS)
      timer.unref()
      let pinger: NodeJS.Timeout | undefined
      sock.setNoDelay(true)
      sock.once(target.secure ? 'secureConnect' : 'connect', () => {
        sock.write(encodeFrame({ t: 'hello', node: this.opts.node, token: this.opts.token ?? '', version: this.opts.version, apiVersion: API_VERSION, ...(this.opts.compress === 'auto' ? { features: ['deflate'] } : {}) }))
      })
      sock.on('data', (chunk: Buffer) => {
        lastRx = Date.now()
        let frames: Frame[]
        try {
          frames = decoder.push(chunk)
        } catch (err) {
          this.opts.log('warn', `bad frame from ${where}: ${(err as Error).message}`)
          try { sock.write(encodeFrame({ t: 'error', code: isOutpostError(err) ? err.code : 'frame_invalid', message: (err as Error).message })) } catch { /* closing anyway */ }
          sock.destroy()
          return
        }
        for (const f of frames) {
          this.opts.debug?.(`tcp ← ${describe(f)}`)
          if (!this.welcomed || this.sock !== sock) {
            if (f.t === 'welcome') {
              clearTimeout(timer)
              if (this.closed) { sock.destroy(); return }
              outcome = 'connected'
              this.sock = sock
              this.welcomed = true
              this.batching = f.apiVersion >= BATCH_API
              this.acking = f.apiVersion >= ACKS_API
              this.deflate = this.opts.compress === 'auto' && f.features?.includes('deflate') === true
              this.opts.log('info', `connected to ${where} as ${this.opts.node}`)
              this.evq.push({ type: 'connected', server: target.url })
              // Older hubs close the connection on a frame they do not know: ask only those that offer it.
              if (this.opts.presence === true && f.features?.includes('presence') === true) sock.write(encodeFrame({ t: 'watch' }))
              pinger = setInterval(() => {
                if (Date.now() - lastRx > DEAD_AFTER_MS) {
                  this.opts.log('warn', `${where} silent for ${DEAD_AFTER_MS / 1000} s; reconnecting`)
                  sock.destroy()
                } else {
                  sock.write(encodeFrame({ t: 'ping' }))
                }
              }, PING_EVERY_MS)
              pinger.unref()
            } else if (f.t === 'redirect') {
              if (this.redirect(f.servers, where, target.secure)) outcome = 'redirect'
              sock.destroy()
            } else if (f.t === 'error') {
              // The hub's code when it is one of ours (hub_busy, hello_timeout, …), so the log names the right one.
              const error = new OutpostError(Object.hasOwn(ERROR_CODES, f.code) ? f.code as ErrorCode : 'frame_invalid', `${where} refused this node: ${f.message}`)
              if (f.code === 'auth_failed') {
                // Wrong credentials do not fix themselves: say so once (the node logs it) and retry slowly.
                this.refused = true
                this.evq.push({ type: 'fatal', error })
              } else {
                this.opts.log('error', `${error.code}: ${error.message}`)
              }
              sock.destroy()
            }
            continue
          }
          if (f.t === 'redirect') {
            // A hub may move a node it has welcomed (to rebalance, say): the node reconnects there at once.
            if (this.redirect(f.servers, where, target.secure)) { outcome = 'redirect'; sock.destroy() }
            continue
          }
          this.frame(f, sock)
        }
        this.throttle(sock)
      })
      sock.on('error', (err) => { if (outcome !== 'connected') this.report(quiet, `${where}: ${err.message}`) })
      sock.on('close', () => {
        clearTimeout(timer)
        if (pinger) clearInterval(pinger)
        if (this.sock === sock) {
          this.sock = undefined
          this.welcomed = false
          this.opts.log('warn', `disconnected from ${where}`)
          this.evq.push({ type: 'disconnected' })
        }
        resolve(outcome)
      })
    })
  }

  /** Take a hub's redirect: true when its servers are usable (they replace the list), else logged and ignored. From a hub reached over TLS only tls:// ones are: the hello's token never goes out in clear. */
  private redirect(servers: string[], where: string, secure: boolean): boolean {
    const bad = servers.filter((u) => { try { return secure && !parseServer(u).secure } catch { return true } })
    if (servers.length === 0 || bad.length > 0) {
      this.opts.log('warn', `${where} sent an unusable redirect (${servers.length === 0 ? 'no servers' : bad.join(', ')}${secure ? '; a hub reached over TLS may redirect only to tls://' : ''}); ignored`)
      return false
    }
    this.opts.log('info', `${where} redirects to ${servers.join(', ')}`)
    this.servers = servers
    return true
  }

  private frame(f: Frame, sock: net.Socket): void {
    onHubFrame(f, { inbound: this.inbound, events: this.evq, reassembler: this.reassembler, log: this.opts.log, send: (r) => { sock.write(encodeFrame(r)) }, copy: false })
  }

  private tlsOptions(target: Target, address: string): tls.ConnectionOptions {
    const t = this.opts.tls
    return {
      host: address,
      port: target.port,
      servername: net.isIP(target.host) ? '' : target.host,
      ...(t.ca ? { ca: readConfigFile('transport.tls.ca', t.ca) } : {}),
      ...(t.cert ? { cert: readConfigFile('transport.tls.cert', t.cert) } : {}),
      ...(t.key ? { key: readConfigFile('transport.tls.key', t.key) } : {}),
    }
  }

  protected async shutdown(): Promise<void> {
    this.wake?.()
    if (this.pending && this.pending !== this.sock) this.pending.destroy()
    const sock = this.sock
    this.sock = undefined
    this.welcomed = false
    if (sock) await new Promise<void>((resolve) => { sock.once('close', () => resolve()); sock.end(); setTimeout(() => sock.destroy(), 500).unref() })
  }
}

export default {
  kind: 'tcp',
  summary: 'the built-in hub (outpost hub): framed MessagePack over TCP or TLS',
  schemes: ['tcp', 'tls'],
  parseServer,
  create: (options) => new TcpTransport(options),
} as const satisfies TransportPlugin<Record<never, never>>
