/**
 * The node's ACK path: ACKs go straight to the transport, never through the outbox. Where the
 * transport can carry an ACK of many ids (`manyIdAcks`: a hub of api version 3; or, on MQTT and
 * NATS, a receiver known to be of api version 2, `peerApi`), the ACKs made in one tick (the
 * receipts of one journal commit) are sent per sender as one ACK envelope listing their ids.
 *
 *   dispatcher ─ (receiver, id) ─▶ send ─┬ no manyIdAcks ─▶ single-id ACK, published at once (as before)
 *                                       └ queued per receiver ─ end of tick ─▶ 1 id: single-id ACK, publish { acks: [id] }
 *                                                                             n ids: makeAcks ─▶ publish { acks: ids }
 *   Every ACK is marked as one (`acks`): on tcp it goes in an `acks` frame, which the hub drops
 *   rather than refuses when its receiver is away (a refusal would mark the receiver away).
 *   The envelope is made only when one is published: ids wait as strings, not as envelopes.
 */
import { ACK_METHOD } from './method-names'
import type { Transport } from './transport'
import { groupAckIds, makeAcks } from './wire/acks'
import { encode, makeAck, type Envelope } from './wire/envelope'

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
  /** Receiver → the ids to ACK to it at the end of this tick. */
  private pending = new Map<string, string[]>()

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

  /** ACK message `id` to node `to`. A lost ACK costs a resend, which is ACKed again. */
  send(to: string, id: string): void {
    if (!this.takesMany(to)) return this.publish(this.single(to, id))
    if (this.pending.size === 0) process.nextTick(() => this.flush())
    const list = this.pending.get(to)
    if (list === undefined) this.pending.set(to, [id])
    else list.push(id)
  }

  /** The single-id ACK envelope every version reads. */
  private single(to: string, id: string): Envelope {
    return makeAck({ id, fromNode: to, toNode: this.o.self }, this.o.ulid(), this.o.now())
  }

  private flush(): void {
    const pending = this.pending
    this.pending = new Map()
    // Over a hub, every ACK is marked as one (an `acks` frame); a broker carries the envelope as it is.
    const framed = this.o.transport.manyIdAcks === true
    for (const [to, ids] of pending) {
      if (!this.takesMany(to)) {
        for (const id of ids) this.publish(this.single(to, id))
        continue
      }
      if (ids.length === 1) {
        this.publish(this.single(to, ids[0]!), framed ? ids : undefined)
        continue
      }
      for (const group of groupAckIds(ids)) this.publish(makeAcks(this.o.self, to, group, this.o.ulid(), this.o.now()), framed ? group : undefined)
    }
  }

  private publish(ack: Envelope, ids?: string[]): void {
    const bytes = this.o.charge(encode(ack))
    this.o.transport.publish({ id: ack.id, to: ack.toNode, method: ACK_METHOD, event: true, bytes, ...(ids !== undefined ? { acks: ids } : {}) })
      .catch(() => { /* resent by its sender, and ACKed again */ })
  }
}
