/**
 * Reading MessagePack by hand, for the hot path's fixed shapes (envelope-decode.ts's envelopes,
 * frame-routed.ts's routed frames, frame-layout.ts's msg and part frames): a cursor over one
 * buffer that reads exactly what the general Decoder would, and throws GIVE_UP for anything
 * else, so that the caller hands the bytes to the general path (which decodes them, or says
 * precisely what is wrong).
 */

/** Thrown by a Reader: these bytes are the general path's. */
export const GIVE_UP = Symbol('general path')

/** ASCII names up to this long are cached; a peer cannot grow the cache past NAMES_MAX. */
const NAME_MAX_BYTES = 128
const NAMES_MAX = 1024
const NAMES = new Map<number, string>()

const EMPTY = Buffer.alloc(0)

export class Reader {
  buf: Buffer = EMPTY
  at = 0
  end = 0

  /** Read `bytes` from the start; call done() after, so the reader does not hold them. */
  reset(bytes: Uint8Array): void {
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.at = 0
    this.end = bytes.length
  }

  done(): void {
    this.buf = EMPTY
  }

  need(n: number): void {
    if (this.at + n > this.end) throw GIVE_UP
  }

  /** The next byte, not consumed. */
  peek(): number {
    this.need(1)
    return this.buf[this.at]!
  }

  /** Whether the next bytes are `key` (a fixstr: its header and bytes); consumed when they are. */
  key(key: Uint8Array): boolean {
    const n = key.length
    if (this.at + n > this.end) return false
    for (let i = 0; i < n; i++) if (key[i] !== this.buf[this.at + i]) return false
    this.at += n
    return true
  }

  /** The length of the str at the cursor, which moves to its bytes. */
  strHeader(): number {
    const c = this.peek()
    let n: number
    if ((c & 0xe0) === 0xa0) { n = c & 0x1f; this.at += 1 }
    else if (c === 0xd9) { this.need(2); n = this.buf[this.at + 1]!; this.at += 2 }
    else if (c === 0xda) { this.need(3); n = this.buf.readUInt16BE(this.at + 1); this.at += 3 }
    else if (c === 0xdb) { this.need(5); n = this.buf.readUInt32BE(this.at + 1); this.at += 5 }
    else throw GIVE_UP
    this.need(n)
    return n
  }

  str(): string {
    const n = this.strHeader()
    const s = this.at
    this.at += n
    return this.utf8(s, n)
  }

  /**
   * A string that repeats from message to message (a node or method name): the cached string
   * when these bytes were read before, else decoded (and cached when ASCII).
   */
  name(): string {
    const n = this.strHeader()
    const s = this.at
    this.at += n
    if (n > NAME_MAX_BYTES) return this.utf8(s, n)
    const buf = this.buf
    let h = n
    for (let i = s; i < s + n; i++) {
      const b = buf[i]!
      if (b >= 0x80) return this.utf8(s, n)
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

  /**
   * UTF-8 as the general Decoder reads it. Where they differ (bytes that are not UTF-8, such as
   * the lone surrogates the Encoder writes as 3 bytes each, which Buffer reads as U+FFFD), the
   * general path takes the bytes.
   */
  private utf8(s: number, n: number): string {
    const text = this.buf.toString('utf8', s, s + n)
    if (text.includes('\ufffd')) throw GIVE_UP
    return text
  }

  /** An array header's count (fixarray, array16, array32). */
  arrayHeader(): number {
    const c = this.peek()
    let n: number
    if ((c & 0xf0) === 0x90) { n = c & 0x0f; this.at += 1 }
    else if (c === 0xdc) { this.need(3); n = this.buf.readUInt16BE(this.at + 1); this.at += 3 }
    else if (c === 0xdd) { this.need(5); n = this.buf.readUInt32BE(this.at + 1); this.at += 5 }
    else throw GIVE_UP
    // Each element is at least one byte: a count past what is left is a lie.
    this.need(n)
    return n
  }

  strs(): string[] {
    const n = this.arrayHeader()
    const a: string[] = []
    for (let j = 0; j < n; j++) a.push(this.str())
    return a
  }

  /** A bin: a Uint8Array view into the bytes read (as the general Decoder gives it), or a copy. */
  bin(copy = false): Uint8Array {
    const c = this.peek()
    let n: number
    if (c === 0xc4) { this.need(2); n = this.buf[this.at + 1]!; this.at += 2 }
    else if (c === 0xc5) { this.need(3); n = this.buf.readUInt16BE(this.at + 1); this.at += 3 }
    else if (c === 0xc6) { this.need(5); n = this.buf.readUInt32BE(this.at + 1); this.at += 5 }
    else throw GIVE_UP
    this.need(n)
    const buf = this.buf
    const v = copy ? new Uint8Array(buf.subarray(this.at, this.at + n)) : new Uint8Array(buf.buffer, buf.byteOffset + this.at, n)
    this.at += n
    return v
  }

  num(): number {
    const c = this.peek()
    const buf = this.buf
    const at = this.at
    if (c <= 0x7f) { this.at++; return c }
    if (c >= 0xe0) { this.at++; return c - 0x100 }
    switch (c) {
      case 0xcc: this.need(2); this.at += 2; return buf[at + 1]!
      case 0xcd: this.need(3); this.at += 3; return buf.readUInt16BE(at + 1)
      case 0xce: this.need(5); this.at += 5; return buf.readUInt32BE(at + 1)
      // 64-bit integers as the general Decoder reads them (a number; past 2^53 the caller's checks give up).
      case 0xcf: this.need(9); this.at += 9; return buf.readUInt32BE(at + 1) * 0x100000000 + buf.readUInt32BE(at + 5)
      case 0xd0: this.need(2); this.at += 2; return buf.readInt8(at + 1)
      case 0xd1: this.need(3); this.at += 3; return buf.readInt16BE(at + 1)
      case 0xd2: this.need(5); this.at += 5; return buf.readInt32BE(at + 1)
      case 0xd3: this.need(9); this.at += 9; return buf.readInt32BE(at + 1) * 0x100000000 + buf.readUInt32BE(at + 5)
      case 0xca: this.need(5); this.at += 5; return buf.readFloatBE(at + 1)
      case 0xcb: this.need(9); this.at += 9; return buf.readDoubleBE(at + 1)
      default: throw GIVE_UP
    }
  }
}
