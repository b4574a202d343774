/**
 * The node's ACK path: ACKs go straight to the transport, never through the outbox. Where the
 * transport can carry an ACK of many ids (`manyIdAcks`: a hub of api version 3; or, on MQTT and
 * NATS, a receiver known to be of api version 2, `peerApi`), the ACKs made in one tick (the
 * receipts of one journal commit) are sent per sender as one ACK envelope listing their ids.
 *
 *   dispatcher ─ ACK (single id) ─▶ send ─┬ no manyIdAcks ─▶ publish at once (as before)
 *                                        └ queued per receiver ─ end of tick ─▶ 1 id: that ACK, publish { acks: [id] }
 *                                                                              n ids: makeAcks ─▶ publish { acks: ids }
 *   Every ACK is marked as one (`acks`): on tcp it goes in an `acks` frame, which the hub drops
 *   rather than refuses when its receiver is away (a refusal would mark the receiver away).
 */
import { ACK_METHOD } from './method-names'
import type { Transport } from './transport'
import { groupAckIds, makeAcks } from './wire/acks'
import { encode, type Envelope } from './wire/envelope'

export interface AckSenderOptions {
  self: string
  transport: Transport
  ulid: () => string
  now: () => number
  /** Counts the bytes against transport.maxBytesPerSecond; returns them. */
  charge: (bytes: Uint8Array) => Uint8Array
}

export class AckSender {
  private readonly o: AckSenderOptions
  /** Receiver → the ACKs made for it in this tick. */
  private pending = new Map<string, Envelope[]>()

  constructor(o: AckSenderOptions) {
    this.o = o
  }

  /**
   * Whether `node` is sent ACKs of many ids: over a hub that carries them (`manyIdAcks`), or to a
   * node a broker transport knows to be of api version 2 or later (`peerApi`).
   */
  private takesMany(node: string): boolean {
    return this.o.transport.manyIdAcks === true || (this.o.transport.peerApi?.(node) ?? 1) >= 2
  }

  /** An ACK (single-id form, to another node). A lost ACK costs a resend, which is ACKed again. */
  send(ack: Envelope): void {
    if (!this.takesMany(ack.toNode)) return this.publish(ack)
    if (this.pending.size === 0) process.nextTick(() => this.flush())
    const list = this.pending.get(ack.toNode)
    if (list === undefined) this.pending.set(ack.toNode, [ack])
    else list.push(ack)
  }

  private flush(): void {
    const pending = this.pending
    this.pending = new Map()
    // Over a hub, every ACK is marked as one (an `acks` frame); a broker carries the envelope as it is.
    const framed = this.o.transport.manyIdAcks === true
    for (const [to, acks] of pending) {
      if (!this.takesMany(to)) {
        for (const a of acks) this.publish(a)
        continue
      }
      if (acks.length === 1) {
        this.publish(acks[0]!, framed ? [acks[0]!.inReplyTo!] : undefined)
        continue
      }
      for (const ids of groupAckIds(acks.map((a) => a.inReplyTo!))) this.publish(makeAcks(this.o.self, to, ids, this.o.ulid(), this.o.now()), framed ? ids : undefined)
    }
  }

  private publish(ack: Envelope, ids?: string[]): void {
    const bytes = this.o.charge(encode(ack))
    this.o.transport.publish({ id: ack.id, to: ack.toNode, method: ACK_METHOD, event: true, bytes, ...(ids !== undefined ? { acks: ids } : {}) })
      .catch(() => { /* resent by its sender, and ACKed again */ })
  }
}
