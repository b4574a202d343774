/**
 * Envelope bytes → a checked Envelope, by hand: every message, reply and ACK a node receives is
 * decoded once here. The general path (a depth check, @msgpack/msgpack's Decoder, then
 * checkWire in envelope.ts) builds the map, then a checked copy of it; this pass reads each
 * field, checks it as checkWire would and keeps it, in one go.
 *
 *   bytes ─ decodeWireEnvelope ─▶ Envelope: a map of known fields of plain kinds, each as checkWire
 *                                 takes it (toNodes dropped, nil = absent, createdAt 0 when missing)
 *                              └▶ undefined: anything else (an unknown field, `error` or `operation`,
 *                                 a value checkWire refuses, a missing required field, 64-bit
 *                                 integers past 2^53, trailing or missing bytes) → the general
 *                                 path, which decodes it or throws the full error message.
 *
 * Field names are matched on their bytes (no string is made for a key), first against the field
 * found at the same place in the envelopes before; node and method names, which repeat from
 * message to message, are the last envelope's when the bytes are the same, else from a small
 * cache rather than being decoded each time (msgpack-read.ts). test/wire/envelope.test.ts compares it with the general path on random
 * and malformed envelopes.
 */
import type { Envelope } from './envelope'
import { GIVE_UP, Reader } from './msgpack-read'

const STRING = 1
const STRINGS = 2
const UINT = 3
const INT = 4
const BOOL = 5
const DATA = 6
/** A string that repeats between messages (node and method names): Reader.name(). */
const NAME = 7
/** Read and dropped, as checkWire drops it. */
const SKIP = 8

/** The envelope's fields of plain kinds (envelope.ts FIELDS, less `error` and `operation`). */
const KINDS: Record<string, number> = {
  id: STRING, toNode: NAME, toNodes: SKIP, fromNode: NAME, method: NAME, methodArgs: STRINGS,
  replyMethod: NAME, replyMethodArgs: STRINGS, data: DATA, stderr: DATA, exitCode: INT,
  ackTimeout: UINT, retries: UINT, replyAckTimeout: UINT, replyRetries: UINT, methodTimeout: UINT,
  replyMethodTimeout: UINT, ttl: UINT, directory: STRING, fileName: STRING, inReplyTo: STRING,
  ids: STRINGS, seq: UINT, final: BOOL, createdAt: UINT, selector: STRING, notBefore: UINT,
  expiresAt: UINT, keyFingerprint: NAME, sig: STRING, sigPath: STRING,
}

type Out = Record<string, unknown>
/** Stores one field's value. */
type Setter = (o: Out, v: unknown) => void

interface Field {
  name: string
  kind: number
  bytes: Buffer
  set: Setter
  /** A NAME field's value in the last envelope that had it, when ASCII (lastName). */
  last: string
}

/*
 * A named store per field: fields come in the same order from message to message, so each store
 * follows the same map transition; `out[f.name] = v` was one keyed store site for every field of
 * every envelope (megamorphic). ~10% of a decode in a loop.
 */
const SETTERS: Record<string, Setter> = {
  id: (o, v) => { o.id = v }, toNode: (o, v) => { o.toNode = v }, toNodes: () => {}, fromNode: (o, v) => { o.fromNode = v },
  method: (o, v) => { o.method = v }, methodArgs: (o, v) => { o.methodArgs = v }, replyMethod: (o, v) => { o.replyMethod = v },
  replyMethodArgs: (o, v) => { o.replyMethodArgs = v }, data: (o, v) => { o.data = v }, stderr: (o, v) => { o.stderr = v },
  exitCode: (o, v) => { o.exitCode = v }, ackTimeout: (o, v) => { o.ackTimeout = v }, retries: (o, v) => { o.retries = v },
  replyAckTimeout: (o, v) => { o.replyAckTimeout = v }, replyRetries: (o, v) => { o.replyRetries = v },
  methodTimeout: (o, v) => { o.methodTimeout = v }, replyMethodTimeout: (o, v) => { o.replyMethodTimeout = v }, ttl: (o, v) => { o.ttl = v },
  directory: (o, v) => { o.directory = v }, fileName: (o, v) => { o.fileName = v }, inReplyTo: (o, v) => { o.inReplyTo = v },
  ids: (o, v) => { o.ids = v }, seq: (o, v) => { o.seq = v }, final: (o, v) => { o.final = v }, createdAt: (o, v) => { o.createdAt = v },
  selector: (o, v) => { o.selector = v }, notBefore: (o, v) => { o.notBefore = v }, expiresAt: (o, v) => { o.expiresAt = v },
  keyFingerprint: (o, v) => { o.keyFingerprint = v }, sig: (o, v) => { o.sig = v }, sigPath: (o, v) => { o.sigPath = v },
}

function hashBytes(b: Uint8Array, at: number, n: number): number {
  let h = n
  for (let i = at; i < at + n; i++) h = (Math.imul(h, 31) + b[i]!) | 0
  return h
}

/** Field by the hash of its name's bytes (checked here to be without collisions). */
const FIELD_BY_HASH = new Map<number, Field>()
for (const [name, kind] of Object.entries(KINDS)) {
  const bytes = Buffer.from(name, 'latin1')
  const h = hashBytes(bytes, 0, bytes.length)
  if (FIELD_BY_HASH.has(h)) throw new Error(`envelope-decode: field names ${name} and ${FIELD_BY_HASH.get(h)!.name} share a hash`)
  const set = SETTERS[name]
  if (set === undefined) throw new Error(`envelope-decode: no setter for field ${name}`)
  FIELD_BY_HASH.set(h, { name, kind, bytes, set, last: '' })
}

const r = new Reader()
/** The field found at each place of the envelopes decoded before (fields come in the same order from message to message). */
const AT_PLACE: (Field | undefined)[] = []

/** The checked envelope in `bytes`, or undefined for the general path (see above). */
export function decodeWireEnvelope(bytes: Uint8Array): Envelope | undefined {
  r.reset(bytes)
  try {
    return readEnvelope()
  } catch (err) {
    if (err === GIVE_UP) return undefined
    throw err
  } finally {
    r.done()
  }
}

function readEnvelope(): Envelope | undefined {
  const h = r.peek()
  if ((h & 0xf0) !== 0x80) return undefined
  const count = h & 0x0f
  r.at = 1
  const out: Out = {}
  for (let i = 0; i < count; i++) {
    const kh = r.peek()
    if ((kh & 0xe0) !== 0xa0) return undefined
    const kn = kh & 0x1f
    r.need(1 + kn)
    // The field at this place last time, when its name's bytes are these: no hash, no lookup.
    let f = AT_PLACE[i]
    if (f === undefined || !sameBytes(f.bytes, r.at + 1, kn)) {
      f = FIELD_BY_HASH.get(hashBytes(r.buf, r.at + 1, kn))
      if (f === undefined || !sameBytes(f.bytes, r.at + 1, kn)) return undefined
      AT_PLACE[i] = f
    }
    r.at += 1 + kn
    if (r.peek() === 0xc0) {
      // nil: absent, as in checkWire; unless it undoes an earlier value of the same field.
      if (out[f.name] !== undefined) return undefined
      r.at++
      continue
    }
    f.set(out, f.kind === NAME ? lastName(f) : readValue(f.kind))
  }
  if (r.at !== r.end) return undefined
  if (!required(out.id) || !required(out.toNode) || !required(out.fromNode) || !required(out.method)) return undefined
  if (out.createdAt === undefined) out.createdAt = 0
  return out as unknown as Envelope
}

function sameBytes(key: Buffer, s: number, n: number): boolean {
  if (key.length !== n) return false
  for (let i = 0; i < n; i++) if (key[i] !== r.buf[s + i]) return false
  return true
}

const required = (v: unknown): boolean => typeof v === 'string' && v !== ''

/** A value of `kind` at the cursor, as checkWire would keep it; GIVE_UP for any other. */
function readValue(kind: number): unknown {
  const c = r.peek()
  switch (kind) {
    case STRING: return r.str()
    case NAME: return r.name()
    case DATA: return c >= 0xc4 && c <= 0xc6 ? r.bin() : r.str()
    case STRINGS: return r.strs()
    case UINT: {
      const n = r.num()
      if (!Number.isSafeInteger(n) || n < 0) throw GIVE_UP
      return n
    }
    case INT: {
      const n = r.num()
      if (!Number.isSafeInteger(n)) throw GIVE_UP
      return n
    }
    case BOOL:
      if (c !== 0xc2 && c !== 0xc3) throw GIVE_UP
      r.at++
      return c === 0xc3
    default: // SKIP
      if ((c & 0xf0) === 0x90 || c === 0xdc) return r.strs()
      if ((c & 0xe0) === 0xa0 || (c >= 0xd9 && c <= 0xdb)) return r.str()
      return r.num()
  }
}

/**
 * A NAME field's value: the string it had in the last envelope when these are its bytes (the
 * same node and method names come message after message), else Reader.name(). Only an ASCII
 * value is kept, so comparing its characters with the bytes is comparing its UTF-8.
 */
function lastName(f: Field): string {
  const last = f.last
  const n = last.length
  if (n > 0 && n < 32 && r.peek() === (0xa0 | n) && r.at + 1 + n <= r.end) {
    const buf = r.buf
    const s = r.at + 1
    let same = true
    for (let i = 0; i < n; i++) if (last.charCodeAt(i) !== buf[s + i]) { same = false; break }
    if (same) { r.at = s + n; return last }
  }
  const v = r.name()
  f.last = isAscii(v) ? v : ''
  return v
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false
  return true
}
