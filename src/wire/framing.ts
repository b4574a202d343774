/**
 * TCP wire framing (SPEC §3), shared by hub.ts and transports/tcp.ts.
 *
 *   bytes ─→ FrameDecoder.push ─→ Frame[] ─→ (part frames) Reassembler.add (reassembler.ts) ─→ envelope bytes
 *   envelope bytes ─→ splitEnvelope ─→ msg | part… ─→ encodeFrame ─→ bytes
 * msg frames, and the batch / acks / zbatch frames (frame-routed.ts), are written and read by
 * hand when they have the layout outpost writes; the rest go through the general codec.
 *
 * A frame is a 2-byte big-endian length N and N bytes of MessagePack, 2 + N ≤ 8192. The body
 * is a map whose `t` names the frame type, or a bare MessagePack string: a log line
 * `time|stream|level|message`. Example: the 64-character line
 * `2020-06-10 16:23:50 -06:00|stderr|warn|this is very very serious` is a 66-byte MessagePack
 * str (d9 40 + 64 bytes), so its frame starts `00 42` and is 68 bytes long.
 */
import { Decoder, Encoder } from '@msgpack/msgpack'
import { OutpostError } from '../errors'
import { checkDepth } from './msgpack-depth'
import { binHeader } from './msgpack-write'
import { decodeRoutedFrame, encodeRoutedBody } from './frame-routed'

// One encoder and decoder for the module: the library's encode()/decode() build a new one (and a
// fresh 2 KiB buffer) per call, which showed up as garbage collection on the hot path.
const ENCODER = new Encoder({ ignoreUndefined: true })
const DECODER = new Decoder()

import { encodeMsgFrame, encodePartFrame, encodePartHead, fastMsg, fastPart, MAX_BODY, msgOverhead } from './frame-layout'

export { encodeMsgFrame, encodePartFrame, encodePartHead, MAX_BODY, MAX_FRAME } from './frame-layout'

/** `features` (newer nodes): what this node takes beyond its apiVersion, e.g. `deflate` (zbatch frames). */
export interface HelloFrame { t: 'hello'; node: string; token: string; version: string; apiVersion: number; features?: string[] }
/** `features` (newer hubs): what this hub offers beyond the base protocol, e.g. `presence`. */
export interface WelcomeFrame { t: 'welcome'; hub: string; apiVersion: number; features?: string[] }
/** The node reconnects to one of these servers. */
export interface RedirectFrame { t: 'redirect'; servers: string[] }
/** One whole encoded envelope; `from` is the authenticated sender, stamped by the hub. */
export interface MsgFrame { t: 'msg'; id: string; to: string; from?: string; b: Uint8Array }
/**
 * Several whole envelopes for one receiver (apiVersion 2 on both ends of the hop): ids[i] is the
 * id of bs[i], in send order. The hub routes it by `to` without decoding the envelopes.
 */
export interface BatchFrame { t: 'batch'; to: string; from?: string; ids: string[]; bs: Uint8Array[]; raw?: Uint8Array }
/**
 * One ACK envelope acknowledging several ids (apiVersion 3, src/wire/acks.ts): `ids` repeats
 * what the envelope acknowledges, so the hub can split it for an older receiver unopened.
 */
export interface AcksFrame { t: 'acks'; id: string; to: string; from?: string; ids: string[]; b: Uint8Array; raw?: Uint8Array }
/**
 * A batch frame whose envelopes are compressed (src/wire/compress.ts), only between peers that
 * announced `deflate`: `z` inflates to the MessagePack array of the envelopes, ids[i] the id of the i-th.
 */
export interface ZbatchFrame { t: 'zbatch'; to: string; from?: string; ids: string[]; z: Uint8Array; raw?: Uint8Array }
/*
 * `raw` (batch, acks, zbatch as the hub reads them, frame-routed.ts): the frame's bytes from its
 * `ids` to its end as they came, which the hub writes again as they are behind the `from` it
 * stamps, instead of encoding every id again. Only a frame decoded with views has it; a frame
 * made from another (unbatched, inflated, split) does not.
 */
/** Slice i (0-based) of n of an envelope too large for one frame. */
export interface PartFrame { t: 'part'; id: string; to: string; from?: string; i: number; n: number; b: Uint8Array }
/** The hub could not deliver (`offline`, `denied`, …): the sender keeps the message. */
export interface NackFrame { t: 'nack'; id: string; to: string; reason: string }
/** A node came back online (presence wake-up). */
export interface OnlineFrame { t: 'online'; node: string }
/** node → hub, only after a welcome listing `presence`: send me presence frames from now on. */
export interface WatchFrame { t: 'watch' }
/** hub → a watching node: these nodes connected / disconnected (the first ones after watch list everyone connected). */
export interface PresenceFrame { t: 'presence'; online: string[]; offline: string[] }
export interface PingFrame { t: 'ping' }
export interface PongFrame { t: 'pong' }
/** The connection closes after it. */
export interface ErrorFrame { t: 'error'; code: string; message: string }
/** On the wire a bare MessagePack string, not a map. */
export interface LogFrame { t: 'log'; line: string }

export type Frame =
  | HelloFrame | WelcomeFrame | RedirectFrame | MsgFrame | PartFrame | NackFrame | BatchFrame | AcksFrame | ZbatchFrame
  | OnlineFrame | WatchFrame | PresenceFrame | PingFrame | PongFrame | ErrorFrame | LogFrame
export type FrameType = Frame['t']

type Kind = 'string' | 'string?' | 'strings' | 'strings?' | 'uint' | 'bytes' | 'bytesList'
type MapType = Exclude<FrameType, 'log'>

/** The fields of each map frame, in wire order. Checked against the interfaces above. */
const SHAPES = {
  hello: { node: 'string', token: 'string', version: 'string', apiVersion: 'uint', features: 'strings?' },
  welcome: { hub: 'string', apiVersion: 'uint', features: 'strings?' },
  redirect: { servers: 'strings' },
  msg: { id: 'string', to: 'string', from: 'string?', b: 'bytes' },
  part: { id: 'string', to: 'string', from: 'string?', i: 'uint', n: 'uint', b: 'bytes' },
  nack: { id: 'string', to: 'string', reason: 'string' },
  batch: { to: 'string', from: 'string?', ids: 'strings', bs: 'bytesList' },
  acks: { id: 'string', to: 'string', from: 'string?', ids: 'strings', b: 'bytes' },
  zbatch: { to: 'string', from: 'string?', ids: 'strings', z: 'bytes' },
  online: { node: 'string' },
  watch: {},
  presence: { online: 'strings', offline: 'strings' },
  ping: {},
  pong: {},
  error: { code: 'string', message: 'string' },
} as const satisfies { [T in MapType]: { [K in Exclude<keyof Extract<Frame, { t: T }>, 't' | 'raw'>]-?: Kind } }

const invalid = (message: string): OutpostError => new OutpostError('frame_invalid', `frame: ${message}`)

/** The MessagePack body of a frame, without the length prefix. */
function encodeBody(frame: Frame): Uint8Array {
  if (frame.t === 'log') return ENCODER.encode(frame.line)
  // Only the known fields, in a fixed order: nothing stray reaches the wire.
  const wire: Record<string, unknown> = { t: frame.t }
  const values = frame as unknown as Record<string, unknown>
  for (const key of Object.keys(SHAPES[frame.t])) if (values[key] !== undefined) wire[key] = values[key]
  return ENCODER.encode(wire)
}

/** One buffer: the 2-byte length and the body. Throws frame_too_large past MAX_BODY. */
export function encodeFrame(frame: Frame): Buffer {
  if (frame.t === 'msg') return encodeMsgFrame(frame.id, frame.to, frame.from, frame.b)
  if (frame.t === 'part') return encodePartFrame(frame.id, frame.to, frame.from, frame.i, frame.n, frame.b)
  const body = (frame.t === 'batch' || frame.t === 'acks' || frame.t === 'zbatch' ? encodeRoutedBody(frame) : undefined) ?? encodeBody(frame)
  if (body.length > MAX_BODY) {
    throw new OutpostError('frame_too_large', `frame: ${frame.t} body is ${body.length} bytes, more than ${MAX_BODY} (split envelopes with splitEnvelope)`)
  }
  const out = Buffer.allocUnsafe(2 + body.length)
  out.writeUInt16BE(body.length, 0)
  out.set(body, 2)
  return out
}

function describe(v: unknown): string {
  if (v === undefined) return 'missing'
  if (v === null) return 'nil'
  if (v instanceof Uint8Array) return 'binary'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`
  if (typeof v === 'number') return `number ${v}`
  return typeof v
}

function checkField(where: string, kind: Kind, v: unknown): unknown {
  switch (kind) {
    case 'string':
    case 'string?':
      if (typeof v === 'string') return v
      throw invalid(`${where} must be a string, got ${describe(v)}`)
    case 'strings':
    case 'strings?':
      if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return v
      throw invalid(`${where} must be an array of strings, got ${describe(v)}`)
    case 'uint':
      if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v
      throw invalid(`${where} must be a non-negative integer, got ${describe(v)}`)
    case 'bytes':
      // Copy: the frame must not pin (or alias) the connection's receive buffers.
      if (v instanceof Uint8Array) return new Uint8Array(v)
      throw invalid(`${where} must be binary, got ${describe(v)}`)
    case 'bytesList':
      if (Array.isArray(v) && v.every((b) => b instanceof Uint8Array)) return v.map((b: Uint8Array) => new Uint8Array(b))
      throw invalid(`${where} must be an array of binaries, got ${describe(v)}`)
  }
}

/** Check a decoded body and build its frame; unknown fields are dropped (newer peers). */
function toFrame(value: unknown): Frame {
  if (typeof value === 'string') return { t: 'log', line: value }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw invalid(`body must be a map with a type t or a log line string, got ${describe(value)}`)
  }
  const map = value as Record<string, unknown>
  const t = map.t
  if (typeof t !== 'string') throw invalid(`t must be a string naming the frame type, got ${describe(t)}`)
  if (!Object.hasOwn(SHAPES, t)) throw invalid(`unknown frame type t ${describe(t)}`)
  const frame: Record<string, unknown> = { t }
  for (const [key, kind] of Object.entries(SHAPES[t as MapType]) as [string, Kind][]) {
    const v = map[key]
    if ((kind === 'string?' || kind === 'strings?') && (v === undefined || v === null)) continue
    frame[key] = checkField(`${t}.${key}`, kind, v)
  }
  if (t === 'part' && !((frame.n as number) >= 1 && (frame.i as number) < (frame.n as number))) {
    throw invalid(`part.i must be below part.n and part.n at least 1, got i ${String(frame.i)} of n ${String(frame.n)}`)
  }
  if (t === 'batch' && !((frame.ids as string[]).length >= 1 && (frame.ids as string[]).length === (frame.bs as Uint8Array[]).length)) {
    throw invalid(`batch.ids and batch.bs must be as long as each other and not empty, got ${(frame.ids as string[]).length} and ${(frame.bs as Uint8Array[]).length}`)
  }
  if ((t === 'acks' || t === 'zbatch') && (frame.ids as string[]).length === 0) throw invalid(`${t}.ids must not be empty`)
  return frame as unknown as Frame
}

/**
 * Turns a byte stream into frames. Chunks are queued, not concatenated; a frame's bytes are
 * copied once at most, so many small chunks cost linear time. After a throw the decoder is
 * unusable: the caller sends an error frame and closes the connection.
 */
export class FrameDecoder {
  #chunks: Uint8Array[] = []
  /** Bytes of #chunks[0] already consumed. */
  #offset = 0
  #buffered = 0
  /** Body length announced by the prefix just read; undefined while awaiting a prefix. */
  #need: number | undefined
  #failed: OutpostError | undefined
  readonly #views: boolean
  readonly #transient: boolean

  /**
   * `views`: msg frames' payloads may be views into the pushed chunks (for a caller that is done
   * with them before the next push, such as the hub forwarding them); by default they are copies.
   * Part frames' payloads are views either way (frame-layout.ts fastPart): the Reassembler copies
   * them into the whole message, the hub writes them out at once.
   * `transient`: the caller writes over a pushed chunk once push returns (the hub reads every
   * socket into one buffer, src/hub-read.ts): the bytes of a frame not yet complete are copied.
   */
  constructor(opts: { views?: boolean; transient?: boolean } = {}) {
    this.#views = opts.views === true
    this.#transient = opts.transient === true
  }

  /** Feed bytes as they arrive; returns the frames completed by them (often none). */
  push(chunk: Uint8Array): Frame[] {
    if (this.#failed !== undefined) throw this.#failed
    if (chunk.length > 0) {
      this.#chunks.push(chunk)
      this.#buffered += chunk.length
    }
    const frames: Frame[] = []
    try {
      for (;;) {
        if (this.#need === undefined) {
          if (this.#buffered < 2) break
          const head = this.#take(2)
          const n = ((head[0] ?? 0) << 8) | (head[1] ?? 0)
          if (n > MAX_BODY) throw new OutpostError('frame_too_large', `frame: length ${n} is more than ${MAX_BODY} bytes`)
          if (n === 0) throw invalid('empty body (length 0)')
          this.#need = n
        }
        if (this.#buffered < this.#need) break
        const body = this.#take(this.#need)
        this.#need = undefined
        const quick = fastMsg(body, this.#views) ?? fastPart(body) ?? decodeRoutedFrame(body, !this.#views)
        if (quick !== undefined) {
          frames.push(quick)
          continue
        }
        let value: unknown
        checkDepth(body, 'frame_invalid')
        try {
          value = DECODER.decode(body)
        } catch (err) {
          throw new OutpostError('frame_invalid', `frame: body is not MessagePack (${(err as Error).message})`, { cause: err })
        }
        frames.push(toFrame(value))
      }
    } catch (err) {
      this.#failed = err instanceof OutpostError ? err : new OutpostError('frame_invalid', `frame: ${String(err)}`, { cause: err })
      this.#chunks = []
      throw this.#failed
    }
    if (this.#transient && this.#chunks.includes(chunk)) this.#keepRest()
    return frames
  }

  /** What is buffered, copied into one chunk of its own (at most a frame's bytes). */
  #keepRest(): void {
    const rest = new Uint8Array(this.#buffered)
    let at = 0
    for (const [i, c] of this.#chunks.entries()) {
      const piece = i === 0 ? c.subarray(this.#offset) : c
      rest.set(piece, at)
      at += piece.length
    }
    this.#chunks = [rest]
    this.#offset = 0
  }

  /** The next n buffered bytes (n ≤ #buffered): a view when they sit in one chunk, else one copy. */
  #take(n: number): Uint8Array {
    const first = this.#chunks[0] as Uint8Array
    if (first.length - this.#offset >= n) {
      const out = first.subarray(this.#offset, this.#offset + n)
      this.#offset += n
      if (this.#offset === first.length) {
        this.#offset = 0
        this.#drop(1)
      }
      this.#buffered -= n
      return out
    }
    const out = new Uint8Array(n)
    let filled = 0
    let used = 0
    while (filled < n) {
      const c = this.#chunks[used] as Uint8Array
      const piece = c.subarray(this.#offset, this.#offset + (n - filled))
      out.set(piece, filled)
      filled += piece.length
      this.#offset += piece.length
      if (this.#offset === c.length) {
        used++
        this.#offset = 0
      }
    }
    this.#drop(used)
    this.#buffered -= n
    return out
  }

  #drop(count: number): void {
    if (count === 0) return
    // One splice per frame, not one shift per chunk.
    this.#chunks.splice(0, count)
  }
}

/** A node name is at most 63 characters; frames keep room for the `from` the hub stamps. */
export const FROM_ROOM = 63


/**
 * The frames that carry one envelope: a single msg frame when it fits, else part frames of
 * equal size (the last one shorter). Sizes leave room for a `from` of a full-length node name,
 * so frames still fit after the hub stamps the sender. The frames share memory with bytes.
 */
export function splitEnvelope(id: string, to: string, bytes: Uint8Array, from?: string): Array<MsgFrame | PartFrame> {
  const fromN = Math.max(FROM_ROOM, from === undefined ? 0 : Buffer.byteLength(from))
  const idN = Buffer.byteLength(id)
  const toN = Buffer.byteLength(to)
  const msgBase = msgOverhead(idN, toN, fromN)
  if (msgBase + binHeader(bytes.length) + bytes.length <= MAX_BODY) {
    const msg: MsgFrame = { t: 'msg', id, to, b: bytes }
    if (from !== undefined) msg.from = from
    return [msg]
  }
  const room = from !== undefined && Buffer.byteLength(from) > FROM_ROOM ? from : 'x'.repeat(FROM_ROOM)
  const empty = new Uint8Array(0)
  // i and n sized as the largest uint32 (5 bytes each), the slice header as bin16.
  const partBase = encodeBody({ t: 'part', id, to, from: room, i: 0xffffffff, n: 0xffffffff, b: empty }).length - binHeader(0)
  const size = MAX_BODY - partBase - binHeader(0xffff)
  if (size < 1) throw new OutpostError('frame_too_large', `frame: id and to are too long to leave room for data in a part frame`)
  const n = Math.ceil(bytes.length / size)
  const parts: PartFrame[] = []
  for (let i = 0; i < n; i++) {
    const part: PartFrame = { t: 'part', id, to, i, n, b: bytes.subarray(i * size, (i + 1) * size) }
    if (from !== undefined) part.from = from
    parts.push(part)
  }
  return parts
}

/**
 * Writes a frame to a socket: a part frame as its head and then its slice (not copied: the
 * slice must not change until written), any other as encodeFrame's one buffer. `written`: the
 * socket's write callback for the frame's last bytes. Returns the bytes written.
 */
export function writeFrame(sock: { write(b: Uint8Array, cb?: () => void): boolean }, f: Frame, written?: () => void): number {
  if (f.t === 'part') {
    const head = encodePartHead(f.id, f.to, f.from, f.i, f.n, f.b.length)
    sock.write(head)
    sock.write(f.b, written)
    return head.length + f.b.length
  }
  const bytes = encodeFrame(f)
  sock.write(bytes, written)
  return bytes.length
}

/** A payload in --debug lines: its size and its first 32 bytes in hex (no more, whatever it holds). */
export function abbreviate(bytes: Uint8Array, max = 32): string {
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, max)).toString('hex')
  return `${bytes.length} B ${head}${bytes.length > max ? '…' : ''}`
}
