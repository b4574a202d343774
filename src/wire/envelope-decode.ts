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
 * Field names are matched on their bytes (no string is made for a key), and node and method
 * names, which repeat from message to message, come from a small cache rather than being
 * decoded each time. test/wire/envelope.test.ts compares it with the general path on random
 * and malformed envelopes.
 */
import type { Envelope } from './envelope'

const STRING = 1
const STRINGS = 2
const UINT = 3
const INT = 4
const BOOL = 5
const DATA = 6
/** A string that repeats between messages (node and method names): looked up in NAMES. */
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

interface Field { name: string; kind: number; bytes: Buffer }

function hashBytes(b: Uint8Array, at: number, n: number): number {
  let h = n
  for (let i = at; i < at + n; i++) h = (Math.imul(h, 31) + b[i]!) | 0
  return h
}

/** Field by the hash of its name's bytes (checked below to be without collisions). */
const FIELD_BY_HASH = new Map<number, Field>()
for (const [name, kind] of Object.entries(KINDS)) {
  const bytes = Buffer.from(name, 'latin1')
  const h = hashBytes(bytes, 0, bytes.length)
  if (FIELD_BY_HASH.has(h)) throw new Error(`envelope-decode: field names ${name} and ${FIELD_BY_HASH.get(h)!.name} share a hash`)
  FIELD_BY_HASH.set(h, { name, kind, bytes })
}

/** ASCII names up to this long are cached; a sender cannot grow the cache past NAMES_MAX. */
const NAME_MAX_BYTES = 128
const NAMES_MAX = 1024
const NAMES = new Map<number, string>()

/** Thrown inside the decoder to give the envelope to the general path. */
const GIVE_UP = Symbol('general path')

let buf: Buffer
let at = 0
let end = 0

/** The checked envelope in `bytes`, or undefined for the general path (see above). */
export function decodeWireEnvelope(bytes: Uint8Array): Envelope | undefined {
  buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  at = 0
  end = bytes.length
  try {
    return readEnvelope()
  } catch (err) {
    if (err === GIVE_UP) return undefined
    throw err
  } finally {
    buf = EMPTY
  }
}

const EMPTY = Buffer.alloc(0)

function need(n: number): void {
  if (at + n > end) throw GIVE_UP
}

function readEnvelope(): Envelope | undefined {
  need(1)
  const h = buf[0]!
  if ((h & 0xf0) !== 0x80) return undefined
  const count = h & 0x0f
  at = 1
  const out: Record<string, unknown> = {}
  for (let i = 0; i < count; i++) {
    need(1)
    const kh = buf[at]!
    if ((kh & 0xe0) !== 0xa0) return undefined
    const kn = kh & 0x1f
    need(1 + kn)
    const f = FIELD_BY_HASH.get(hashBytes(buf, at + 1, kn))
    if (f === undefined || !sameBytes(f.bytes, at + 1, kn)) return undefined
    at += 1 + kn
    need(1)
    if (buf[at] === 0xc0) {
      // nil: absent, as in checkWire; unless it undoes an earlier value of the same field.
      if (out[f.name] !== undefined) return undefined
      at++
      continue
    }
    const v = readValue(f.kind)
    if (f.kind !== SKIP) out[f.name] = v
  }
  if (at !== end) return undefined
  if (!required(out.id) || !required(out.toNode) || !required(out.fromNode) || !required(out.method)) return undefined
  if (out.createdAt === undefined) out.createdAt = 0
  return out as unknown as Envelope
}

function sameBytes(key: Buffer, s: number, n: number): boolean {
  if (key.length !== n) return false
  for (let i = 0; i < n; i++) if (key[i] !== buf[s + i]) return false
  return true
}

const required = (v: unknown): boolean => typeof v === 'string' && v !== ''

/** A value of `kind` at `at`, as checkWire would keep it; GIVE_UP for any other. */
function readValue(kind: number): unknown {
  const c = buf[at]!
  switch (kind) {
    case STRING: return readStr(false)
    case NAME: return readStr(true)
    case DATA:
      if (c >= 0xc4 && c <= 0xc6) return readBin()
      return readStr(false)
    case STRINGS: return readStrs()
    case UINT: {
      const n = readNum()
      if (!Number.isSafeInteger(n) || n < 0) throw GIVE_UP
      return n
    }
    case INT: {
      const n = readNum()
      if (!Number.isSafeInteger(n)) throw GIVE_UP
      return n
    }
    case BOOL:
      if (c !== 0xc2 && c !== 0xc3) throw GIVE_UP
      at++
      return c === 0xc3
    default: // SKIP
      if ((c & 0xf0) === 0x90 || c === 0xdc) return readStrs()
      if ((c & 0xe0) === 0xa0 || (c >= 0xd9 && c <= 0xdb)) return readStr(false)
      return readNum()
  }
}

function readStr(name: boolean): string {
  need(1)
  const c = buf[at]!
  let n: number
  if ((c & 0xe0) === 0xa0) { n = c & 0x1f; at += 1 }
  else if (c === 0xd9) { need(2); n = buf[at + 1]!; at += 2 }
  else if (c === 0xda) { need(3); n = buf.readUInt16BE(at + 1); at += 3 }
  else if (c === 0xdb) { need(5); n = buf.readUInt32BE(at + 1); at += 5 }
  else throw GIVE_UP
  need(n)
  const s = at
  at += n
  return name && n <= NAME_MAX_BYTES ? cachedName(s, n) : utf8(s, n)
}

/**
 * UTF-8 as the general Decoder reads it. Where they differ (bytes that are not UTF-8, such as
 * the lone surrogates the Encoder writes as 3 bytes each, which Buffer reads as U+FFFD), the
 * general path decodes the envelope.
 */
function utf8(s: number, n: number): string {
  const text = buf.toString('utf8', s, s + n)
  if (text.includes('\ufffd')) throw GIVE_UP
  return text
}

/** A node or method name: the cached string when these bytes were seen before. */
function cachedName(s: number, n: number): string {
  let h = n
  for (let i = s; i < s + n; i++) {
    const b = buf[i]!
    if (b >= 0x80) return utf8(s, n)
    h = (Math.imul(h, 31) + b) | 0
  }
  const hit = NAMES.get(h)
  if (hit !== undefined && hit.length === n) {
    let same = true
    for (let i = 0; i < n; i++) if (hit.charCodeAt(i) !== buf[s + i]) { same = false; break }
    if (same) return hit
  }
  const text = buf.toString('latin1', s, s + n)
  if (NAMES.size >= NAMES_MAX) NAMES.clear()
  NAMES.set(h, text)
  return text
}

function readStrs(): string[] {
  const c = buf[at]!
  let n: number
  if ((c & 0xf0) === 0x90) { n = c & 0x0f; at += 1 }
  else if (c === 0xdc) { need(3); n = buf.readUInt16BE(at + 1); at += 3 }
  else if (c === 0xdd) { need(5); n = buf.readUInt32BE(at + 1); at += 5 }
  else throw GIVE_UP
  // Each element is at least one byte: a count past what is left is a lie.
  need(n)
  const a: string[] = []
  for (let j = 0; j < n; j++) a.push(readStr(false))
  return a
}

/** bytes: a Uint8Array view into the received bytes, as the general Decoder gives them. */
function readBin(): Uint8Array {
  const c = buf[at]!
  let n: number
  if (c === 0xc4) { need(2); n = buf[at + 1]!; at += 2 }
  else if (c === 0xc5) { need(3); n = buf.readUInt16BE(at + 1); at += 3 }
  else { need(5); n = buf.readUInt32BE(at + 1); at += 5 }
  need(n)
  const v = new Uint8Array(buf.buffer, buf.byteOffset + at, n)
  at += n
  return v
}

function readNum(): number {
  const c = buf[at]!
  if (c <= 0x7f) { at++; return c }
  if (c >= 0xe0) { at++; return c - 0x100 }
  let v: number
  switch (c) {
    case 0xcc: need(2); v = buf[at + 1]!; at += 2; return v
    case 0xcd: need(3); v = buf.readUInt16BE(at + 1); at += 3; return v
    case 0xce: need(5); v = buf.readUInt32BE(at + 1); at += 5; return v
    // 64-bit integers as the general Decoder reads them (a number; past 2^53 the checks give up).
    case 0xcf: need(9); v = buf.readUInt32BE(at + 1) * 0x100000000 + buf.readUInt32BE(at + 5); at += 9; return v
    case 0xd0: need(2); v = buf.readInt8(at + 1); at += 2; return v
    case 0xd1: need(3); v = buf.readInt16BE(at + 1); at += 3; return v
    case 0xd2: need(5); v = buf.readInt32BE(at + 1); at += 5; return v
    case 0xd3: need(9); v = buf.readInt32BE(at + 1) * 0x100000000 + buf.readUInt32BE(at + 5); at += 9; return v
    case 0xca: need(5); v = buf.readFloatBE(at + 1); at += 5; return v
    case 0xcb: need(9); v = buf.readDoubleBE(at + 1); at += 9; return v
    default: throw GIVE_UP
  }
}
