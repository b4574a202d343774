/**
 * How the hub (src/hub-peer.ts socketPeer) writes frames to a socket: the frames of one tick are
 * encoded straight into a slab, a 64 KiB buffer taken from a pool, and the slab goes out with
 * one write when the tick ends (or when it is full). It goes back to the pool only once the
 * socket's write callback says its bytes have left (the socket keeps a queued buffer until then).
 *
 *   frame ─▶ encoded into the connection's slab (a part frame's payload copied, once) ─▶
 *     end of tick / slab full ─▶ sock.write(slab's bytes, cb) ─▶ cb ─▶ slab back to the pool
 *
 * Before (2026-12-06), a part frame went out as a fresh head buffer and a view of the receive
 * buffer, two writes a frame (64 a file chunk): the socket machinery per write, and the
 * receive buffers (64 KiB each) held by the queued writes, were most of the hub's CPU and its
 * full garbage collections. The copy (8 KiB a frame, a memcpy) costs less than either.
 */
import { MAX_FRAME, msgFrameSize, names, partHeadBytes, putMsgFrame, putPartHead } from './wire/frame-layout'
import { encodeFrame, type Frame } from './wire/framing'

/** Bytes of a slab: room for eight largest frames. */
export const SLAB_BYTES = 64 * 1024
/** Free slabs kept for reuse (shared by every connection of the process); past it they are left to the collector. */
const POOL_MAX = 64
/**
 * A write of at most this many bytes is copied out of its slab, and the slab goes back to the
 * pool at once. A socket keeps what it was handed until its peer reads it: a peer that reads
 * slowly or not at all, sent one small frame a tick (ACKs, replies), would otherwise hold a
 * whole 64 KiB slab for each few dozen bytes (a node that wrote 100k pings and never read drove
 * the hub to 836 MB). Past it a slab is mostly full: handed over as it is, no copy.
 */
export const COPY_BELOW = SLAB_BYTES / 4

const pool: Buffer[] = []
const noop = (): void => {}

function take(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafe(SLAB_BYTES)
}

function giveBack(slab: Buffer): void {
  if (pool.length < POOL_MAX) pool.push(slab)
}

/** Free slabs now (for tests). */
export function pooledSlabs(): number {
  return pool.length
}

/** What the writer needs of a socket. */
export interface FrameSink {
  write(b: Uint8Array, cb: (err?: Error | null) => void): boolean
}

/**
 * Frames for one socket. `write` throws frame_too_large (nothing written) for a frame past the
 * limit, as encodeFrame does; `flush` sends what the slab holds.
 */
export class SlabWriter {
  readonly #sock: FrameSink
  #slab: Buffer | undefined
  #used = 0
  #scheduled = false
  readonly #flushSoon = (): void => {
    this.#scheduled = false
    this.flush()
  }

  constructor(sock: FrameSink) {
    this.#sock = sock
  }

  write(f: Frame): void {
    let size: number
    if (f.t === 'part') {
      const h = names(f.id, f.to, f.from)
      const head = partHeadBytes(h, f.i, f.n, f.b.length)
      const at = this.#room(head + f.b.length)
      const slab = this.#slab!
      const end = putPartHead(slab, at, head, h, f.i, f.n, f.b.length)
      slab.set(f.b, end)
      size = head + f.b.length
    } else if (f.t === 'msg') {
      const h = names(f.id, f.to, f.from)
      size = msgFrameSize(h, f.b.length)
      const at = this.#room(size)
      putMsgFrame(this.#slab!, at, size, h, f.b)
    } else {
      const bytes = encodeFrame(f)
      size = bytes.length
      const at = this.#room(size)
      this.#slab!.set(bytes, at)
    }
    this.#used += size
    if (!this.#scheduled) {
      this.#scheduled = true
      process.nextTick(this.#flushSoon)
    }
  }

  /** Offset in the current slab where `size` bytes fit (every frame fits an empty slab: size ≤ MAX_FRAME). */
  #room(size: number): number {
    if (this.#slab !== undefined && this.#used + size > SLAB_BYTES) this.flush()
    this.#slab ??= take()
    return this.#used
  }

  /** Write out what the slab holds; the slab returns to the pool once the socket is done with it. */
  flush(): void {
    const slab = this.#slab
    if (slab === undefined || this.#used === 0) return
    const used = this.#used
    this.#slab = undefined
    this.#used = 0
    if (used <= COPY_BELOW) {
      const bytes = Buffer.allocUnsafe(used)
      slab.copy(bytes, 0, 0, used)
      giveBack(slab)
      this.#sock.write(bytes, noop)
      return
    }
    this.#sock.write(slab.subarray(0, used), () => giveBack(slab))
  }
}

// A slab must hold any one frame.
if (MAX_FRAME > SLAB_BYTES) throw new Error('SLAB_BYTES must be at least MAX_FRAME')
