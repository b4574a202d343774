/**
 * A nesting-depth check for MessagePack bytes from the network, run before decoding them.
 * @msgpack/msgpack's Decoder has length limits but no depth limit, and a 16 MiB body of nested
 * one-element arrays took it 27 s and 2.3 GB to decode. Outpost's wire values are shallow (an
 * envelope's deepest field is `error.code`, depth 2), so anything deeper is refused at once.
 *
 * One pass over the headers; string, binary and extension payloads are skipped, not read.
 */
import { OutpostError } from '../errors'

/** Deepest nesting accepted on the wire (maps and arrays inside one another). */
export const MAX_DEPTH = 16

/** Throws `code` when containers nest deeper than maxDepth; truncated input is left to the decoder. */
export function checkDepth(bytes: Uint8Array, code: 'envelope_decode' | 'frame_invalid', maxDepth = MAX_DEPTH): void {
  // Items still expected at each open level; the top level expects one value.
  const left: number[] = [1]
  let at = 0
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const u8 = (): number => view.getUint8(at + 1)
  const u16 = (): number => view.getUint16(at + 1)
  const u32 = (): number => view.getUint32(at + 1)
  while (left.length > 0 && at < bytes.length) {
    // One value starts here: count it against its container.
    left[left.length - 1]!--
    const b = bytes[at]!
    let skip = 1
    let open = -1
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) skip = 1
    else if (b >= 0x80 && b <= 0x8f) open = (b & 0x0f) * 2
    else if (b >= 0x90 && b <= 0x9f) open = b & 0x0f
    else if (b >= 0xa0 && b <= 0xbf) skip = 1 + (b & 0x1f)
    else if (at + 5 > bytes.length) return // a truncated header: the decoder reports it
    else {
      switch (b) {
        case 0xc4: case 0xd9: skip = 2 + u8(); break
        case 0xc5: case 0xda: skip = 3 + u16(); break
        case 0xc6: case 0xdb: skip = 5 + u32(); break
        case 0xc7: skip = 3 + u8(); break
        case 0xc8: skip = 4 + u16(); break
        case 0xc9: skip = 6 + u32(); break
        case 0xca: case 0xce: case 0xd2: skip = 5; break
        case 0xcb: case 0xcf: case 0xd3: skip = 9; break
        case 0xcc: case 0xd0: skip = 2; break
        case 0xcd: case 0xd1: skip = 3; break
        case 0xd4: skip = 3; break
        case 0xd5: skip = 4; break
        case 0xd6: skip = 6; break
        case 0xd7: skip = 10; break
        case 0xd8: skip = 18; break
        case 0xdc: open = u16(); skip = 3; break
        case 0xdd: open = u32(); skip = 5; break
        case 0xde: open = u16() * 2; skip = 3; break
        case 0xdf: open = u32() * 2; skip = 5; break
        default: return // 0xc1 (never used): the decoder reports it
      }
    }
    at += skip
    if (open > 0) {
      if (left.length >= maxDepth) throw new OutpostError(code, `MessagePack nested deeper than ${maxDepth} levels; refused before decoding`)
      left.push(open)
    }
    while (left.length > 0 && left[left.length - 1] === 0) left.pop()
  }
}

/** Nesting an opArg may have: the envelope and `operation` take 2 of the levels a receiver decodes. */
const MAX_OPARG_DEPTH = MAX_DEPTH - 2

/**
 * Why a free-form value could not reach a receiver, or undefined: nested deeper than it decodes
 * (checkDepth above), or a `__proto__` key (the MessagePack decoder refuses it). Checked when the
 * message is submitted, so it is refused there instead of failing to encode (deeper than 100) or
 * being resent, never acknowledged, to a receiver that drops it.
 */
export function wireProblem(v: unknown, depth: number): string | undefined {
  if (typeof v !== 'object' || v === null) return undefined
  if (depth > MAX_OPARG_DEPTH) return `nests deeper than ${MAX_OPARG_DEPTH} levels`
  for (const [k, x] of Object.entries(v)) {
    if (k === '__proto__' && !Array.isArray(v)) return "has a key '__proto__'"
    const p = wireProblem(x, depth + 1)
    if (p !== undefined) return p
  }
  return undefined
}
