/**
 * Batches on the TCP hub's wire (apiVersion 2, see docs/transports.md): the envelopes one node
 * sends to one receiver in the same tick go out in as few frames as fit in 8 KiB.
 *
 *   [e1 e2 e3 BIG e4] ─▶ batch(e1 e2 e3) ─ part(BIG) 1/n … n/n ─ msg(e4)
 *   a lone envelope is a msg frame (byte for byte what apiVersion 1 sends); one too large for a
 *   frame goes as parts, after the batch before it (order per receiver is kept)
 */
import { FROM_ROOM, MAX_BODY, splitEnvelope, type BatchFrame, type Frame, type MsgFrame } from './framing'
import { binHeader, strHeader } from './msgpack-write'

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
