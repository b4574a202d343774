/**
 * Envelopes larger than a broker takes in one message (NATS max_payload, 1 MiB by default;
 * some MQTT brokers cap packets at 1 MiB too) cross as numbered parts, put back together by
 * the receiver with the same Reassembler as the TCP hub's part frames.
 *
 * A part is the MessagePack array [0, id, i, n, bytes]. Its first byte is 0x95 (fixarray of
 * 5); an envelope is a map (0x80–0x8f, 0xde, 0xdf), so one look tells them apart.
 */
import { decode, encode } from '@msgpack/msgpack'
import { OutpostError } from '../src/errors'
import { Reassembler } from '../src/wire/reassembler'
import { checkDepth } from '../src/wire/msgpack-depth'

const PART_MARK = 0x95
/** Room for the part's own header (id, i, n, bin32 length) and the broker's. */
const OVERHEAD = 256

/** The envelope as it goes to the broker: itself when it fits, else its parts. */
export function chunk(id: string, to: string, bytes: Uint8Array, maxPayload: number): Uint8Array[] {
  if (bytes.length <= maxPayload - OVERHEAD) return [bytes]
  const size = maxPayload - OVERHEAD
  if (size < 1024) throw new OutpostError('message_too_large', `the broker takes at most ${maxPayload} bytes per message: too little to carry parts`)
  const n = Math.ceil(bytes.length / size)
  const out: Uint8Array[] = []
  for (let i = 0; i < n; i++) out.push(encode([0, id, i, n, bytes.subarray(i * size, (i + 1) * size)]))
  return out
}

/** Takes what arrives from the broker; gives back whole envelopes. */
export class Unchunker {
  private readonly parts: Reassembler

  constructor(maxBytes: number) {
    this.parts = new Reassembler({ maxBytes })
  }

  /** The whole envelope, or undefined while parts are missing. Throws on a malformed part. */
  push(to: string, bytes: Uint8Array): Uint8Array | undefined {
    if (bytes[0] !== PART_MARK) return bytes
    checkDepth(bytes, 'frame_invalid')
    const p = decode(bytes) as unknown
    if (!Array.isArray(p) || p.length !== 5 || p[0] !== 0 || typeof p[1] !== 'string' || typeof p[2] !== 'number' || typeof p[3] !== 'number' || !(p[4] instanceof Uint8Array)) {
      throw new OutpostError('frame_invalid', 'a message part is not [0, id, i, n, bytes]')
    }
    return this.parts.add({ t: 'part', id: p[1], to, i: p[2], n: p[3], b: p[4] })
  }

  /** Drop parts of messages that stopped arriving; returns their ids. */
  sweep(): string[] {
    return this.parts.sweep()
  }
}
