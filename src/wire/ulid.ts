import { randomFillSync } from 'node:crypto'

// Crockford base32, as the ULID spec requires.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
// 48 bits of time in 10 characters: the first one is at most 7 (the largest ULID is 7ZZZ…Z).
const ULID_RE = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/

export interface UlidSource {
  now(): number
  random(bytes: Uint8Array): void
}

/** Random bytes drawn from the OS 4 KiB at a time: a draw per millisecond costs tens of µs. */
const pool = Buffer.alloc(4096)
let poolAt = pool.length

function pooledRandom(b: Uint8Array): void {
  if (poolAt + b.length > pool.length) {
    randomFillSync(pool)
    poolAt = 0
  }
  b.set(pool.subarray(poolAt, poolAt + b.length))
  poolAt += b.length
}

const defaultSource: UlidSource = { now: Date.now, random: pooledRandom }

/**
 * A monotonic ULID factory: ids made in the same millisecond still sort in creation order,
 * which keeps FIFO order readable in logs and reply files.
 */
export function ulidFactory(source: UlidSource = defaultSource): () => string {
  let lastTime = -1
  const rand = new Uint8Array(10) // 80 bits of randomness

  return function ulid(): string {
    const time = source.now()
    if (time > lastTime) {
      lastTime = time
      source.random(rand)
    } else if (!increment(rand)) {
      // 80 random bits ran out within one millisecond: borrow the next one, so order holds.
      lastTime++
    }
    return encode(lastTime, rand)
  }
}

const CODES = Buffer.from(ALPHABET, 'latin1')
const out = Buffer.alloc(26)

/**
 * 10 characters of time and 16 of randomness, written as bytes and read back as one flat
 * string (a string built by concatenation is a rope, flattened again by every Map lookup).
 */
function encode(time: number, rand: Uint8Array): string {
  let t = time
  for (let i = 9; i >= 0; i--) {
    out[i] = CODES[t % 32]!
    t = Math.floor(t / 32)
  }
  // 80 bits = 16 base32 characters, read 5 bits at a time.
  let acc = 0
  let bits = 0
  let at = 10
  for (let i = 0; i < rand.length; i++) {
    acc = (acc << 8) | rand[i]!
    bits += 8
    while (bits >= 5) {
      bits -= 5
      out[at++] = CODES[(acc >> bits) & 31]!
    }
    acc &= (1 << bits) - 1
  }
  return out.toString('latin1', 0, 26)
}

/** Add one to a big-endian number; false when it wrapped around to zero. */
function increment(bytes: Uint8Array): boolean {
  for (let i = bytes.length - 1; i >= 0; i--) {
    const v = (bytes[i] ?? 0) + 1
    bytes[i] = v & 0xff
    if (v <= 0xff) return true
  }
  return false
}

export const ulid = ulidFactory()

export function isUlid(s: string): boolean {
  return ULID_RE.test(s)
}

/** Milliseconds since the epoch encoded in a ULID. */
export function ulidTime(id: string): number {
  let t = 0
  for (let i = 0; i < 10; i++) t = t * 32 + ALPHABET.indexOf(id[i] ?? '0')
  return t
}
