/**
 * How the hub (src/hub.ts) routes msg/part/batch/zbatch/acks frames by `to`, envelopes unread:
 * to the connected receiver, adapted to what it takes (src/hub-deliver.ts), or back to the
 * sender as `nack offline` when the receiver is away. It remembers who was told so, to send
 * them `online` when the receiver comes back, and keeps FIFO per sender→receiver pair.
 *
 *   msg ─▶ receiver connected, pair not blocked ─▶ forward (from = sender)
 *     └▶ receiver away (or pair blocked) ─▶ nack offline ─▶ waiting ─▶ receiver back ─▶ online
 *   receiver (or sender) past its high-water mark ─▶ the sender is not read until it has room (src/hub-flow.ts)
 *     └▶ receiver stuck (no room for HOLD_MAX_MS) ─▶ nack busy ─▶ waiting ─▶ receiver has room ─▶ online
 */
import { isOutpostError, type ErrorCode } from './errors'
import { framesFor, type Routed } from './hub-deliver'
import { pace, wake, type FlowHooks } from './hub-flow'
import type { Conn } from './hub-peer'
import type { Frame } from './wire/framing'
import { ulid } from './wire/ulid'

/** A pair stays blocked at most this long after its receiver is back (the first message may have expired). */
const BLOCK_MAX_MS = 30_000

/** What the router uses of the hub. */
export interface RouterHost {
  /** The connection of each node connected now. */
  readonly nodes: ReadonlyMap<string, Conn>
  /** Only nodes this hub knows (a token, or attached in-process) can come back. */
  knows(node: string): boolean
  send(conn: Conn, f: Frame): void
  fail(conn: Conn, code: ErrorCode | string, message: string): void
  log?(level: 'warn' | 'info', message: string): void
}

export class Router {
  private readonly host: RouterHost
  /** Receiver → senders told it was offline, to wake when it comes back. */
  private readonly waiting = new Map<string, Set<string>>()
  /**
   * sender→receiver pairs the hub refused a message for. Until the sender says it heard the
   * receiver is back (it echoes the `online` frame, then resends from its oldest message),
   * newer messages on the pair are refused too: they left the sender before it knew, and
   * letting them through would overtake the refused ones (FIFO per pair). `since` is when the
   * receiver came back; a sender that never echoes is let through after BLOCK_MAX_MS.
   */
  private readonly blocked = new Map<string, { since: number | undefined }>()

  /** A receiver stuck (src/hub-flow.ts) is said so in the log; once it has room its refused senders hear `online`. */
  private readonly flow: FlowHooks = {
    stuck: (c) => this.host.log?.('warn', `${c.node ?? c.peer} has taken nothing of what waits for it for a while: its senders are read again, and what they send it is refused (busy) until it has room`),
    roomAgain: (c) => {
      if (c.node === undefined || this.host.nodes.get(c.node) !== c) return
      this.host.log?.('info', `${c.node} has room again: its senders are told it is back`)
      this.back(c.node)
    },
  }

  constructor(host: RouterHost) {
    this.host = host
  }

  /** The sender heard (an `online` frame) that `receiver` is back and resends from its oldest message now. */
  heard(sender: string, receiver: string): void {
    this.blocked.delete(`${sender}\u0000${receiver}`)
  }

  /** `node` went offline. */
  gone(node: string): void {
    // It learns about receivers afresh when it reconnects (its sends get nacked again).
    for (const [to, set] of this.waiting) if (set.delete(node) && set.size === 0) this.waiting.delete(to)
    // A reconnecting sender resends from its oldest message anyway.
    for (const key of this.blocked.keys()) if (key.startsWith(`${node}\u0000`)) this.blocked.delete(key)
  }

  /**
   * `node`'s connection `conn` is gone (closed, or replaced by a newer one): what was forwarded on
   * it and not yet taken is lost with it, and no refusal tells its senders. They are woken
   * (`online`) when `node` is back, and send what is still in flight again at once instead of
   * waiting out its ACK timer (a file chunk's waits minutes for a slow link).
   */
  lost(node: string, conn: Conn): void {
    // Senders held for it are read again: what they send now is refused as offline.
    wake(conn)
    if (conn.senders === undefined) return
    let set = this.waiting.get(node)
    for (const s of conn.senders) if (s !== node && this.host.nodes.has(s)) (set ??= new Set()).add(s)
    if (set !== undefined) this.waiting.set(node, set)
    conn.senders = undefined
  }

  /** `node` is back: wake whoever waited for it. */
  back(node: string): void {
    for (const [key, b] of this.blocked) if (key.endsWith(`\u0000${node}`)) b.since = Date.now()
    const waiters = this.waiting.get(node)
    if (waiters) {
      this.waiting.delete(node)
      for (const w of waiters) {
        const c = this.host.nodes.get(w)
        if (c) this.host.send(c, { t: 'online', node })
      }
    }
  }

  /** Routed by `to`, envelopes unread; adapted to what an older receiver takes (src/hub-deliver.ts). */
  route(conn: Conn, f: Routed): void {
    const target = this.host.nodes.get(f.to)
    // An ACK for a node that is away is dropped, not refused: nothing waits on it (its messages
    // come again and are ACKed again), and a refusal would tell the sender the node is away
    // after the `online` that said it is back. ACKs keep no order, so a blocked pair does not hold them.
    // A stuck receiver (src/hub-flow.ts) is dropped ACKs too: its messages come again once it reads.
    const stuck = target?.stuck === true && target !== conn
    if (f.t === 'acks') return target === undefined || stuck ? undefined : this.forward(conn, target, f)
    const pair = this.blocked.size === 0 && target !== undefined && !stuck ? '' : `${conn.node}\u0000${f.to}`
    const block = pair === '' ? undefined : this.blocked.get(pair)
    if (block && target !== undefined && !stuck && block.since !== undefined && Date.now() - block.since > BLOCK_MAX_MS) this.blocked.delete(pair)
    else if (block || target === undefined || stuck) {
      const reason = stuck ? 'busy' : 'offline'
      if (f.t === 'batch' || f.t === 'zbatch') for (const id of f.ids) this.host.send(conn, { t: 'nack', id, to: f.to, reason })
      else if (f.t === 'msg' || f.i === 0) this.host.send(conn, { t: 'nack', id: f.id, to: f.to, reason })
      // Only nodes this hub knows can come back: no memory is kept for made-up names.
      if ((target === undefined && this.host.knows(f.to)) || stuck) {
        let set = this.waiting.get(f.to)
        if (set === undefined) this.waiting.set(f.to, (set = new Set()))
        set.add(conn.node!)
        if (!block) this.blocked.set(pair, { since: undefined })
      }
      // A sender that does not read its nacks is not read either (src/hub-flow.ts).
      return pace(conn, conn, this.flow)
    }
    this.forward(conn, target, f)
  }

  private forward(conn: Conn, target: Conn, f: Routed): void {
    let frames: Frame[]
    try {
      frames = framesFor(target, f, conn.node!, ulid)
    } catch (err) {
      // A zbatch that does not inflate (or would past the frame limit): its sender's connection only.
      return this.host.fail(conn, isOutpostError(err) ? err.code : 'frame_invalid', (err as Error).message)
    }
    try {
      for (const out of frames) this.host.send(target, out)
      if (f.t !== 'acks') (target.senders ??= new Set()).add(conn.node!)
      // Backpressure: the sender waits while the receiver (or the sender itself) is not keeping up (src/hub-flow.ts).
      pace(conn, target, this.flow)
    } catch (err) {
      // A frame that leaves no room for the `from` the hub stamps (every outpost node leaves it):
      // it cannot be forwarded; its sender's connection closes, not the hub.
      return this.host.fail(conn, isOutpostError(err) ? err.code : 'frame_invalid', `${(err as Error).message}; a frame must leave room for the sender's name (the hub adds it)`)
    }
  }
}
