/**
 * Output of a stream method, coalesced into reply-sized pieces: a piece goes out when
 * `maxBytes` have gathered or `maxDelayMs` after its first byte, whichever comes first.
 *
 *   chunk ─ push ─▶ buffer ─ ≥ maxBytes ───────────▶ flush(piece)
 *                          └ maxDelayMs timer ─────▶ flush(piece)     end() ─▶ what is left
 *
 * A piece never ends inside a UTF-8 sequence (the bytes are held for the next piece), so the
 * text of every reply decodes on its own. flush is called in order without waiting for the
 * previous call (the outbox orders messages by call), up to `window` calls in flight; past
 * that, push waits. After a failed flush no more are made.
 */

export interface CoalescerOptions {
  /** Called with each piece, in order; the next call waits for the previous promise. */
  flush: (piece: Uint8Array) => Promise<void>
  /** Default 4096. */
  maxBytes?: number
  /** Default 50. */
  maxDelayMs?: number
  /** flush calls in flight at most; default 64. */
  window?: number
}

export class Coalescer {
  private readonly o: Required<CoalescerOptions>
  private chunks: Buffer[] = []
  private size = 0
  private timer: NodeJS.Timeout | undefined
  private readonly inFlight = new Set<Promise<void>>()
  /** Cut pieces waiting for room in the window. */
  private ready: Uint8Array[] = []
  private failed: unknown

  constructor(o: CoalescerOptions) {
    this.o = { maxBytes: 4096, maxDelayMs: 50, window: 64, ...o }
  }

  /** Add output. Resolves when there is room for more (backpressure for the producer). */
  push(chunk: Uint8Array | string): Promise<void> {
    const b = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    if (b.length > 0) {
      this.chunks.push(b)
      this.size += b.length
      if (this.size >= this.o.maxBytes) this.cut('full')
      else this.timer ??= setTimeout(() => { this.timer = undefined; this.cut('timer') }, this.o.maxDelayMs)
    }
    return this.room()
  }

  /** Resolves once fewer than `window` pieces are waiting or in flight. */
  private async room(): Promise<void> {
    while (this.inFlight.size + this.ready.length >= this.o.window && this.inFlight.size > 0) await Promise.race(this.inFlight)
  }

  /** Start flushes, in order, while the window has room. */
  private pump(): void {
    while (this.inFlight.size < this.o.window && this.ready.length > 0) {
      const piece = this.ready.shift()!
      if (this.failed !== undefined) { this.ready = []; return }
      const p: Promise<void> = this.o.flush(piece)
        .catch((err: unknown) => { this.failed ??= err })
        .finally(() => { this.inFlight.delete(p); this.pump() })
      this.inFlight.add(p)
    }
  }

  /** Everything pushed, flushed; returns the bytes not flushed yet (for the final reply). */
  async end(): Promise<Uint8Array> {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    while (this.inFlight.size > 0) await Promise.race(this.inFlight)
    const rest = Buffer.concat(this.chunks)
    this.chunks = []
    this.size = 0
    return rest
  }

  /** The first flush failure (the outbox refused a reply), if any. */
  get error(): unknown {
    return this.failed
  }

  /**
   * Queue buffered bytes as pieces of at most maxBytes. `full`: only whole maxBytes pieces
   * (the rest waits for more or for the timer); `timer`: everything but a trailing partial
   * UTF-8 character; `all`: everything.
   */
  private cut(mode: 'full' | 'timer' | 'all'): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    let buf = Buffer.concat(this.chunks)
    while (buf.length > 0) {
      if (mode === 'full' && buf.length < this.o.maxBytes) break
      let n = Math.min(buf.length, this.o.maxBytes)
      if (mode !== 'all' || n < buf.length) n -= partialTail(buf.subarray(0, n))
      if (n <= 0) {
        if (buf.length < this.o.maxBytes) break // only a partial character left: it waits
        n = this.o.maxBytes // not UTF-8 at all: cut anyway
      }
      const piece = buf.subarray(0, n)
      buf = buf.subarray(n)
      this.ready.push(piece)
    }
    this.pump()
    this.chunks = buf.length > 0 ? [Buffer.from(buf)] : []
    this.size = buf.length
    // What is left goes after the delay at the latest (whole, if it is still a partial character then).
    if (buf.length > 0) this.timer = setTimeout(() => { this.timer = undefined; this.cut(mode === 'timer' ? 'all' : 'timer') }, this.o.maxDelayMs)
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
