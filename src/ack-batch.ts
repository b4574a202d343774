/**
 * ACKs of many ids (api version 2): the ACKs a node sends to one receiver in one tick (the
 * receipts of one journal commit, which resolve together) become one ACK envelope naming every
 * id, for a receiver the transport knows to be of version 2 or later. Any other receiver, and a
 * lone ACK, gets one ACK envelope per id as before. Nothing waits on a timer: the ACKs of a
 * tick go at its end.
 *
 *   receipt durable ─▶ makeAck ─▶ add ─┬ receiver of version 1 (or not known) ─▶ send at once
 *                                      └ version 2+ ─▶ end of tick ─▶ manyIdAck(all of them) ─▶ send
 */
import type { Envelope } from './wire/envelope'

/** Several ACKs to one node as one: `inReplyTo` the first id (what a version 1 reader sees), `ids` all of them. */
export function manyIdAck(acks: readonly Envelope[]): Envelope {
  const first = acks[0]!
  if (acks.length === 1) return first
  return { ...first, ids: acks.map((a) => a.inReplyTo!) }
}

export class AckBatcher {
  private pending = new Map<string, Envelope[]>()
  private readonly send: (ack: Envelope) => void
  private readonly takesMany: (node: string) => boolean

  /** `takesMany`: whether `node` reads an ACK naming many ids. */
  constructor(send: (ack: Envelope) => void, takesMany: (node: string) => boolean) {
    this.send = send
    this.takesMany = takesMany
  }

  add(ack: Envelope): void {
    if (!this.takesMany(ack.toNode)) return this.send(ack)
    if (this.pending.size === 0) process.nextTick(() => this.flush())
    const list = this.pending.get(ack.toNode)
    if (list === undefined) this.pending.set(ack.toNode, [ack])
    else list.push(ack)
  }

  private flush(): void {
    const pending = this.pending
    this.pending = new Map()
    for (const acks of pending.values()) this.send(manyIdAck(acks))
  }
}
