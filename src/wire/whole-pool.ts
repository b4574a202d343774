/**
 * The buffers of large messages put back together from their parts (reassembler.ts), used
 * again once the one reader that may give them back is done: the file receiver, after a
 * chunk's write (src/files/receiver.ts). A 256 KiB buffer a chunk, freed for the garbage
 * collector, starts most of a receiving node's full collections (V8 starts one for every few
 * MB of such external memory: ~20 per 200 MB received).
 *
 *   Reassembler ─ wholeBuffer(n) ─▶ message ─▶ dispatcher ─▶ file.chunk (a sink) ─▶ pwrite ─ giveBack
 *
 * Only a buffer this module lent comes back (a WeakSet of them: a message read from the
 * journal after a restart, a node's delivery to itself, a message that came whole are not),
 * and each once. A message that is not given back (any other method, a duplicate, a refusal,
 * a failed write) is left to the collector as before. Free buffers go after IDLE_MS unused.
 */

/** Messages smaller than this get a buffer of their own, as before. */
const MIN = 64 * 1024
/** Sizes are rounded up to this: a chunk's envelope varies by a few bytes (its index, its sha256s). */
const ROUND = 4096
/** Free buffers kept at most (a window's worth of chunks). */
const KEEP = 16
const IDLE_MS = 10_000

const lent = new WeakSet<ArrayBuffer>()
const free: ArrayBuffer[] = []
let idle: NodeJS.Timeout | undefined

/** A Uint8Array of `n` bytes for a whole message: a free buffer that fits (at most ROUND larger), else a new one. */
export function wholeBuffer(n: number): Uint8Array {
  if (n < MIN) return new Uint8Array(n)
  let ab: ArrayBuffer | undefined
  for (let k = free.length - 1; k >= 0; k--) {
    const f = free[k]!
    if (f.byteLength >= n && f.byteLength - n < ROUND) { ab = f; free.splice(k, 1); break }
  }
  // Its own memory, not zero-filled (every byte is written by the parts).
  ab ??= Buffer.allocUnsafeSlow(Math.ceil(n / ROUND) * ROUND).buffer as ArrayBuffer
  lent.add(ab)
  return new Uint8Array(ab, 0, n)
}

/** `view` (or anything over the same memory) is not read any more by anyone: its buffer is free, if this module lent it. */
export function giveBack(view: Uint8Array): void {
  const ab = view.buffer as ArrayBuffer
  if (!lent.has(ab)) return
  lent.delete(ab)
  if (free.length >= KEEP) return
  free.push(ab)
  if (idle === undefined) {
    idle = setTimeout(() => { idle = undefined; free.length = 0 }, IDLE_MS)
    idle.unref()
  } else idle.refresh()
}

/** Free buffers (tests). */
export const freeWholeBuffers = (): number => free.length
