/**
 * The frames the hub routes besides msg (batch, acks, zbatch), written and read by hand: the
 * hub reads every one a sender writes and writes it again with `from`, and a receiver reads it
 * once more. framing.ts's general path (the MessagePack Encoder/Decoder and the field checks)
 * cost more than the rest of the hub's work on a message.
 *
 *   encodeRoutedFrame: exactly the bytes encodeFrame's general path writes (the frame's fields in
 *     SHAPES order, undefined ones left out), or undefined for a value of another type (the
 *     general path then writes it as it always did).
 *   decodeRoutedFrame: the frame when the body has that layout and passes the checks toFrame
 *     makes; otherwise undefined and the general path decodes it (or says what is wrong).
 *
 * test/wire/framing.test.ts compares both with the general path.
 */
import type { AcksFrame, BatchFrame, Frame, ZbatchFrame } from './framing'
import { GIVE_UP, Reader } from './msgpack-read'
import { binHeader, putBin, putStr, strHeader } from './msgpack-write'

export type RoutedFrame = BatchFrame | AcksFrame | ZbatchFrame

/** fixstr of an ASCII key or value: its header byte and bytes. */
const fix = (s: string): Buffer => Buffer.concat([Buffer.from([0xa0 | s.length]), Buffer.from(s, 'latin1')])
const K_T = fix('t')
const T_BATCH = fix('batch')
const T_ACKS = fix('acks')
const T_ZBATCH = fix('zbatch')
const K_ID = fix('id')
const K_TO = fix('to')
const K_FROM = fix('from')
const K_IDS = fix('ids')
const K_BS = fix('bs')
const K_B = fix('b')
const K_Z = fix('z')

const arrHeader = (n: number): number => (n < 16 ? 1 : n < 0x10000 ? 3 : 5)

function putArrHeader(out: Buffer, at: number, n: number): number {
  if (n < 16) { out[at] = 0x90 | n; return at + 1 }
  if (n < 0x10000) { out[at] = 0xdc; out[at + 1] = n >>> 8; out[at + 2] = n & 0xff; return at + 3 }
  out[at] = 0xdd
  out.writeUInt32BE(n, at + 1)
  return at + 5
}

const strSize = (n: number): number => strHeader(n) + n

/**
 * The frame's body (without the length prefix), or undefined when a field is not of its type.
 * Strings are measured once; every id and name an outpost peer sends is ASCII, measured as such.
 */
export function encodeRoutedBody(f: RoutedFrame): Buffer | undefined {
  if (f.raw !== undefined) return withRaw(f, f.raw)
  const tKey = f.t === 'batch' ? T_BATCH : f.t === 'acks' ? T_ACKS : T_ZBATCH
  if (typeof f.to !== 'string' || (f.from !== undefined && typeof f.from !== 'string') || !Array.isArray(f.ids)) return undefined
  const toN = Buffer.byteLength(f.to)
  const fromN = f.from === undefined ? 0 : Buffer.byteLength(f.from)
  let size = 1 + K_T.length + tKey.length + K_TO.length + strSize(toN) + K_IDS.length + arrHeader(f.ids.length)
  if (f.from !== undefined) size += K_FROM.length + strSize(fromN)
  const idLens: number[] = []
  for (const id of f.ids) {
    if (typeof id !== 'string') return undefined
    const n = Buffer.byteLength(id)
    idLens.push(n)
    size += strSize(n)
  }
  let idN = 0
  if (f.t === 'acks') {
    if (typeof f.id !== 'string' || !(f.b instanceof Uint8Array)) return undefined
    idN = Buffer.byteLength(f.id)
    size += K_ID.length + strSize(idN) + K_B.length + binHeader(f.b.length) + f.b.length
  } else if (f.t === 'batch') {
    if (!Array.isArray(f.bs)) return undefined
    size += K_BS.length + arrHeader(f.bs.length)
    for (const b of f.bs) {
      if (!(b instanceof Uint8Array)) return undefined
      size += binHeader(b.length) + b.length
    }
  } else {
    if (!(f.z instanceof Uint8Array)) return undefined
    size += K_Z.length + binHeader(f.z.length) + f.z.length
  }
  const out = Buffer.allocUnsafe(size)
  let at = putHead(out, f, tKey, idN, toN, fromN)
  at += K_IDS.copy(out, at)
  at = putArrHeader(out, at, f.ids.length)
  for (let i = 0; i < f.ids.length; i++) at = putStr(out, at, f.ids[i]!, idLens[i]!)
  if (f.t === 'acks') {
    at += K_B.copy(out, at)
    putBin(out, at, f.b)
  } else if (f.t === 'batch') {
    at += K_BS.copy(out, at)
    at = putArrHeader(out, at, f.bs.length)
    for (const b of f.bs) at = putBin(out, at, b)
  } else {
    at += K_Z.copy(out, at)
    putBin(out, at, f.z)
  }
  return out
}

/** The map header and the fields before `ids` (type, the acks' id, `to`, `from`): where the rest goes. */
function putHead(out: Buffer, f: RoutedFrame, tKey: Buffer, idN: number, toN: number, fromN: number): number {
  out[0] = 0x80 | ((f.from === undefined ? 4 : 5) + (f.t === 'acks' ? 1 : 0))
  let at = 1
  at += K_T.copy(out, at)
  at += tKey.copy(out, at)
  if (f.t === 'acks') {
    at += K_ID.copy(out, at)
    at = putStr(out, at, (f as { id: string }).id, idN)
  }
  at += K_TO.copy(out, at)
  at = putStr(out, at, f.to, toN)
  if (f.from !== undefined) {
    at += K_FROM.copy(out, at)
    at = putStr(out, at, f.from, fromN)
  }
  return at
}

/**
 * A frame read with views (the hub's) written again: its type, id (acks), `to` and `from`, then
 * the rest as it was read: its ids and envelopes are not encoded again (~0.3 µs a message at the
 * hub). The bytes are what the general path writes for a frame read in that layout.
 */
function withRaw(f: RoutedFrame, raw: Uint8Array): Buffer | undefined {
  if (typeof f.to !== 'string' || (f.from !== undefined && typeof f.from !== 'string') || (f.t === 'acks' && typeof f.id !== 'string')) return undefined
  const tKey = f.t === 'batch' ? T_BATCH : f.t === 'acks' ? T_ACKS : T_ZBATCH
  const toN = Buffer.byteLength(f.to)
  const fromN = f.from === undefined ? 0 : Buffer.byteLength(f.from)
  const idN = f.t === 'acks' ? Buffer.byteLength(f.id) : 0
  let size = 1 + K_T.length + tKey.length + K_TO.length + strSize(toN) + raw.length
  if (f.from !== undefined) size += K_FROM.length + strSize(fromN)
  if (f.t === 'acks') size += K_ID.length + strSize(idN)
  const out = Buffer.allocUnsafe(size)
  out.set(raw, putHead(out, f, tKey, idN, toN, fromN))
  return out
}

const r = new Reader()

/**
 * The batch, acks or zbatch frame in `body` (the layout encodeRoutedBody writes), or undefined.
 * `copy`: payloads are copies; else views of `body` (for a caller done with them before more
 * bytes arrive: the hub, forwarding at once).
 */
export function decodeRoutedFrame(body: Uint8Array, copy: boolean): Frame | undefined {
  const m = body[0]
  if (m === undefined || m < 0x84 || m > 0x86) return undefined
  r.reset(body)
  try {
    r.at = 1
    if (!r.key(K_T)) return undefined
    const t = r.key(T_BATCH) ? 'batch' : r.key(T_ACKS) ? 'acks' : r.key(T_ZBATCH) ? 'zbatch' : undefined
    if (t === undefined) return undefined
    let id: string | undefined
    if (t === 'acks') {
      if (!r.key(K_ID)) return undefined
      id = r.str()
    }
    if (!r.key(K_TO)) return undefined
    const to = r.name()
    const from = r.key(K_FROM) ? r.name() : undefined
    if ((m & 0x0f) !== (from === undefined ? 4 : 5) + (t === 'acks' ? 1 : 0)) return undefined
    const idsAt = r.at
    if (!r.key(K_IDS)) return undefined
    const ids = r.strs()
    // The checks toFrame makes: when one fails, the general path refuses the frame, saying why.
    if (ids.length === 0) return undefined
    let f: Frame
    if (t === 'batch') {
      if (!r.key(K_BS)) return undefined
      const n = r.arrayHeader()
      if (n !== ids.length) return undefined
      const bs: Uint8Array[] = []
      for (let i = 0; i < n; i++) bs.push(r.bin(copy))
      f = { t, to, ids, bs }
    } else if (t === 'acks') {
      if (!r.key(K_B)) return undefined
      f = { t, id: id!, to, ids, b: r.bin(copy) }
    } else {
      if (!r.key(K_Z)) return undefined
      f = { t, to, ids, z: r.bin(copy) }
    }
    if (r.at !== r.end) return undefined
    if (from !== undefined) f.from = from
    // The hub forwards at once: what follows the names goes out again as it came (see encodeRoutedBody).
    if (!copy) f.raw = body.subarray(idsAt)
    return f
  } catch (err) {
    if (err === GIVE_UP) return undefined
    throw err
  } finally {
    r.done()
  }
}
