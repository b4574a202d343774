/**
 * Compression of wire payloads when it pays (transport.compress: auto | off). Used for the
 * envelopes of a tcp batch (zbatch frames, src/wire/batch.ts); nothing here knows frames, so
 * broker payloads may use it too.
 *
 *   bytes ≥ 1 KiB ─ deflateRaw ─▶ kept when at least 10% smaller, else undefined (send as is)
 *   compressed ─ inflateRaw, output capped ─▶ bytes | compressed_too_large (a bomb) | frame_invalid
 */
import zlib from 'node:zlib'
import { OutpostError } from '../errors'
import { MAX_BODY } from './framing'

export type CompressMode = 'auto' | 'off'

/** Below this, deflate rarely saves enough to pay for its CPU at both ends. */
const MIN_BYTES = 1024
/** Kept only when it saves at least this share of the bytes. */
const MIN_SAVING = 0.1

/** deflateRaw of `bytes` when mode is auto and it saves ≥ 10%, else undefined. */
export function maybeCompress(bytes: Uint8Array, mode: CompressMode): Uint8Array | undefined {
  if (mode === 'off' || bytes.length < MIN_BYTES) return undefined
  // Level 1: on a few KiB it saves nearly what level 6 does, at a fraction of the CPU.
  const z = zlib.deflateRawSync(bytes, { level: 1 })
  return z.length <= bytes.length * (1 - MIN_SAVING) ? z : undefined
}

/** The inflated bytes, never more than maxBytes (default: a frame's body): a bomb is refused before it grows. */
export function decompress(bytes: Uint8Array, maxBytes = MAX_BODY): Uint8Array {
  try {
    return zlib.inflateRawSync(bytes, { maxOutputLength: maxBytes })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new OutpostError('compressed_too_large', `compressed payload of ${bytes.length} bytes inflates past ${maxBytes} bytes; refused`, { cause: err })
    }
    throw new OutpostError('frame_invalid', `compressed payload of ${bytes.length} bytes is not deflate data (${(err as Error).message})`, { cause: err })
  }
}
