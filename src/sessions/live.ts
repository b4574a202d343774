/**
 * A node's live channels (shells and tunnels): frames published straight on the transport as
 * events, never stored. The dispatcher hands every `session.frame` envelope here; a frame is
 * taken only by the channel of its session id whose peer is the frame's sender.
 *
 *   channel.write ─▶ frame ─▶ envelope (ackTimeout 0) ─▶ transport.publish   (or, to itself, receive)
 *   dispatcher ─▶ receive(env) ─▶ channels[sid], peer checked ─▶ channel.receive
 *   a frame for a session this node does not have ─▶ `close` back (the peer's channel ends)
 */
import { randomBytes } from 'node:crypto'
import type { LogFn } from '../log'
import { OutpostError } from '../errors'
import { encode, type Envelope } from '../wire/envelope'
import { ulid } from '../wire/ulid'
import type { Transport } from '../transport'
import { Channel } from './channel'
import { counterpart, FRAME_METHOD, frameFields, parseFrame, type Frame } from './frames'

/** How often channels look at their timers. */
const TICK_MS = 100

export interface SessionSettings {
  grace: number
  idleTimeout: number
  maxDuration: number
  record: boolean
}

/** One line for the audit log when a session or tunnel ends. */
export interface SessionRecord {
  id: string
  sid: string
  method: string
  /** The node that asked for it, and this node. */
  fromNode: string
  node: string
  what: string
  user?: string
  startedAt: number
  ms: number
  bytesIn: number
  bytesOut: number
  exitCode?: number
  error?: { code: string; message: string }
}

export interface LiveOptions {
  self: string
  /** Publish one encoded event envelope to `to` (rejects when not connected: ignored, resent later). */
  publish: (to: string, id: string, bytes: Uint8Array) => Promise<void>
  settings: () => SessionSettings
  log: LogFn
  now?: () => number
  /** Told when a session ends (the audit log). */
  record?: (r: SessionRecord) => void
}

/** A node's Live, publishing on its transport: frames are events, never acknowledged nor stored. */
export function liveOn(transport: Transport, o: Omit<LiveOptions, 'publish'>): Live {
  return new Live({ ...o, publish: (to, id, bytes) => transport.publish({ id, to, method: FRAME_METHOD, event: true, bytes }) })
}

export class Live {
  private readonly o: LiveOptions
  private readonly now: () => number
  private readonly channels = new Map<string, Channel>()
  private timer: NodeJS.Timeout | undefined
  private closed = false

  constructor(o: LiveOptions) {
    this.o = o
    this.now = o.now ?? Date.now
  }

  get self(): string {
    return this.o.self
  }

  settings(): SessionSettings {
    return this.o.settings()
  }

  /** A new session id: 128 random bits, unguessable. */
  static newId(): string {
    return randomBytes(16).toString('base64url')
  }

  /**
   * A channel for session `sid` with `peer`. `waitPeer`: the side that asked sends nothing until
   * the side that runs the program has spoken. `idle`: whether sessions.idleTimeout applies here.
   */
  open(sid: string, peer: string, o: { waitPeer: boolean; idle: boolean }): Channel {
    if (this.closed) throw new OutpostError('session_closed', `${this.o.self} is stopping; no new session`)
    if (this.channels.has(sid)) throw new OutpostError('method_args', `session ${sid} exists already on ${this.o.self}`)
    const s = this.o.settings()
    const ch = new Channel({
      sid, peer, now: this.now, graceMs: s.grace * 1000, idleMs: o.idle ? s.idleTimeout * 1000 : 0, waitPeer: o.waitPeer,
      send: (f) => this.send(peer, f),
      forget: () => { if (this.channels.get(sid) === ch) this.channels.delete(sid); this.stopTimer() },
    })
    this.channels.set(sid, ch)
    this.timer ??= setInterval(() => { const now = this.now(); for (const c of [...this.channels.values()]) c.tick(now) }, TICK_MS)
    this.timer.unref()
    return ch
  }

  /** Sessions open now. */
  get size(): number {
    return this.channels.size
  }

  record(r: SessionRecord): void {
    this.o.record?.(r)
  }

  /** A session.frame envelope addressed to this node (sender already checked by the dispatcher). */
  receive(env: Envelope): void {
    const f = parseFrame(env)
    if (f === undefined) { this.o.log('debug', `session: dropped a malformed frame ${env.id} from ${env.fromNode}`); return }
    const ch = this.channels.get(f.sid)
    if (ch === undefined || ch.peer !== env.fromNode) {
      // Its peer keeps the session open until told: unless it is itself a close, say it is gone.
      if (f.type !== 'close') this.send(env.fromNode, { type: 'close', sid: counterpart(f.sid), error: { code: 'session_lost', message: `${this.o.self} has no session ${f.sid} (it ended, or this node restarted)` } })
      return
    }
    ch.receive(f)
  }

  private send(to: string, f: Frame): void {
    const env: Envelope = { id: ulid(), toNode: to, fromNode: this.o.self, method: FRAME_METHOD, ackTimeout: 0, createdAt: this.now(), ...frameFields(f) }
    if (to === this.o.self) { queueMicrotask(() => this.receive(env)); return }
    this.o.publish(to, env.id, encode(env)).catch(() => { /* sent again by the channel while the link is down */ })
  }

  private stopTimer(): void {
    if (this.channels.size > 0 || this.timer === undefined) return
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** The link is back: every channel sends what was not acknowledged now, not at its next timer. */
  kick(): void {
    for (const ch of this.channels.values()) ch.resend()
  }

  /** End every channel (the node stops): peers are told. Safe to call more than once. */
  close(): void {
    this.closed = true
    for (const ch of [...this.channels.values()]) ch.end(new OutpostError('session_closed', `${this.o.self} is stopping`))
    this.stopTimer()
  }
}
