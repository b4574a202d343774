/**
 * What a broker payload is on its way out and in (MQTT, NATS), beside batching (broker-batch.ts):
 * compressed when it pays, to a receiver that announced it (api version 4; see docs/transports.md),
 * and what a publish costs on the wire (transport.maxBytesPerSecond counts it).
 *
 *   out  payload ≤ 64 KiB (an envelope or a batch) ─ deflate ─▶ [2, deflated] (0x92 0x02) when it
 *        saves ≥ 10% (src/wire/compress.ts), else itself
 *   in   whole payload ─▶ [2, z]: inflated, at most 64 KiB (a bomb: compressed_too_large) ─┐
 *                        ─▶ [1, [b…]]: a batch's envelopes  ◀─────────────────────────────┤
 *                        ─▶ an envelope                     ◀─────────────────────────────┘
 */
import { OutpostError } from '../src/errors'
import { decompress, maybeCompress, type CompressMode } from '../src/wire/compress'
import { binHeader, putBin } from '../src/wire/msgpack-write'
import { API_VERSION } from '../src/version'
import { BATCH_BYTES, decodeBatch, isBatch } from './broker-batch'

/** The api version from which a node takes compressed payloads. */
export const DEFLATE_API = 4
const ARRAY2 = 0x92
const DEFLATED = 0x02

/** The api version this node announces on a broker: with compress off it takes nothing compressed, so it says 3. */
export function announcedApi(compress: CompressMode | undefined): number {
  return compress === 'auto' ? API_VERSION : DEFLATE_API - 1
}

/** `bytes` (an envelope or a batch payload) as [2, deflated] when that pays, else itself. */
export function compressPayload(bytes: Uint8Array): Uint8Array {
  // Larger payloads (a lone envelope past a batch) go as they are: the receiver's inflate cap stays 64 KiB.
  if (bytes.length > BATCH_BYTES) return bytes
  const z = maybeCompress(bytes, 'auto')
  if (z === undefined) return bytes
  const out = Buffer.allocUnsafe(2 + binHeader(z.length) + z.length)
  out[0] = ARRAY2
  out[1] = DEFLATED
  putBin(out, 2, z)
  return out
}

/** True when `bytes` is a compressed payload. */
export function isCompressed(bytes: Uint8Array): boolean {
  return bytes[0] === ARRAY2 && bytes[1] === DEFLATED
}

/** The deflated bytes of [2, z]; frame_invalid when it is not that. */
function deflatedOf(bytes: Uint8Array): Uint8Array {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const t = view[2]
  const [len, at] = t === 0xc4 && view.length >= 4 ? [view[3]!, 4]
    : t === 0xc5 && view.length >= 5 ? [view.readUInt16BE(3), 5]
    : t === 0xc6 && view.length >= 7 ? [view.readUInt32BE(3), 7]
    : [-1, 0]
  if (len < 0 || at + len !== view.length) throw new OutpostError('frame_invalid', 'a compressed payload is not [2, bytes]')
  return bytes.subarray(at, at + len)
}

/**
 * The envelopes a whole payload (parts put together) carries: itself, a batch's, or those of
 * the payload a compressed one inflates to. Throws compressed_too_large for one that would
 * inflate past 64 KiB (a bomb), frame_invalid for anything malformed: the caller drops that
 * payload alone.
 */
export function envelopesOf(whole: Uint8Array): Uint8Array[] {
  const bytes = inflated(whole)
  return isBatch(bytes) ? decodeBatch(bytes) : [bytes]
}

/** The payload a compressed one carries (an envelope or a batch, never more than 64 KiB), or `whole` itself. */
export function inflated(whole: Uint8Array): Uint8Array {
  if (!isCompressed(whole)) return whole
  const bytes = decompress(deflatedOf(whole), BATCH_BYTES)
  if (isCompressed(bytes) || bytes[0] === 0x95) throw new OutpostError('frame_invalid', 'a compressed payload inflates to another compressed payload or a part')
  return bytes
}

const varint = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4)

/** The bytes of an MQTT 3.1.1 QoS 1 PUBLISH packet: fixed header, topic, packet id, payload. */
export function mqttPublishBytes(topic: string, payload: number): number {
  const rest = 2 + Buffer.byteLength(topic) + 2 + payload
  return 1 + varint(rest) + rest
}

/** The bytes of a NATS `PUB <subject> [reply] <size>\r\n<payload>\r\n`. */
export function natsPublishBytes(subject: string, reply: string | undefined, payload: number): number {
  return 4 + Buffer.byteLength(subject) + (reply === undefined ? 0 : 1 + Buffer.byteLength(reply)) + 1 + String(payload).length + 2 + payload + 2
}
