/**
 * One end of a live channel: an ordered, reliable, flow-controlled stream of frames between two
 * nodes, carried by publishes that may be lost while a link is down.
 *
 *   write ─▶ seq n ─▶ kept until acked (at most `window` bytes beyond what the peer consumed:
 *            write() says false past it, and the source pauses until drain)
 *   receive seq == next ─▶ handler.frame, in order; seq < next: a resend, dropped; seq > next: a
 *            gap (the missing frame comes again), dropped; either way an ack follows
 *   ack NEXT CONSUMED ─▶ kept frames below NEXT dropped; credit up to CONSUMED + window
 *   tick (Live's timer) ─▶ no ack progress for rto: everything kept is sent again (rto doubles up
 *            to RTO_MAX_MS); nothing heard from the peer for graceMs: the channel ends
 *            (session_lost); nothing sent for KEEPALIVE: an ack goes as a keepalive
 *
 * Both ends hold at most `window` bytes in flight each way, so neither grows without bound,
 * and a link back within graceMs loses nothing: what was not acked is sent again.
 */
import { OutpostError, type ErrorCode } from '../errors'
import { counterpart, type Frame, type SeqType } from './frames'

/** Bytes a sender may have sent beyond what the receiver's consumer has taken. */
export const WINDOW = 1024 * 1024
/**
 * Bytes a socket on a session's path may hold unwritten before its writer waits for it to drain
 * (Node's own mark, 16 KiB, would stop the flow at every frame).
 */
export const SOCKET_BUFFER = 256 * 1024
/** Largest data frame: bigger writes are cut. */
export const MAX_FRAME_DATA = 64 * 1024
const RTO_MS = 400
const RTO_MAX_MS = 3000
/** An ack is held this long to cover a burst of frames. */
const ACK_DELAY_MS = 5

/** Codes a peer's close may carry as they are; any other is session_closed. */
const PEER_CODES = new Set<string>(['session_lost', 'session_timeout', 'session_closed', 'cancelled', 'method_timeout', 'interrupted'])

export type SeqFrame = Extract<Frame, { seq: number }>

export interface ChannelHandler {
  /** A sequenced frame from the peer, in order. Call consumed() once its data is written on. */
  frame(f: SeqFrame): void
  /** Room to write again, after write() said false. */
  drain(): void
  /** The channel ended: no error when either side closed it normally. */
  end(error?: OutpostError): void
}

export interface ChannelOptions {
  /** This end's key (frames for it carry it); the peer's is counterpart(sid). */
  sid: string
  peer: string
  /** Hand one frame to the wire (fire and forget: a loss is repaired by resending). */
  send: (f: Frame) => void
  now: () => number
  graceMs: number
  /** No data either way for this long ends the channel (0: never). */
  idleMs: number
  /** Send nothing until the peer's first frame (the side that asked for the session). */
  waitPeer: boolean
  window?: number
  /** Called once when the channel ends (Live forgets it). */
  forget: () => void
}

const NOOP: ChannelHandler = { frame: () => {}, drain: () => {}, end: () => {} }

export class Channel {
  readonly sid: string
  readonly peer: string
  /** The key of the peer's end: frames sent carry it. */
  private readonly to: string
  handler: ChannelHandler = NOOP
  /** Data bytes received from / sent to the peer. */
  bytesIn = 0
  bytesOut = 0
  readonly openedAt: number
  private readonly o: ChannelOptions
  private readonly window: number
  private nextSeq = 0
  private kept: SeqFrame[] = []
  private keptBytes: number[] = []
  private sentBytes = 0
  private peerConsumed = 0
  private recvNext = 0
  private consumedBytes = 0
  private ackedConsumed = 0
  private ackTimer: NodeJS.Timeout | undefined
  private peerReady: boolean
  private blocked = false
  private lastHeard: number
  private lastSent: number
  private lastProgress: number
  private lastActivity: number
  private rto = RTO_MS
  private ended = false
  private flushWaiters: (() => void)[] = []

  constructor(o: ChannelOptions) {
    this.o = o
    this.sid = o.sid
    this.to = counterpart(o.sid)
    this.peer = o.peer
    this.window = o.window ?? WINDOW
    this.peerReady = !o.waitPeer
    const now = o.now()
    this.openedAt = this.lastHeard = this.lastSent = this.lastProgress = this.lastActivity = now
  }

  get isEnded(): boolean {
    return this.ended
  }

  /** Data bytes sent that the peer's consumer has not taken yet. */
  get unconsumed(): number {
    return this.sentBytes - this.peerConsumed
  }

  /** Whether the peer has credit left for more data. */
  get room(): boolean {
    return this.sentBytes - this.peerConsumed < this.window
  }

  /** Send a sequenced frame; false when the window is full (pause the source until drain). */
  write(type: SeqType, data?: Uint8Array, args: string[] = [], exitCode?: number): boolean {
    if (this.ended) return false
    if (data !== undefined && data.length > MAX_FRAME_DATA) {
      for (let at = 0; at < data.length; at += MAX_FRAME_DATA) this.write(type, data.subarray(at, at + MAX_FRAME_DATA), args)
      return this.checkRoom()
    }
    const f: SeqFrame = { type, sid: this.to, seq: this.nextSeq++, args, ...(data !== undefined ? { data } : {}), ...(exitCode !== undefined ? { exitCode } : {}) }
    const size = data?.length ?? 0
    if (this.kept.length === 0) this.lastProgress = this.o.now()
    this.kept.push(f)
    this.keptBytes.push(this.sentBytes + size)
    this.sentBytes += size
    if (type === 'data') { this.bytesOut += size; this.lastActivity = this.o.now() }
    if (this.peerReady) this.transmit(f)
    return this.checkRoom()
  }

  private checkRoom(): boolean {
    if (this.room) return true
    this.blocked = true
    return false
  }

  /** The consumer wrote `n` bytes of received data on: the peer may send that much more. */
  consumed(n: number): void {
    if (this.ended || n === 0) return
    this.consumedBytes += n
    if (this.consumedBytes - this.ackedConsumed >= this.window / 4) this.sendAck()
    else this.scheduleAck()
  }

  /** Resolves once every frame sent was acked, the channel ended, or after `ms`. */
  flushed(ms: number): Promise<void> {
    if (this.kept.length === 0 || this.ended) return Promise.resolve()
    return new Promise((resolve) => {
      const t = setTimeout(done, ms)
      function done(): void { clearTimeout(t); resolve() }
      this.flushWaiters.push(done)
    })
  }

  /** A frame from the peer (Live checked it comes from this channel's peer). */
  receive(f: Frame): void {
    if (this.ended) return
    this.lastHeard = this.o.now()
    if (!this.peerReady) {
      this.peerReady = true
      for (const k of this.kept) this.transmit(k)
    }
    switch (f.type) {
      case 'ack': return this.onAck(f.next, f.consumed)
      case 'close': return this.finish(f.error === undefined ? undefined : new OutpostError(PEER_CODES.has(f.error.code) ? (f.error.code as ErrorCode) : 'session_closed', f.error.message), false)
      default: break
    }
    if (f.seq !== this.recvNext) { this.scheduleAck(); return }
    this.recvNext++
    if (f.type === 'data') {
      this.bytesIn += f.data?.length ?? 0
      this.lastActivity = this.lastHeard
    }
    this.scheduleAck()
    this.handler.frame(f)
  }

  private onAck(next: number, consumed: number): void {
    let progress = false
    while (this.kept.length > 0 && this.kept[0]!.seq < next) {
      this.kept.shift()
      this.keptBytes.shift()
      progress = true
    }
    if (consumed > this.peerConsumed) { this.peerConsumed = Math.min(consumed, this.sentBytes); progress = true }
    if (progress) { this.rto = RTO_MS; this.lastProgress = this.o.now() }
    if (this.kept.length === 0) for (const w of this.flushWaiters.splice(0)) w()
    if (this.blocked && this.room) {
      this.blocked = false
      this.handler.drain()
    }
  }

  /** Timers: resend, keepalive, grace, idle. Called by Live every TICK_MS. */
  tick(now: number): void {
    if (this.ended) return
    if (now - this.lastHeard > this.o.graceMs) {
      const why = this.peerReady ? `nothing heard from ${this.peer} for ${Math.round(this.o.graceMs / 1000)} s (sessions.grace)` : `${this.peer} did not answer within ${Math.round(this.o.graceMs / 1000)} s (sessions.grace)`
      this.finish(new OutpostError('session_lost', `session ${this.sid}: ${why}; it ended`), true)
      return
    }
    if (this.o.idleMs > 0 && now - this.lastActivity > this.o.idleMs) {
      this.finish(new OutpostError('session_timeout', `session ${this.sid}: no bytes either way for ${Math.round(this.o.idleMs / 1000)} s (sessions.idleTimeout); it ended`), true)
      return
    }
    if (!this.peerReady) return
    if (this.kept.length > 0 && now - this.lastProgress >= this.rto) {
      for (const k of this.kept) this.transmit(k)
      this.lastProgress = now
      this.rto = Math.min(this.rto * 2, RTO_MAX_MS)
    }
    if (now - this.lastSent >= Math.min(5000, this.o.graceMs / 3)) this.sendAck()
  }

  /** Send again what was not acknowledged, at once (the link came back); an ack tells the peer where this end is. */
  resend(): void {
    if (this.ended || !this.peerReady) return
    for (const k of this.kept) this.transmit(k)
    this.rto = RTO_MS
    this.lastProgress = this.o.now()
    this.sendAck()
  }

  /** End the channel; the peer is told (close) unless it told us. Safe to call more than once. */
  end(error?: OutpostError): void {
    this.finish(error, true)
  }

  private finish(error: OutpostError | undefined, tellPeer: boolean): void {
    if (this.ended) return
    this.ended = true
    if (this.ackTimer !== undefined) clearTimeout(this.ackTimer)
    if (tellPeer && this.peerReady) this.o.send({ type: 'close', sid: this.to, ...(error !== undefined ? { error: error.toJSON() } : {}) })
    this.kept = []
    this.keptBytes = []
    for (const w of this.flushWaiters.splice(0)) w()
    this.o.forget()
    this.handler.end(error)
  }

  private transmit(f: Frame): void {
    this.lastSent = this.o.now()
    this.o.send(f)
  }

  private scheduleAck(): void {
    if (this.ackTimer !== undefined || !this.peerReady) return
    this.ackTimer = setTimeout(() => { this.ackTimer = undefined; this.sendAck() }, ACK_DELAY_MS)
  }

  private sendAck(): void {
    if (this.ended || !this.peerReady) return
    if (this.ackTimer !== undefined) { clearTimeout(this.ackTimer); this.ackTimer = undefined }
    this.ackedConsumed = this.consumedBytes
    this.transmit({ type: 'ack', sid: this.to, next: this.recvNext, consumed: this.consumedBytes })
  }
}
