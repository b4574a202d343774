/**
 * Envelope → MessagePack on the hot path, by hand. Every message, reply and ACK is encoded once;
 * @msgpack/msgpack's general Encoder costs several µs each, a fixed-shape pass a fraction of
 * that. (Decoding by hand is envelope-decode.ts.)
 *
 *   encodeEnvelope: the bytes the general Encoder writes ({ ignoreUndefined }), byte for byte,
 *     for envelopes of plain fields; `error`/`operation` objects or unknown fields → undefined
 *     (the caller uses the general Encoder).
 *
 * test/wire/envelope.test.ts compares it against the general codec on random envelopes.
 */

import { SHORT, asciiLength, binHeader, putBin, putStr, strHeader } from './msgpack-write'

/** Field kinds this codec handles; the rest go the general way. */
type Plain = 'string' | 'strings' | 'number' | 'bool' | 'data'

const PLAIN: Record<string, Plain> = {
  id: 'string', toNode: 'string', fromNode: 'string', method: 'string', replyMethod: 'string',
  directory: 'string', fileName: 'string', inReplyTo: 'string',
  selector: 'string', keyFingerprint: 'string', sig: 'string', sigPath: 'string', notBefore: 'number', expiresAt: 'number',
  toNodes: 'strings', methodArgs: 'strings', replyMethodArgs: 'strings', ids: 'strings',
  exitCode: 'number', ackTimeout: 'number', retries: 'number', replyAckTimeout: 'number', replyRetries: 'number',
  methodTimeout: 'number', replyMethodTimeout: 'number', ttl: 'number', seq: 'number', createdAt: 'number',
  final: 'bool', data: 'data', stderr: 'data',
}

const KEYS = new Map<string, Buffer>(Object.keys(PLAIN).map((k) => [k, Buffer.concat([Buffer.from([0xa0 | k.length]), Buffer.from(k, 'latin1')])]))

const arrHead = (n: number): number => (n < 16 ? 1 : n < 0x10000 ? 3 : 5)

function numSize(v: number): number {
  if (!Number.isSafeInteger(v)) return 9
  if (v >= 0) return v < 0x80 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : v < 0x100000000 ? 5 : 9
  return v >= -0x20 ? 1 : v >= -0x80 ? 2 : v >= -0x8000 ? 3 : v >= -0x80000000 ? 5 : 9
}

/** Strings whose UTF-8 is not what Buffer writes (lone surrogates) go the general way. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

function strBytes(s: string): number {
  // Short plain ASCII (ids, names, methods) measured without a call into C++.
  if (s.length <= SHORT && asciiLength(s) >= 0) return s.length
  const n = Buffer.byteLength(s)
  // Every character 1 byte: plain ASCII. Otherwise make sure Buffer and the Encoder agree.
  if (n !== s.length && LONE_SURROGATE.test(s)) return -1
  return n
}

/**
 * Pass 1's findings for pass 2, reused from call to call (encodeEnvelope is synchronous and does
 * not nest): each field's key bytes and value in order, and each string's byte length. Pass 2
 * then walks these instead of the object again (no second for-in, property load or key lookup).
 */
const keysSeen: Buffer[] = []
const valuesSeen: unknown[] = []
const lens: number[] = []

/** Pass 1 gave up (the Encoder takes this envelope): forget the values it saw. */
function giveUp(count: number): undefined {
  for (let f = 0; f < count; f++) valuesSeen[f] = undefined
  return undefined
}

/** The envelope's MessagePack bytes, or undefined when it has fields this codec leaves to the Encoder. */
export function encodeEnvelope(env: object): Uint8Array | undefined {
  const o = env as Record<string, unknown>
  let size = 0
  let count = 0
  let nl = 0
  // Pass 1: validate shapes and size everything (strings measured once, kept for pass 2).
  for (const k in o) {
    const v = o[k]
    if (v === undefined) continue
    const key = KEYS.get(k)
    if (key === undefined) return giveUp(count)
    keysSeen[count] = key
    valuesSeen[count] = v
    count++
    size += key.length
    if (typeof v === 'string') {
      const n = strBytes(v)
      if (n < 0) return giveUp(count)
      lens[nl++] = n
      size += strHeader(n) + n
    } else if (typeof v === 'number') {
      size += numSize(v)
    } else if (typeof v === 'boolean') {
      size += 1
    } else if (v instanceof Uint8Array) {
      size += binHeader(v.length) + v.length
    } else if (Array.isArray(v)) {
      size += arrHead(v.length)
      for (const s of v) {
        if (typeof s !== 'string') return giveUp(count)
        const n = strBytes(s)
        if (n < 0) return giveUp(count)
        lens[nl++] = n
        size += strHeader(n) + n
      }
    } else {
      return giveUp(count)
    }
  }
  if (count >= 16) return giveUp(count)
  const out = allocBody(1 + size)
  out[0] = 0x80 | count
  let at = 1
  let li = 0
  for (let f = 0; f < count; f++) {
    const key = keysSeen[f]!
    const v = valuesSeen[f]
    valuesSeen[f] = undefined // not kept alive by this table
    // A key is a few bytes: copied here rather than by set() (a call each).
    for (let j = 0; j < key.length; j++) out[at + j] = key[j]!
    at += key.length
    if (typeof v === 'string') at = putStr(out, at, v, lens[li++]!)
    else if (typeof v === 'number') at = putNum(out, at, v)
    else if (typeof v === 'boolean') out[at++] = v ? 0xc3 : 0xc2
    else if (v instanceof Uint8Array) at = putBin(out, at, v)
    else {
      const a = v as string[]
      const n = a.length
      if (n < 16) out[at++] = 0x90 | n
      else if (n < 0x10000) { out[at++] = 0xdc; out.writeUInt16BE(n, at); at += 2 }
      else { out[at++] = 0xdd; out.writeUInt32BE(n, at); at += 4 }
      for (const s of a) at = putStr(out, at, s, lens[li++]!)
    }
  }
  return out
}

function putNum(out: Buffer, at: number, v: number): number {
  if (!Number.isSafeInteger(v)) { out[at] = 0xcb; out.writeDoubleBE(v, at + 1); return at + 9 }
  if (v >= 0) {
    if (v < 0x80) { out[at] = v; return at + 1 }
    if (v < 0x100) { out[at] = 0xcc; out[at + 1] = v; return at + 2 }
    if (v < 0x10000) { out[at] = 0xcd; out.writeUInt16BE(v, at + 1); return at + 3 }
    if (v < 0x100000000) { out[at] = 0xce; out.writeUInt32BE(v, at + 1); return at + 5 }
    out[at] = 0xcf
    out.writeUInt32BE(Math.floor(v / 0x100000000), at + 1)
    out.writeUInt32BE(v >>> 0, at + 5)
    return at + 9
  }
  if (v >= -0x20) { out[at] = 0xe0 | (v + 0x20); return at + 1 }
  if (v >= -0x80) { out[at] = 0xd0; out.writeInt8(v, at + 1); return at + 2 }
  if (v >= -0x8000) { out[at] = 0xd1; out.writeInt16BE(v, at + 1); return at + 3 }
  if (v >= -0x80000000) { out[at] = 0xd2; out.writeInt32BE(v, at + 1); return at + 5 }
  out[at] = 0xd3
  out.writeInt32BE(Math.floor(v / 0x100000000), at + 1)
  out.writeUInt32BE(v >>> 0, at + 5)
  return at + 9
}

/**
 * Encoded envelopes are cut from slabs rather than allocated one by one. A message waiting in
 * the outbox keeps its body until a snapshot moves it to a body file; 100k of them allocated
 * one at a time (Buffer's 8 KiB pool, each piece from malloc) leave the malloc heap fragmented
 * at its high-water mark once they are freed (~40 MB of RSS after a 100k burst). A slab is its
 * own mapping, returned whole to the system once no body in it is referenced: after the
 * snapshot that stores them. A body that outlives its neighbours keeps its slab (at most
 * SLAB bytes), the same trade Buffer's own pool makes at 8 KiB.
 *
 * Its own mapping whatever glibc's mmap threshold: that threshold starts at 128 KiB but rises
 * to the size of the largest mapped block the process frees, up to 32 MiB (a 13 MB snapshot
 * export, sql.js's database file as it grows, a 700 KB audit write), and from then on a block
 * below it is carved from the heap, which keeps it once freed (glibc trims the heap's top only
 * past twice the threshold, and never the holes under live blocks). install.sh's service fixes
 * the threshold at 256 KiB; started by hand, 320 KiB slabs from malloc stayed in the heap:
 * ~15 MB of the agent's RSS with 100k waiting (docs/performance.md, "session 13").
 *
 * Every ArrayBuffer comes from malloc but one kind: a WebAssembly.Memory's, which V8 maps
 * itself (an address-space reservation, 10 GiB on 64-bit hosts, of which SLAB bytes are
 * usable; pages are resident only once written) and unmaps when the memory is collected. V8
 * counts it as SLAB bytes of external memory, as it would a Buffer. Typed-array access to it is
 * as fast as to any Buffer (a resizable ArrayBuffer, the other way round malloc, is ~20x slower
 * to index). If V8 cannot reserve one (an address-space limit, `ulimit -v`), a Buffer as before.
 */
export const SLAB = 4 * 1024 * 1024
const WASM_PAGE = 64 * 1024
/** Larger bodies get an allocation of their own. */
const SLAB_MAX_PIECE = 4096
let slab: Buffer | undefined
let slabUsed = SLAB

const WASM = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer } } }).WebAssembly

function newSlab(): Buffer {
  try {
    return Buffer.from(new WASM.Memory({ initial: SLAB / WASM_PAGE, maximum: SLAB / WASM_PAGE }).buffer, 0, SLAB)
  } catch {
    return Buffer.allocUnsafeSlow(SLAB)
  }
}

/**
 * Cut the next body from a new slab: called once a burst is over and its messages are in the
 * store, so the collection that follows can unmap the slab they were cut from (up to SLAB bytes
 * written) instead of keeping it for the next few bodies.
 */
export function retireSlab(): void {
  slab = undefined
  slabUsed = SLAB
}

function allocBody(n: number): Buffer {
  if (n > SLAB_MAX_PIECE) return Buffer.allocUnsafe(n)
  if (slabUsed + n > SLAB) {
    slab = newSlab()
    slabUsed = 0
  }
  const b = slab!.subarray(slabUsed, slabUsed + n)
  slabUsed += (n + 7) & ~7 // 8-byte aligned, as Buffer's pool does
  return b
}
