/**
 * Batches on the TCP hub's wire (apiVersion 2, see docs/transports.md): the envelopes one node
 * sends to one receiver in the same tick go out in as few frames as fit in 8 KiB.
 *
 *   [e1 e2 e3 BIG e4] ─▶ batch(e1 e2 e3) ─ part(BIG) 1/n … n/n ─ msg(e4)
 *   a lone envelope is a msg frame (byte for byte what apiVersion 1 sends); one too large for a
 *   frame goes as parts, after the batch before it (order per receiver is kept)
 *   batch / msg of ≥ 1 KiB ─ compressFrame ─▶ zbatch when deflate saves ≥ 10% (peers that announced `deflate`)
 *   zbatch ─ inflateBatch ─▶ batch (inflated at most to a frame's body: a bomb is refused)
 */
import { Decoder } from '@msgpack/msgpack'
import { OutpostError } from '../errors'
import { decompress, maybeCompress, type CompressMode } from './compress'
import { FROM_ROOM, MAX_BODY, splitEnvelope, type BatchFrame, type Frame, type MsgFrame, type ZbatchFrame } from './framing'
import { checkDepth } from './msgpack-depth'
import { GIVE_UP, Reader } from './msgpack-read'
import { binHeader, putBin, strHeader } from './msgpack-write'

/** The apiVersion from which a peer (node or hub) takes batch frames. */
export const BATCH_API = 2

export interface Outgoing { id: string; bytes: Uint8Array }

/** The batch frame's body without its envelopes, with room for the `from` the hub stamps. */
function baseSize(to: string): number {
  const toN = Buffer.byteLength(to)
  // fixmap; "t" "batch"; "to" str; "from" str; "ids" array16; "bs" array16
  return 1 + 2 + 6 + 3 + strHeader(toN) + toN + 5 + strHeader(FROM_ROOM) + FROM_ROOM + 4 + 3 + 3 + 3
}

/** What one envelope adds to a batch frame's body. */
function itemSize(id: string, bytes: Uint8Array): number {
  const idN = Buffer.byteLength(id)
  return strHeader(idN) + idN + binHeader(bytes.length) + bytes.length
}

/** The frames carrying `items` (in order) to `to`. */
export function packFrames(to: string, items: readonly Outgoing[]): Frame[] {
  const out: Frame[] = []
  const base = baseSize(to)
  let ids: string[] = []
  let bs: Uint8Array[] = []
  let size = base
  const flush = (): void => {
    if (ids.length === 1) out.push({ t: 'msg', id: ids[0]!, to, b: bs[0]! } satisfies MsgFrame)
    else if (ids.length > 1) out.push({ t: 'batch', to, ids, bs } satisfies BatchFrame)
    ids = []
    bs = []
    size = base
  }
  for (const { id, bytes } of items) {
    const n = itemSize(id, bytes)
    if (base + n > MAX_BODY) {
      // Too large for a batch of one: a msg frame if it fits (its header is smaller), else parts.
      flush()
      out.push(...splitEnvelope(id, to, bytes))
      continue
    }
    if (size + n > MAX_BODY) flush()
    ids.push(id)
    bs.push(bytes)
    size += n
  }
  flush()
  return out
}

/** A batch frame as the msg frames an apiVersion 1 peer takes. */
export function unbatch(f: BatchFrame): MsgFrame[] {
  return f.ids.map((id, i) => (f.from === undefined ? { t: 'msg', id, to: f.to, b: f.bs[i]! } : { t: 'msg', id, to: f.to, from: f.from, b: f.bs[i]! }))
}

const LIST_DECODER = new Decoder()

/** The envelopes as one MessagePack array of bins (what a zbatch frame compresses). */
function packList(bs: readonly Uint8Array[]): Buffer {
  let size = bs.length < 16 ? 1 : 3
  for (const b of bs) size += binHeader(b.length) + b.length
  const out = Buffer.allocUnsafe(size)
  let at = 0
  if (bs.length < 16) out[at++] = 0x90 | bs.length
  else { out[at++] = 0xdc; out.writeUInt16BE(bs.length, at); at += 2 }
  for (const b of bs) at = putBin(out, at, b)
  return out
}

/** A msg or batch frame as a zbatch frame when compressing pays, else the frame itself. */
export function compressFrame(f: Frame, mode: CompressMode): Frame {
  if (mode === 'off' || (f.t !== 'batch' && f.t !== 'msg')) return f
  const bs = f.t === 'batch' ? f.bs : [f.b]
  const z = maybeCompress(packList(bs), mode)
  if (z === undefined) return f
  const out: ZbatchFrame = { t: 'zbatch', to: f.to, ids: f.t === 'batch' ? f.ids : [f.id], z }
  if (f.from !== undefined) out.from = f.from
  return out
}

/** A zbatch frame as the batch frame it was made from; compressed_too_large or frame_invalid when it is not one. */
export function inflateBatch(f: ZbatchFrame): BatchFrame {
  const raw = decompress(f.z, MAX_BODY)
  // What packList writes, read by hand; anything else goes to the general Decoder, which says what is wrong.
  let list: unknown = readBins(raw)
  if (list === undefined) {
    checkDepth(raw, 'frame_invalid')
    try {
      list = LIST_DECODER.decode(raw)
    } catch (err) {
      throw new OutpostError('frame_invalid', `frame: zbatch does not inflate to MessagePack (${(err as Error).message})`, { cause: err })
    }
  }
  if (!Array.isArray(list) || list.length !== f.ids.length || !list.every((b) => b instanceof Uint8Array)) {
    throw new OutpostError('frame_invalid', `frame: zbatch must inflate to ${f.ids.length} binaries, one per id`)
  }
  const out: BatchFrame = { t: 'batch', to: f.to, ids: f.ids, bs: list as Uint8Array[] }
  if (f.from !== undefined) out.from = f.from
  return out
}

const reader = new Reader()

/** A MessagePack array of bins and nothing after it: the bins (views of `raw`), else undefined. */
function readBins(raw: Uint8Array): Uint8Array[] | undefined {
  reader.reset(raw)
  try {
    const n = reader.arrayHeader()
    const out: Uint8Array[] = []
    for (let i = 0; i < n; i++) out.push(reader.bin())
    return reader.at === reader.end ? out : undefined
  } catch (err) {
    if (err === GIVE_UP) return undefined
    throw err
  } finally {
    reader.done()
  }
}
