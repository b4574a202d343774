/**
 * The sender's chunk buffers, used again once their chunk is acknowledged. A 256 KiB buffer a
 * chunk, freed for the garbage collector, is what starts most of the sender's full collections
 * (V8 starts one for every few MB of such external memory: 14–17 per 200 MB pushed); taken
 * from here, a push of any size allocates about a window's worth.
 *
 * A buffer comes back only when nothing can read it any more:
 *
 *   - the transport is tcp (`reusable`): a receiver's ACK means it got every byte of a send,
 *     so the socket has written them all; tcp keeps nothing to send again by itself. Not MQTT
 *     (MQTT.js keeps an unacknowledged publish in its store and sends it again after a
 *     reconnect, and the broker's PUBACK may come after the receiver's ACK), not NATS (its
 *     client holds what it was handed until its next flush, longer while disconnected), not
 *     a node's own delivery to itself (its file.chunk is ACKed before its write has run);
 *   - the chunk went to delivery exactly once (`handed`): with a second send (a timeout, a
 *     reconnect), the ACK may answer one send while another is still queued on a socket; and
 *     its message was made in this run (its bytes read by this process, not read again for a
 *     message stored before a restart, which a previous run may have sent and the ACK answer);
 *   - it was ACKed (`acked`), not given up or dropped with its transfer (`forget`: the buffer is
 *     left to the collector).
 *
 * Buffers are only ever the sender's own (chunkBuffer: allocUnsafeSlow, never a slice of
 * Node's shared pool), and only those of a full chunk's size are kept (the sender says so).
 */
import { chunkBuffer, HEAD_ROOM } from './chunk-ref'

/** Buffers kept for reuse at most (a window's worth is what a push needs). */
const KEEP_MAX = 64

export class ChunkPool {
  /** Chunk message id → its buffer and how many times it went to delivery. */
  private readonly lent = new Map<string, { room: Buffer; sends: number }>()
  private readonly free: Buffer[] = []

  /** reusable: the transport is tcp (above). */
  constructor(private readonly reusable: boolean) {}

  /** A buffer for a chunk of `len` bytes at HEAD_ROOM: a free one of that size, else a new one. */
  take(len: number): Buffer {
    const last = this.free[this.free.length - 1]
    if (last !== undefined && last.length === HEAD_ROOM + len) return this.free.pop()!
    return chunkBuffer(len)
  }

  /**
   * Chunk message `id` goes to delivery with `room` (at each send, the first or again). `reuse`:
   * its buffer may come back (a full chunk's, read in this run, not to the node itself).
   */
  handed(id: string, room: Buffer, reuse: boolean): void {
    if (!this.reusable) return
    const e = this.lent.get(id)
    if (e !== undefined) e.sends++
    else this.lent.set(id, { room, sends: reuse ? 1 : 2 })
  }

  /** Chunk message `id` was acknowledged: its buffer is free if it went out once. */
  acked(id: string): void {
    const e = this.lent.get(id)
    if (e === undefined) return
    this.lent.delete(id)
    if (e.sends === 1 && this.free.length < KEEP_MAX) this.free.push(e.room)
  }

  /** Chunk message `id` is done with otherwise (given up, its transfer stopped): left to the collector. */
  forget(id: string): void {
    this.lent.delete(id)
  }

  /** No transfer is sending: the free buffers go. */
  drain(): void {
    this.free.length = 0
  }

  /** Buffers free for reuse, and chunks out with a buffer that may come back (tests). */
  get sizes(): { free: number; lent: number } {
    return { free: this.free.length, lent: this.lent.size }
  }
}
