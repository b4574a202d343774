/**
 * What the hub (src/hub.ts) hands a receiver for a frame routed to it, by what the receiver said
 * in its hello. The hub opens no envelope: it forwards whole what the receiver takes, and adapts
 * the rest from what the frame itself says.
 *
 *   msg / part ─▶ as is
 *   batch      ─▶ whole (api ≥ 2) | one msg frame per envelope (api 1)
 *   zbatch     ─▶ whole (announced `deflate`) | inflated (capped: a bomb throws) ─▶ as a batch
 *   acks       ─▶ whole (api ≥ 3) | one plain single-id ACK envelope per id ─▶ as a batch
 * Every frame out carries `from`, the sender the hub authenticated.
 */
import { ACKS_API, splitAcks } from './wire/acks'
import { BATCH_API, inflateBatch, packFrames, unbatch } from './wire/batch'
import type { Frame } from './wire/framing'

export type Routed = Extract<Frame, { t: 'msg' | 'part' | 'batch' | 'zbatch' | 'acks' }>

/** What the hub knows of a receiver. */
export interface Receiver {
  /** The apiVersion of its hello. */
  api: number
  /** Its hello announced `deflate`: it takes zbatch frames. */
  deflate: boolean
}

/** The frames for `to` of `f` from `from`. Throws (compressed_too_large, frame_invalid) for a zbatch that does not inflate. */
export function framesFor(to: Receiver, f: Routed, from: string, ulid: () => string): Frame[] {
  switch (f.t) {
    case 'zbatch':
      if (to.deflate) return [{ ...f, from }]
      return framesFor(to, inflateBatch(f), from, ulid)
    case 'batch':
      if (to.api >= BATCH_API) return [{ ...f, from }]
      return unbatch(f).map((m) => ({ ...m, from }))
    case 'acks': {
      if (to.api >= ACKS_API) return [{ ...f, from }]
      const items = splitAcks(f.to, from, f.ids, ulid, Date.now())
      if (to.api >= BATCH_API) return packFrames(f.to, items).map((x) => ({ ...x, from }))
      return items.map((i) => ({ t: 'msg', id: i.id, to: f.to, from, b: i.bytes }))
    }
    case 'part':
      // Field by field: a spread of the decoded frame cost the hub more than the rest of its routing.
      return [{ t: 'part', id: f.id, to: f.to, from, i: f.i, n: f.n, b: f.b }]
    default:
      return [{ t: 'msg', id: f.id, to: f.to, from, b: f.b }]
  }
}
