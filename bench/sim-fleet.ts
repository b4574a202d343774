/**
 * The load generator of `npm run bench -- fleet-sim`: many simulated nodes in one process,
 * each speaking the real wire protocol, against a real hub (tcp) or a real nats-server.
 *
 *   connect ─▶ hello (its own token) ─▶ welcome ─▶ node.hello event to central (a heartbeat)
 *   msg from central ─▶ ACK envelope back at once ─▶ cli.run: reply envelope with output
 *   reply ─▶ resent until central ACKs it (central ACKs only once the reply is in its journal)
 *   hub ping ─▶ pong; a tcp ping every 15 s, as transports/tcp.ts sends
 *
 * A node refused or closed before its welcome tries again after a full-jitter delay, as the
 * real transports do (transports/base.ts fullJitter); each such try is counted under its reason.
 *
 * It runs no methods and keeps no store: a simulated node costs a socket and a few objects,
 * so one process can stand in for thousands and the hub and central carry the real work.
 */
import net from 'node:net'
import type { NatsConnection } from 'nats'
import { replyTo } from '../src/reply'
import { fullJitter } from '../transports/base'
import { Subjects } from '../transports/subjects'
import { ackedIds } from '../src/wire/acks'
import { decode, encode, makeAck, type Envelope } from '../src/wire/envelope'
import { encodeFrame, FrameDecoder, type Frame } from '../src/wire/framing'
import { ulid } from '../src/wire/ulid'
import { API_VERSION, VERSION } from '../src/version'

const PING_EVERY_MS = 15_000
/** A reply central has not ACKed in this long goes again (as delivery would after ackTimeout). */
const RESEND_MS = 30_000
const OUTPUT = 'ok from a simulated node\n'

export interface SimCounts {
  welcomed: number
  /** Tries the hub (or server) closed or refused before a welcome, by reason; each is tried again. */
  failed: Map<string, number>
  requests: number
  /** Replies sent and not ACKed by central yet. */
  unacked: number
  repliesAcked: number
  resent: number
}

/** What one simulated node does with an envelope, whatever carries it. */
interface Link {
  send(env: Envelope): void
}

export abstract class SimFleet {
  readonly counts: SimCounts = { welcomed: 0, failed: new Map(), requests: 0, unacked: 0, repliesAcked: 0, resent: 0 }
  /** Reply id → its resend timer. */
  private readonly pending = new Map<string, NodeJS.Timeout>()
  private waiters: { test: () => boolean; resolve: () => void }[] = []

  constructor(readonly names: string[], readonly central: string) {}

  abstract connectAll(): void
  abstract close(): Promise<void>

  /** Resolves once test() holds (checked after every change), or rejects after ms. */
  until(test: () => boolean, ms: number, what: string): Promise<void> {
    if (test()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.waiters = this.waiters.filter((w) => w.test !== test); reject(new Error(`${what}: not within ${ms / 1000} s`)) }, ms)
      this.waiters.push({ test, resolve: () => { clearTimeout(t); resolve() } })
    })
  }

  protected changed(): void {
    if (this.waiters.length === 0) return
    this.waiters = this.waiters.filter((w) => { if (!w.test()) return true; w.resolve(); return false })
  }

  private readonly attempts = new Map<string, number>()
  private closing = false

  /** `name` did not get in: counted, and tried again after a full-jitter delay (250 ms doubling to 30 s). */
  protected failed(name: string, why: string): void {
    this.counts.failed.set(why, (this.counts.failed.get(why) ?? 0) + 1)
    const attempt = this.attempts.get(name) ?? 0
    this.attempts.set(name, attempt + 1)
    setTimeout(() => { if (!this.closing) this.connect(name) }, fullJitter(attempt, 250, 30_000))
    this.changed()
  }

  protected abstract connect(name: string): void

  protected welcomed(name: string, link: Link): void {
    this.counts.welcomed++
    const data = JSON.stringify({ version: VERSION, apiVersion: API_VERSION, os: 'Linux sim', arch: process.arch, uptime: 1 })
    link.send({ id: ulid(), toNode: this.central, fromNode: name, method: 'node.hello', data, ackTimeout: 0, ttl: 60, createdAt: Date.now() })
    this.changed()
  }

  /** An envelope arrived for `name`. */
  protected receive(name: string, bytes: Uint8Array, link: Link): void {
    const env = decode(bytes)
    if (env.method === 'ack') {
      // One id, or (api version 3 on) many in one ACK envelope.
      for (const id of ackedIds(env)) {
        const t = this.pending.get(id)
        if (t === undefined) continue
        clearTimeout(t)
        this.pending.delete(id)
        this.counts.unacked--
        this.counts.repliesAcked++
      }
      this.changed()
      return
    }
    if (env.ackTimeout !== 0) link.send(makeAck(env, ulid(), Date.now()))
    if (env.inReplyTo !== undefined || env.method !== 'cli.run') return
    this.counts.requests++
    const reply = replyTo(env, { data: OUTPUT, exitCode: 0 }, { self: name, id: ulid(), now: Date.now() })
    const send = (): void => {
      link.send(reply)
      this.pending.set(reply.id, setTimeout(() => { this.counts.resent++; send() }, RESEND_MS))
    }
    this.counts.unacked++
    send()
    this.changed()
  }

  protected stopResending(): void {
    this.closing = true
    for (const t of this.pending.values()) clearTimeout(t)
    this.pending.clear()
  }
}

/** Every simulated node on its own TCP connection to the hub. */
export class TcpSimFleet extends SimFleet {
  private readonly socks: net.Socket[] = []
  private pinger: NodeJS.Timeout | undefined

  constructor(names: string[], central: string, private readonly port: number, private readonly tokens: Map<string, string>) {
    super(names, central)
  }

  connectAll(): void {
    for (const name of this.names) this.connect(name)
    // One timer for all: each welcomed connection pings every 15 s, as a real node does.
    this.pinger = setInterval(() => { for (const s of this.socks) if (!s.destroyed) s.write(encodeFrame({ t: 'ping' })) }, PING_EVERY_MS)
  }

  protected connect(name: string): void {
    const sock = net.connect({ host: '127.0.0.1', port: this.port })
    this.socks.push(sock)
    sock.setNoDelay(true)
    const dec = new FrameDecoder()
    let welcomed = false
    let corked = false
    const write = (f: Frame): void => {
      if (!corked) { corked = true; sock.cork(); process.nextTick(() => { corked = false; sock.uncork() }) }
      sock.write(encodeFrame(f))
    }
    const link: Link = { send: (env) => write({ t: 'msg', id: env.id, to: env.toNode, b: encode(env) }) }
    sock.on('connect', () => write({ t: 'hello', node: name, token: this.tokens.get(name)!, version: VERSION, apiVersion: API_VERSION }))
    let reason = 'closed before its welcome'
    sock.on('data', (chunk: Buffer) => {
      for (const f of dec.push(chunk)) {
        if (f.t === 'welcome') { welcomed = true; this.welcomed(name, link) }
        else if (f.t === 'msg' || f.t === 'acks') this.receive(name, f.b, link)
        else if (f.t === 'batch') for (const b of f.bs) this.receive(name, b, link)
        else if (f.t === 'ping') write({ t: 'pong' })
        else if (f.t === 'error') reason = f.code
      }
    })
    sock.on('error', (err) => { reason = (err as NodeJS.ErrnoException).code ?? err.message })
    sock.on('close', () => { if (!welcomed) this.failed(name, reason) })
  }

  async close(): Promise<void> {
    this.stopResending()
    if (this.pinger) clearInterval(this.pinger)
    for (const s of this.socks) s.destroy()
  }
}

/** Every simulated node on its own NATS connection (the official client), as outpost's nats transport. */
export class NatsSimFleet extends SimFleet {
  private readonly conns: NatsConnection[] = []
  private readonly subjects = new Subjects('nats', 'outpost')

  constructor(names: string[], central: string, private readonly url: string, private readonly user: { user: string; pass: string }) {
    super(names, central)
  }

  connectAll(): void {
    for (const name of this.names) this.connect(name)
  }

  protected connect(name: string): void {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when this fleet runs
    const { connect } = require('nats') as typeof import('nats')
    connect({ servers: this.url, ...this.user, name: `sim ${name}`, maxReconnectAttempts: 0, pingInterval: PING_EVERY_MS }).then((nc) => {
      this.conns.push(nc)
      const link: Link = {
        send: (env) => nc.publish(this.subjects.message(env.toNode, env.method, env.ackTimeout === 0), encode(env)),
      }
      nc.subscribe(this.subjects.inbox(name), { callback: (err, m) => { if (!err) this.receive(name, m.data, link) } })
      // Heard by central as this node coming online, as the transport does after its flush.
      nc.flush().then(() => {
        nc.publish(this.subjects.presence(name), new Uint8Array(0))
        this.welcomed(name, link)
      }, (err: Error) => this.failed(name, err.message))
    }, (err: Error) => this.failed(name, (err as { code?: string }).code ?? err.message))
  }

  async close(): Promise<void> {
    this.stopResending()
    await Promise.all(this.conns.map((nc) => nc.close().catch(() => {})))
  }
}
