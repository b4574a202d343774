/**
 * The outbox's journal records, hand-encoded: they are written for every message, and a fixed
 * binary layout costs a fraction of a general MessagePack encode.
 *
 *   enqueue  [1][idLen u8][id][destLen u8][dest][seq f64][createdAt f64][expiresAt f64][body…]
 *   remove   [2][idLen u8][id]
 *   attempt  [3][idLen u8][id][attempts f64][nextAt f64]
 *   seen     [4][idLen u8][id][at f64]
 */
import { OutpostError } from './errors'

export const OP_ENQUEUE = 1
export const OP_REMOVE = 2
export const OP_ATTEMPT = 3
export const OP_SEEN = 4

export type Op =
  | [typeof OP_ENQUEUE, string, string, number, number, number, Uint8Array]
  | [typeof OP_REMOVE, string]
  | [typeof OP_ATTEMPT, string, number, number]
  | [typeof OP_SEEN, string, number]

/** Ids and node names are ASCII in practice; their UTF-8 length must fit a byte. */
export const MAX_KEY_BYTES = 255

export function encodeOp(op: Op): Buffer {
  const id = Buffer.from(op[1], 'utf8')
  if (id.length > MAX_KEY_BYTES) throw new OutpostError('envelope_invalid', `outbox: id ${JSON.stringify(op[1].slice(0, 40))}… is longer than ${MAX_KEY_BYTES} bytes`)
  switch (op[0]) {
    case OP_ENQUEUE: {
      const dest = Buffer.from(op[2], 'utf8')
      if (dest.length > MAX_KEY_BYTES) throw new OutpostError('envelope_invalid', `outbox: destination is longer than ${MAX_KEY_BYTES} bytes`)
      const body = op[6]
      const buf = Buffer.allocUnsafe(3 + id.length + dest.length + 24 + body.length)
      let o = 0
      buf[o++] = OP_ENQUEUE
      buf[o++] = id.length
      o += id.copy(buf, o)
      buf[o++] = dest.length
      o += dest.copy(buf, o)
      o = buf.writeDoubleBE(op[3], o)
      o = buf.writeDoubleBE(op[4], o)
      o = buf.writeDoubleBE(op[5], o)
      buf.set(body, o)
      return buf
    }
    case OP_REMOVE: {
      const buf = Buffer.allocUnsafe(2 + id.length)
      buf[0] = OP_REMOVE
      buf[1] = id.length
      id.copy(buf, 2)
      return buf
    }
    case OP_ATTEMPT: {
      const buf = Buffer.allocUnsafe(2 + id.length + 16)
      buf[0] = OP_ATTEMPT
      buf[1] = id.length
      let o = 2 + id.copy(buf, 2)
      o = buf.writeDoubleBE(op[2], o)
      buf.writeDoubleBE(op[3], o)
      return buf
    }
    case OP_SEEN: {
      const buf = Buffer.allocUnsafe(2 + id.length + 8)
      buf[0] = OP_SEEN
      buf[1] = id.length
      buf.writeDoubleBE(op[2], 2 + id.copy(buf, 2))
      return buf
    }
  }
}

/** Decode a record; throws on a record that is not one of the four shapes (a newer or damaged file). */
export function decodeOp(rec: Uint8Array): Op {
  const buf = Buffer.isBuffer(rec) ? rec : Buffer.from(rec.buffer, rec.byteOffset, rec.byteLength)
  const need = (n: number): void => { if (buf.length < n) throw new Error(`record of ${buf.length} bytes is too short for op ${buf[0]}`) }
  need(2)
  const type = buf[0]
  const idEnd = 2 + buf[1]!
  need(idEnd)
  const id = buf.toString('utf8', 2, idEnd)
  switch (type) {
    case OP_ENQUEUE: {
      need(idEnd + 1)
      const destEnd = idEnd + 1 + buf[idEnd]!
      need(destEnd + 24)
      const dest = buf.toString('utf8', idEnd + 1, destEnd)
      // A copy: the record is a view into the whole segment file.
      const body = new Uint8Array(buf.subarray(destEnd + 24))
      return [OP_ENQUEUE, id, dest, buf.readDoubleBE(destEnd), buf.readDoubleBE(destEnd + 8), buf.readDoubleBE(destEnd + 16), body]
    }
    case OP_REMOVE:
      return [OP_REMOVE, id]
    case OP_ATTEMPT:
      need(idEnd + 16)
      return [OP_ATTEMPT, id, buf.readDoubleBE(idEnd), buf.readDoubleBE(idEnd + 8)]
    case OP_SEEN:
      need(idEnd + 8)
      return [OP_SEEN, id, buf.readDoubleBE(idEnd)]
    default:
      throw new Error(`unknown op ${type}`)
  }
}
