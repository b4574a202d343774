/**
 * The store's journal records, hand-encoded: one is written for every message, and a fixed
 * binary layout costs a fraction of a general MessagePack encode. Strings are u8-length-prefixed
 * UTF-8, numbers f64 big-endian, a trailing body takes the rest of the record.
 *
 *   1 enqueue      id dest seq createdAt expiresAt body
 *   2 remove       id
 *   3 attempt      id attempts nextAt
 *   4 seen         id at
 *   5 inbox add    id from at body          (receiver: recorded, implies seen)
 *   6 inbox start  id                       (the method is about to run)
 *   7 inbox done   id
 *   8 reply        id dest seq createdAt expiresAt doneId body   (enqueue + inbox done, atomically)
 *   9 enqueue      id dest seq createdAt expiresAt ackTimeout retries method replyMethod until body
 *                  (with its route, and for a request the record that authorises its replies)
 *  10 reply        id dest seq createdAt expiresAt ackTimeout retries method doneId body
 *
 * 9 and 10 carry what delivery needs (the route: ackTimeout and retries, NaN when the message
 * leaves them to the config, and the method), so it never decodes a body. An outpost before
 * them writes and reads 1 and 8 only: they are written while an upgrade may roll back (Outbox's
 * keepOldFormat), and a message from them has no route (delivery then reads the body).
 */
import { OutpostError } from '../errors'
import { asciiLength, SHORT } from '../wire/msgpack-write'

export const OP_ENQUEUE = 1
export const OP_REMOVE = 2
export const OP_ATTEMPT = 3
export const OP_SEEN = 4
export const OP_INBOX_ADD = 5
export const OP_INBOX_START = 6
export const OP_INBOX_DONE = 7
export const OP_REPLY = 8
export const OP_ENQUEUE_ROUTED = 9
export const OP_REPLY_ROUTED = 10
/** The highest op code: every record's first byte is 1..OP_MAX. */
export const OP_MAX = OP_REPLY_ROUTED

export type Op =
  | [typeof OP_ENQUEUE, string, string, number, number, number, Uint8Array]
  | [typeof OP_REMOVE, string]
  | [typeof OP_ATTEMPT, string, number, number]
  | [typeof OP_SEEN, string, number]
  | [typeof OP_INBOX_ADD, string, string, number, Uint8Array]
  | [typeof OP_INBOX_START, string]
  | [typeof OP_INBOX_DONE, string]
  | [typeof OP_REPLY, string, string, number, number, number, Uint8Array, string]
  | [typeof OP_ENQUEUE_ROUTED, string, string, number, number, number, number, number, string, string, number, Uint8Array]
  | [typeof OP_REPLY_ROUTED, string, string, number, number, number, number, number, string, string, Uint8Array]

/** How delivery sends a message: stored with it, so the body need not be decoded. */
export interface Route {
  /** The message's own ackTimeout and retries; undefined leaves them to the config. */
  ackTimeout?: number
  retries?: number
  method: string
}

/** What a message-carrying op (enqueue or reply, either form) holds. */
export interface MessageOp {
  id: string
  dest: string
  seq: number
  createdAt: number
  expiresAt: number
  body: Uint8Array
  route?: Route
  /** A reply: the inbox entry it closes. */
  doneId?: string
  /** A request: its reply method and until when a reply may come (the sent-request record). */
  request?: { replyMethod: string; until: number }
}

/** The message an op carries, or undefined for the other ops. */
export function messageOf(op: Op): MessageOp | undefined {
  switch (op[0]) {
    case OP_ENQUEUE:
      return { id: op[1], dest: op[2], seq: op[3], createdAt: op[4], expiresAt: op[5], body: op[6] }
    case OP_REPLY:
      return { id: op[1], dest: op[2], seq: op[3], createdAt: op[4], expiresAt: op[5], body: op[6], doneId: op[7] }
    case OP_ENQUEUE_ROUTED: {
      const m: MessageOp = { id: op[1], dest: op[2], seq: op[3], createdAt: op[4], expiresAt: op[5], body: op[11], route: routeOf(op[6], op[7], op[8]) }
      if (op[9] !== '') m.request = { replyMethod: op[9], until: op[10] }
      return m
    }
    case OP_REPLY_ROUTED:
      return { id: op[1], dest: op[2], seq: op[3], createdAt: op[4], expiresAt: op[5], body: op[10], route: routeOf(op[6], op[7], op[8]), doneId: op[9] }
    default:
      return undefined
  }
}

/** A new message of this node's (not a reply): what a full disk refuses. */
export function isNewMessage(op: Op): boolean {
  return op[0] === OP_ENQUEUE || op[0] === OP_ENQUEUE_ROUTED
}

/** A record's route fields (NaN: left to the config) as a Route. */
export function routeOf(ackTimeout: number, retries: number, method: string): Route {
  // Built field by field rather than spread: this runs for every message committed.
  const r = {} as Route
  if (!Number.isNaN(ackTimeout)) r.ackTimeout = ackTimeout
  if (!Number.isNaN(retries)) r.retries = retries
  r.method = method
  return r
}

/** The op that stores message `m` with its route (9 or 10). */
export function routedOp(m: MessageOp & { route: Route }): Op {
  const { ackTimeout = NaN, retries = NaN, method } = m.route
  return m.doneId !== undefined
    ? [OP_REPLY_ROUTED, m.id, m.dest, m.seq, m.createdAt, m.expiresAt, ackTimeout, retries, method, m.doneId, m.body]
    : [OP_ENQUEUE_ROUTED, m.id, m.dest, m.seq, m.createdAt, m.expiresAt, ackTimeout, retries, method, m.request?.replyMethod ?? '', m.request?.until ?? 0, m.body]
}

/**
 * The record of one message: with its route (9 or 10) when `routed`, else the records an older
 * outpost reads (1 or 8; a request's record then goes separately). Built field by field: this
 * runs for every message accepted.
 */
export function messageRecord(input: { id: string; dest: string; createdAt: number; expiresAt: number; body: Uint8Array; route?: Route; request?: { replyMethod: string; until: number } }, seq: number, doneId: string | undefined, routed: boolean): Op {
  const { id, dest, createdAt, expiresAt, body, route, request } = input
  if (!routed || route === undefined) return doneId !== undefined ? [OP_REPLY, id, dest, seq, createdAt, expiresAt, body, doneId] : [OP_ENQUEUE, id, dest, seq, createdAt, expiresAt, body]
  const m: MessageOp & { route: Route } = { id, dest, seq, createdAt, expiresAt, body, route }
  if (doneId !== undefined) m.doneId = doneId
  else if (request !== undefined) m.request = request
  return routedOp(m)
}

/** Ids and node names are ASCII in practice; their UTF-8 length must fit a byte. */
export const MAX_KEY_BYTES = 255

type Field = string | number | Uint8Array

export function encodeOp(op: Op): Buffer {
  // Field layout per op, in record order (the body, when present, last). Read in place (no
  // copy of the op, no buffer per string): this runs for every record journaled.
  const reply = op[0] === OP_REPLY
  const n = op.length
  let size = 1
  for (let i = 1; i < n; i++) {
    const f = op[i] as Field
    if (typeof f === 'string') {
      // Ids and names are short ASCII: measured here rather than by a call into C++.
      const ascii = f.length <= SHORT ? asciiLength(f) : -1
      const len = ascii >= 0 ? ascii : Buffer.byteLength(f, 'utf8')
      if (len > MAX_KEY_BYTES) throw new OutpostError('envelope_invalid', `store: ${JSON.stringify(f.slice(0, 40))}… is longer than ${MAX_KEY_BYTES} bytes`)
      size += 1 + len
    } else if (typeof f === 'number') {
      size += 8
    } else {
      size += f.length
    }
  }
  const buf = Buffer.allocUnsafe(size)
  buf[0] = op[0]
  let o = 1
  for (let k = 1; k < n; k++) {
    // OP_REPLY keeps its body (6) after doneId (7).
    const f = op[reply && k >= 6 ? 13 - k : k] as Field
    if (typeof f === 'string') {
      const chars = f.length
      if (chars <= SHORT && asciiLength(f) === chars) {
        // Copied here (see msgpack-write's putStr): cheaper than Buffer's write for a short string.
        buf[o] = chars
        for (let i = 0; i < chars; i++) buf[o + 1 + i] = f.charCodeAt(i)
        o += 1 + chars
        continue
      }
      const len = buf.write(f, o + 1, 'utf8')
      buf[o] = len
      o += 1 + len
    } else if (typeof f === 'number') {
      o = buf.writeDoubleBE(f, o)
    } else {
      buf.set(f, o)
      o += f.length
    }
  }
  return buf
}

const SHAPES: Record<number, string> = {
  [OP_ENQUEUE]: 'ssnnnb',
  [OP_REMOVE]: 's',
  [OP_ATTEMPT]: 'snn',
  [OP_SEEN]: 'sn',
  [OP_INBOX_ADD]: 'ssnb',
  [OP_INBOX_START]: 's',
  [OP_INBOX_DONE]: 's',
  [OP_REPLY]: 'ssnnnsb',
  [OP_ENQUEUE_ROUTED]: 'ssnnnnnssnb',
  [OP_REPLY_ROUTED]: 'ssnnnnnssb',
}

/** Decode a record; throws on one that is none of the known shapes (a newer or damaged file). */
export function decodeOp(rec: Uint8Array): Op {
  const buf = Buffer.isBuffer(rec) ? rec : Buffer.from(rec.buffer, rec.byteOffset, rec.byteLength)
  const type = buf[0]
  const shape = type === undefined ? undefined : SHAPES[type]
  if (shape === undefined) throw new Error(`unknown op ${type}`)
  const out: Field[] = [type!]
  let o = 1
  for (const kind of shape) {
    if (kind === 's') {
      const len = buf[o]
      if (len === undefined || o + 1 + len > buf.length) throw new Error(`op ${type}: record too short`)
      out.push(buf.toString('utf8', o + 1, o + 1 + len))
      o += 1 + len
    } else if (kind === 'n') {
      if (o + 8 > buf.length) throw new Error(`op ${type}: record too short`)
      out.push(buf.readDoubleBE(o))
      o += 8
    } else {
      // A copy: the record is a view into the whole segment file.
      out.push(new Uint8Array(buf.subarray(o)))
      o = buf.length
    }
  }
  if (type === OP_REPLY) {
    const [t, id, dest, seq, c, e, done, body] = out
    return [t, id, dest, seq, c, e, body, done] as Op
  }
  return out as Op
}
