/**
 * Puts envelopes split into parts (TCP `part` frames, MQTT/NATS chunks) back together, bounded
 * in size and time. Shared by transports/tcp.ts and transports/chunks.ts.
 */
import { OutpostError } from '../errors'
import type { PartFrame } from './framing'
import { wholeBuffer } from './whole-pool'

const invalid = (message: string): OutpostError => new OutpostError('frame_invalid', `frame: ${message}`)

export interface ReassemblerOptions {
  /** Largest envelope accepted, bytes (default 16 MiB). */
  maxBytes?: number
  /** Bytes all incomplete messages together may hold (default 4 × maxBytes): parts past it are refused. */
  maxPendingBytes?: number
  /** Incomplete messages idle this long are dropped by sweep() (default 60 s). */
  timeoutMs?: number
  now?: () => number
}

interface Pending {
  n: number
  parts: Map<number, Uint8Array>
  bytes: number
  /** Size of the parts before the last, once one is seen: they must all be equal. */
  size: number | undefined
  touched: number
}

/**
 * Puts part frames back together, per (sender, id). Parts may come in any order; duplicates
 * are ignored. Parts before the last must all have the same size (splitEnvelope makes them so),
 * which lets an oversized message be refused on its first part.
 */
export class Reassembler {
  readonly #maxBytes: number
  readonly #maxPendingBytes: number
  /** Bytes held by incomplete messages. */
  #pendingBytes = 0
  readonly #timeoutMs: number
  readonly #now: () => number
  readonly #pending = new Map<string, Pending>()

  constructor(options: ReassemblerOptions = {}) {
    this.#maxBytes = options.maxBytes ?? 16 * 1024 * 1024
    this.#maxPendingBytes = options.maxPendingBytes ?? 4 * this.#maxBytes
    this.#timeoutMs = options.timeoutMs ?? 60_000
    this.#now = options.now ?? Date.now
  }

  /** Messages waiting for parts. */
  get size(): number {
    return this.#pending.size
  }

  /** The whole envelope when this part completes it, else undefined. */
  add(part: PartFrame): Uint8Array | undefined {
    const key = JSON.stringify([part.from ?? '', part.id])
    try {
      return this.#add(key, part)
    } catch (err) {
      this.#drop(key)
      throw err
    }
  }

  #add(key: string, { id, i, n, b }: PartFrame): Uint8Array | undefined {
    if (!Number.isSafeInteger(n) || n < 1 || !Number.isSafeInteger(i) || i < 0 || i >= n) {
      throw invalid(`part ${i} of ${n} of message ${id} is out of range`)
    }
    if (b.length === 0) throw invalid(`part ${i} of message ${id} is empty`)
    const last = i === n - 1
    // Smallest total this part allows: every part is at least 1 byte, those before the last
    // as large as this one.
    const least = last ? n - 1 + b.length : (n - 1) * b.length + 1
    if (least > this.#maxBytes) throw this.#tooLarge(id, least)
    let p = this.#pending.get(key)
    if (p === undefined) {
      p = { n, parts: new Map(), bytes: 0, size: undefined, touched: 0 }
      this.#pending.set(key, p)
    }
    if (p.n !== n) throw invalid(`part ${i} of message ${id} says n ${n}, earlier parts said ${p.n}`)
    p.touched = this.#now()
    if (p.parts.has(i)) return undefined
    if (!last) {
      if (p.size !== undefined && p.size !== b.length) throw invalid(`part ${i} of message ${id} is ${b.length} bytes, earlier parts ${p.size}`)
      p.size = b.length
    }
    if (p.bytes + b.length > this.#maxBytes) throw this.#tooLarge(id, p.bytes + b.length)
    // Many messages started and never finished must not add up past the bound either.
    if (this.#pendingBytes + b.length > this.#maxPendingBytes) {
      throw new OutpostError('message_too_large', `message ${id}: incomplete messages already hold ${this.#pendingBytes} bytes, the most allowed is ${this.#maxPendingBytes}`)
    }
    p.parts.set(i, b)
    p.bytes += b.length
    this.#pendingBytes += b.length
    if (p.parts.size < n) return undefined
    this.#drop(key)
    // Parts may be views of a connection's receive buffers (frame-layout.ts): the whole is a copy.
    if (n === 1) return new Uint8Array(b)
    const out = wholeBuffer(p.bytes) // large ones given back by their reader when done (whole-pool.ts)
    let at = 0
    for (let k = 0; k < n; k++) {
      const slice = p.parts.get(k) as Uint8Array
      out.set(slice, at)
      at += slice.length
    }
    return out
  }

  #drop(key: string): void {
    const p = this.#pending.get(key)
    if (p === undefined) return
    this.#pendingBytes -= p.bytes
    this.#pending.delete(key)
  }

  /** Bytes held by incomplete messages. */
  get pendingBytes(): number {
    return this.#pendingBytes
  }

  #tooLarge(id: string, bytes: number): OutpostError {
    return new OutpostError('message_too_large', `message ${id} is at least ${bytes} bytes, more than the ${this.#maxBytes} allowed`)
  }

  /** Drop incomplete messages that got no part for longer than timeoutMs; returns their ids. */
  sweep(): string[] {
    const now = this.#now()
    const dropped: string[] = []
    for (const [key, p] of this.#pending) {
      if (now - p.touched <= this.#timeoutMs) continue
      this.#drop(key)
      dropped.push((JSON.parse(key) as [string, string])[1])
    }
    return dropped
  }
}
