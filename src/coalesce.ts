/**
 * Output of a stream method, coalesced into reply-sized pieces: a piece goes out when
 * `maxBytes` have gathered or `maxDelayMs` after its first byte, whichever comes first.
 *
 *   chunk ─ push ─▶ buffer ─ ≥ maxBytes ───────────▶ flush(piece)
 *                          └ maxDelayMs timer ─────▶ flush(piece)     end() ─▶ what is left
 *
 * A piece never ends inside a UTF-8 sequence (the bytes are held for the next piece), so the
 * text of every reply decodes on its own. flush calls run one at a time, in order.
 */

export interface CoalescerOptions {
  /** Called with each piece, in order; the next call waits for the previous promise. */
  flush: (piece: Uint8Array) => Promise<void>
  /** Default 4096. */
  maxBytes?: number
  /** Default 50. */
  maxDelayMs?: number
}

export class Coalescer {
  private readonly o: Required<CoalescerOptions>
  private chunks: Buffer[] = []
  private size = 0
  private timer: NodeJS.Timeout | undefined
  private chain: Promise<void> = Promise.resolve()
  private failed: unknown

  constructor(o: CoalescerOptions) {
    this.o = { maxBytes: 4096, maxDelayMs: 50, ...o }
  }

  /** Add output. Resolves when the pieces it completed are flushed (backpressure for the producer). */
  push(chunk: Uint8Array | string): Promise<void> {
    const b = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    if (b.length === 0) return this.chain
    this.chunks.push(b)
    this.size += b.length
    if (this.size >= this.o.maxBytes) {
      this.cut(false)
      return this.chain
    }
    this.timer ??= setTimeout(() => { this.timer = undefined; this.cut(false) }, this.o.maxDelayMs)
    return Promise.resolve()
  }

  /** Everything pushed, flushed; returns the bytes not flushed yet (for the final reply). */
  async end(): Promise<Uint8Array> {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    await this.chain
    const rest = Buffer.concat(this.chunks)
    this.chunks = []
    this.size = 0
    return rest
  }

  /** The first flush failure (the outbox refused a reply), if any. */
  get error(): unknown {
    return this.failed
  }

  /** Queue the buffered bytes as pieces of at most maxBytes; a trailing partial UTF-8 character stays. */
  private cut(all: boolean): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    let buf = Buffer.concat(this.chunks)
    const keep = all ? 0 : partialTail(buf)
    const rest = buf.subarray(buf.length - keep)
    buf = buf.subarray(0, buf.length - keep)
    while (buf.length > 0) {
      let n = Math.min(buf.length, this.o.maxBytes)
      if (n < buf.length) n -= partialTail(buf.subarray(0, n))
      if (n <= 0) n = Math.min(buf.length, this.o.maxBytes) // not UTF-8 at all: cut anyway
      const piece = buf.subarray(0, n)
      buf = buf.subarray(n)
      this.chain = this.chain.then(() => (this.failed === undefined ? this.o.flush(piece) : undefined)).catch((err: unknown) => { this.failed ??= err })
    }
    this.chunks = rest.length > 0 ? [Buffer.from(rest)] : []
    this.size = rest.length
    if (rest.length > 0) this.timer = setTimeout(() => { this.timer = undefined; this.cut(true) }, this.o.maxDelayMs)
  }
}

/** How many bytes at the end of b start a UTF-8 character that is not complete yet (0–3). */
export function partialTail(b: Uint8Array): number {
  for (let back = 1; back <= Math.min(3, b.length); back++) {
    const byte = b[b.length - back]!
    if ((byte & 0xc0) === 0x80) continue // a continuation byte: look further back
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1
    return need > back ? back : 0
  }
  return 0
}
