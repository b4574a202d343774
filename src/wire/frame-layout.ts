/**
 * The hot path's frames written and read by hand (framing.ts has the rest): `msg` (every
 * message and ACK is one) and `part` (a slice of an envelope too large for one frame: a file
 * chunk is 32 of them). The bytes are exactly what @msgpack/msgpack's Encoder writes for the
 * same frame (test/wire/framing.test.ts checks it), so a peer that encodes with the library
 * reads them, and what such a peer writes in that layout takes the quick way in.
 *
 *   msg   { t: 'msg', id, to, from?, b }           fixmap 4 / 5
 *   part  { t: 'part', id, to, from?, i, n, b }    fixmap 6 / 7
 */
import { OutpostError } from '../errors'
import type { MsgFrame, PartFrame } from './framing'
import { GIVE_UP, Reader } from './msgpack-read'
import { asciiLength, binHeader, putBin, putStr, SHORT, strHeader } from './msgpack-write'

/** Largest frame on the wire, length prefix included. */
export const MAX_FRAME = 8192
/** Largest frame body (the MessagePack part). */
export const MAX_BODY = MAX_FRAME - 2

// "t": "msg" / "t": "part", and the fixstr keys that follow, as the Encoder writes them.
const MSG_HEAD = Buffer.from([0xa1, 0x74, 0xa3, 0x6d, 0x73, 0x67])
const PART_HEAD = Buffer.from([0xa1, 0x74, 0xa4, 0x70, 0x61, 0x72, 0x74])
const K_ID = Buffer.from([0xa2, 0x69, 0x64])
const K_TO = Buffer.from([0xa2, 0x74, 0x6f])
const K_FROM = Buffer.from([0xa4, 0x66, 0x72, 0x6f, 0x6d])
const K_I = Buffer.from([0xa1, 0x69])
const K_N = Buffer.from([0xa1, 0x6e])
const K_B = Buffer.from([0xa1, 0x62])

/** Body bytes of a msg frame before its payload's bin header (for splitEnvelope's sizing). */
export function msgOverhead(idN: number, toN: number, fromN: number | undefined): number {
  return 1 + MSG_HEAD.length + K_ID.length + strHeader(idN) + idN + K_TO.length + strHeader(toN) + toN +
    (fromN === undefined ? 0 : K_FROM.length + strHeader(fromN) + fromN) + K_B.length
}

/** UTF-8 bytes of s: short plain ASCII (ids, node names) measured without a call into C++. */
const utf8Bytes = (s: string): number => (s.length <= SHORT && asciiLength(s) >= 0 ? s.length : Buffer.byteLength(s))

/** Size of a non-negative integer below 2^32 as the Encoder writes it. */
const uintSize = (v: number): number => (v < 0x80 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : 5)

function putUint(out: Buffer, at: number, v: number): number {
  if (v < 0x80) out[at++] = v
  else if (v < 0x100) { out[at++] = 0xcc; out[at++] = v }
  else if (v < 0x10000) { out[at++] = 0xcd; out.writeUInt16BE(v, at); at += 2 }
  else { out[at++] = 0xce; out.writeUInt32BE(v, at); at += 4 }
  return at
}

const tooLarge = (t: string, size: number): OutpostError =>
  new OutpostError('frame_too_large', `frame: ${t} body is ${size} bytes, more than ${MAX_BODY} (split envelopes with splitEnvelope)`)

/** A frame's strings measured (UTF-8 bytes), once for its size and its writing. */
export interface Names { id: string; idN: number; to: string; toN: number; from: string | undefined; fromN: number | undefined }

export function names(id: string, to: string, from: string | undefined): Names {
  return { id, idN: utf8Bytes(id), to, toN: utf8Bytes(to), from, fromN: from === undefined ? undefined : utf8Bytes(from) }
}

/** Bytes of a msg frame, its length prefix included. Throws frame_too_large past MAX_BODY. */
export function msgFrameSize(h: Names, len: number): number {
  const size = msgOverhead(h.idN, h.toN, h.fromN) + binHeader(len) + len
  if (size > MAX_BODY) throw tooLarge('msg', size)
  return 2 + size
}

/** Writes a msg frame (length prefix and body) of msgFrameSize bytes at `at`; returns the offset after it. */
export function putMsgFrame(out: Buffer, at: number, size: number, h: Names, b: Uint8Array): number {
  out.writeUInt16BE(size - 2, at)
  out[at + 2] = h.from === undefined ? 0x84 : 0x85
  at += 3
  out.set(MSG_HEAD, at); at += MSG_HEAD.length
  at = writeHead(out, at, h.id, h.idN, h.to, h.toN, h.from, h.fromN)
  out.set(K_B, at); at += K_B.length
  return putBin(out, at, b)
}

/** A msg frame: the 2-byte length and the body. Throws frame_too_large past MAX_BODY. */
export function encodeMsgFrame(id: string, to: string, from: string | undefined, b: Uint8Array): Buffer {
  const h = names(id, to, from)
  const size = msgFrameSize(h, b.length)
  const out = Buffer.allocUnsafe(size)
  putMsgFrame(out, 0, size, h, b)
  return out
}

/** Body bytes of a part frame before its payload. */
function partHeadSize(idN: number, toN: number, fromN: number | undefined, i: number, n: number, len: number): number {
  return 1 + PART_HEAD.length + K_ID.length + strHeader(idN) + idN + K_TO.length + strHeader(toN) + toN +
    (fromN === undefined ? 0 : K_FROM.length + strHeader(fromN) + fromN) + K_I.length + uintSize(i) + K_N.length + uintSize(n) + K_B.length + binHeader(len)
}

/** Bytes of a part frame up to its payload, its length prefix included. Throws frame_too_large past MAX_BODY. */
export function partHeadBytes(h: Names, i: number, n: number, len: number): number {
  const head = partHeadSize(h.idN, h.toN, h.fromN, i, n, len)
  if (head + len > MAX_BODY) throw tooLarge('part', head + len)
  return 2 + head
}

/** Writes a part frame's partHeadBytes bytes (its payload `len` bytes follow them) at `at`; returns the offset after them. */
export function putPartHead(out: Buffer, at: number, headBytes: number, h: Names, i: number, n: number, len: number): number {
  out.writeUInt16BE(headBytes - 2 + len, at)
  out[at + 2] = h.from === undefined ? 0x86 : 0x87
  at += 3
  out.set(PART_HEAD, at); at += PART_HEAD.length
  at = writeHead(out, at, h.id, h.idN, h.to, h.toN, h.from, h.fromN)
  out.set(K_I, at); at += K_I.length
  at = putUint(out, at, i)
  out.set(K_N, at); at += K_N.length
  at = putUint(out, at, n)
  out.set(K_B, at); at += K_B.length
  if (len < 0x100) { out[at++] = 0xc4; out[at++] = len }
  else if (len < 0x10000) { out[at++] = 0xc5; out.writeUInt16BE(len, at); at += 2 }
  else { out[at++] = 0xc6; out.writeUInt32BE(len, at); at += 4 }
  return at
}

/**
 * A part frame up to its payload: the 2-byte length and the body before the slice's bytes.
 * Written followed by the slice itself (two writes, the slice not copied) it is the frame
 * encodePartFrame makes. Throws frame_too_large past MAX_BODY.
 */
export function encodePartHead(id: string, to: string, from: string | undefined, i: number, n: number, len: number): Buffer {
  const h = names(id, to, from)
  const size = partHeadBytes(h, i, n, len)
  const out = Buffer.allocUnsafe(size)
  putPartHead(out, 0, size, h, i, n, len)
  return out
}

/** A part frame in one buffer: encodePartHead and the slice. */
export function encodePartFrame(id: string, to: string, from: string | undefined, i: number, n: number, b: Uint8Array): Buffer {
  const head = encodePartHead(id, to, from, i, n, b.length)
  const out = Buffer.allocUnsafe(head.length + b.length)
  out.set(head, 0)
  out.set(b, head.length)
  return out
}

/** id, to and from with their keys. */
function writeHead(out: Buffer, at: number, id: string, idN: number, to: string, toN: number, from: string | undefined, fromN: number | undefined): number {
  out.set(K_ID, at); at += K_ID.length
  at = putStr(out, at, id, idN)
  out.set(K_TO, at); at += K_TO.length
  at = putStr(out, at, to, toN)
  if (from !== undefined) {
    out.set(K_FROM, at); at += K_FROM.length
    at = putStr(out, at, from, fromN!)
  }
  return at
}

const r = new Reader()

/** id, to and from (when `withFrom`) after their keys, at the reader's cursor: GIVE_UP when the layout differs. */
function readHead(withFrom: boolean): { id: string; to: string; from: string | undefined } {
  if (!r.key(K_ID)) throw GIVE_UP
  const id = r.str()
  if (!r.key(K_TO)) throw GIVE_UP
  const to = r.name()
  if (!withFrom) return { id, to, from: undefined }
  if (!r.key(K_FROM)) throw GIVE_UP
  return { id, to, from: r.name() }
}

/** The payload after K_B, exactly to the end of the body (trailing bytes are the general decoder's to refuse). */
function readPayload(copy: boolean): Uint8Array {
  if (!r.key(K_B)) throw GIVE_UP
  const b = r.bin(copy)
  if (r.at !== r.end) throw GIVE_UP
  return b
}

/** A non-negative integer below 2^32 (what the Encoder writes for i and n). */
function readUint(): number {
  const v = r.num()
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw GIVE_UP
  return v
}

/** `read` over `body` from after its map header: undefined when the reader gives up. */
function quick<T>(body: Uint8Array, read: () => T): T | undefined {
  r.reset(body)
  r.at = 1
  try {
    return read()
  } catch (err) {
    if (err === GIVE_UP) return undefined
    throw err
  } finally {
    r.done()
  }
}

/**
 * The msg frame in `body` when it has exactly the layout encodeMsgFrame writes (which every
 * outpost peer sends), else undefined and the general decoder takes it. `b` is a copy unless `view`.
 */
export function fastMsg(body: Uint8Array, view: boolean): MsgFrame | undefined {
  const m = body[0]
  if (m !== 0x84 && m !== 0x85) return undefined
  return quick(body, () => {
    if (!r.key(MSG_HEAD)) throw GIVE_UP
    const h = readHead(m === 0x85)
    const frame: MsgFrame = { t: 'msg', id: h.id, to: h.to, b: readPayload(!view) }
    if (h.from !== undefined) frame.from = h.from
    return frame
  })
}

/**
 * The part frame in `body` when it has exactly the layout encodePartFrame writes, else
 * undefined. `b` is always a view of `body`: whoever keeps it copies it (the Reassembler puts
 * the slices together into a buffer of its own; the hub writes them out at once).
 */
export function fastPart(body: Uint8Array): PartFrame | undefined {
  const m = body[0]
  if (m !== 0x86 && m !== 0x87) return undefined
  return quick(body, (): PartFrame => {
    if (!r.key(PART_HEAD)) throw GIVE_UP
    const h = readHead(m === 0x87)
    if (!r.key(K_I)) throw GIVE_UP
    const i = readUint()
    if (!r.key(K_N)) throw GIVE_UP
    const n = readUint()
    // Out of range: the general decoder says why.
    if (n < 1 || i >= n) throw GIVE_UP
    const b = readPayload(false)
    return h.from === undefined ? { t: 'part', id: h.id, to: h.to, i, n, b } : { t: 'part', id: h.id, to: h.to, from: h.from, i, n, b }
  })
}
