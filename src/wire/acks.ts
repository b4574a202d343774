/**
 * One ACK envelope acknowledging many ids: the receipts of one journal commit for one sender
 * are acknowledged together. The envelope shape is the same on every transport; on tcp it
 * travels in an `acks` frame that repeats the ids, so the hub can split it for a receiver of
 * apiVersion < 3 without opening it (docs/transports.md, "Batches").
 *
 *   ids [a b c] ─ makeAcks ─▶ { method: 'ack', inReplyTo: 'a', ids: ['a','b','c'], … }   (one id: the single-id form)
 *   an ACK envelope ─ ackedIds ─▶ [a b c]   (single-id form { inReplyTo: 'a' } ─▶ [a])
 */
import { ACK_METHOD } from '../method-names'
import type { Outgoing } from './batch'
import { encode, makeAck, type Envelope } from './envelope'

/** The apiVersion from which a peer (node or hub) takes ACK envelopes with many ids (`acks` frames on tcp). */
export const ACKS_API = 3

/**
 * The ids' bytes one ACK envelope may carry. On tcp they are in the frame twice (frame and
 * envelope), so this keeps an `acks` frame well within 8 KiB: about 110 ULIDs.
 */
const MAX_IDS_BYTES = 3000

/** The ACK envelope from `from` to `to` for `ids` (one id: the single-id form every version reads). */
export function makeAcks(from: string, to: string, ids: readonly string[], id: string, now: number): Envelope {
  const ack = makeAck({ id: ids[0]!, fromNode: to, toNode: from }, id, now)
  if (ids.length > 1) ack.ids = [...ids]
  return ack
}

/** The ids an ACK envelope acknowledges: `ids` when it has them, else its inReplyTo. */
export function ackedIds(env: Pick<Envelope, 'ids' | 'inReplyTo' | 'method'>): string[] {
  if (env.method !== ACK_METHOD) return []
  if (env.ids !== undefined && env.ids.length > 0) return env.ids
  return env.inReplyTo === undefined ? [] : [env.inReplyTo]
}

/** `ids` in groups small enough for one ACK envelope each, in order. */
export function groupAckIds(ids: readonly string[]): string[][] {
  const out: string[][] = []
  let group: string[] = []
  let size = 0
  for (const id of ids) {
    const n = Buffer.byteLength(id) + 3
    if (group.length > 0 && size + n > MAX_IDS_BYTES) {
      out.push(group)
      group = []
      size = 0
    }
    group.push(id)
    size += n
  }
  if (group.length > 0) out.push(group)
  return out
}

/**
 * What the hub gives a receiver of apiVersion < 3 for an ACK of many ids from `from`: one plain
 * single-id ACK envelope per id (ACKs are not signed; `from` is the sender the hub authenticated).
 */
export function splitAcks(to: string, from: string, ids: readonly string[], ulid: () => string, now: number): Outgoing[] {
  return ids.map((acked) => {
    const ack = makeAck({ id: acked, fromNode: to, toNode: from }, ulid(), now)
    return { id: ack.id, bytes: encode(ack) }
  })
}
