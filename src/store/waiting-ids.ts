/**
 * The ids of format 4's stored messages (outbox-records.ts), without a JS string or a Map entry
 * each: each id's UTF-8 bytes packed in one buffer, a 32-bit hash of them a slot, and an
 * open-addressing table (linear probing, at most half full) of slots by hash. A hit compares the
 * hash, then the bytes. ~45 bytes a message with 26-byte ids, against ~90 for a string in a Map.
 *
 *   per slot:  hash[slot]   idAt[slot] ─▶ packed: [u8 length][id bytes]
 *   table:     slot + 1 at (hash & mask), or the next free place after it; 0: empty
 *
 * Removal shifts the entries after it back (no tombstones); packed bytes of removed ids are
 * reclaimed by copying the live ones to a new buffer once they are most of it.
 */

/** A hash of bytes [start, end) of `b` (FNV-1a, then murmur3's finaliser for the low bits the table uses). */
export type IdHash = (b: Uint8Array, start: number, end: number) => number

export const fnv1a: IdHash = (b, start, end) => {
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193)
  return mix(h)
}

function mix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** The most bytes an id may have (a record keeps its length in one byte). */
const MAX_ID = 255
/** Bytes of one ASCII id encoded in JavaScript (no call into C++ per lookup). */
const scratch = Buffer.allocUnsafe(MAX_ID * 3)

export class IdTable {
  private table = new Int32Array(1024)
  private mask = 1023
  private hashes = new Uint32Array(0)
  private idAt = new Uint32Array(0)
  private packed = Buffer.allocUnsafe(64 * 1024)
  private used = 0
  /** Packed bytes of removed ids. */
  private dead = 0
  /** Ids in the table. */
  size = 0

  /** `hash` is for tests, which force collisions with a poor one. */
  constructor(private readonly hash: IdHash = fnv1a) {}

  /** Room for `count` ids in all without growing the table (a scan at open knows how many records there are). */
  reserve(count: number): void {
    let size = this.table.length
    while (2 * count > size) size *= 2
    if (size !== this.table.length) this.rehash(size)
    if (count > this.hashes.length) this.growSlots(count - 1, true)
  }

  /** Give back the packed buffer's room past what is in use (after a scan at open: it grew by halves). */
  trim(): void {
    const size = Math.max(64 * 1024, Math.ceil((this.used - this.dead) * 1.05))
    if (size < this.packed.length) this.repack(0, size)
  }

  /** The slot of `id`, or -1. */
  find(id: string): number {
    const n = encode(id)
    return n < 0 ? -1 : this.findBytes(scratch, 0, n)
  }

  /** The hash of bytes [start, start + len) of `b`: given to findBytes() and addBytes() of the same bytes, they are hashed once (a scan at open does both). */
  hashOf(b: Uint8Array, start: number, len: number): number {
    return this.hash(b, start, start + len)
  }

  /** The slot of the id whose UTF-8 bytes are [start, start + len) of `b` (hashed `h`), or -1. */
  findBytes(b: Uint8Array, start: number, len: number, h = this.hash(b, start, start + len)): number {
    const { table, mask, hashes, idAt, packed } = this
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const e = table[i]!
      if (e === 0) return -1
      const slot = e - 1
      if (hashes[slot] !== h) continue
      const at = idAt[slot]!
      if (packed[at] !== len) continue
      let k = 0
      while (k < len && packed[at + 1 + k] === b[start + k]) k++
      if (k === len) return slot
    }
  }

  /** `id` is the id of `slot` (not in the table yet). */
  add(slot: number, id: string): void {
    const n = encode(id)
    if (n < 0) throw new RangeError(`id longer than ${MAX_ID} bytes`)
    this.addBytes(slot, scratch, 0, n)
  }

  /** The id of `slot` is bytes [start, start + len) of `b` (hashed `h`; not in the table yet). */
  addBytes(slot: number, b: Uint8Array, start: number, len: number, h = this.hash(b, start, start + len)): void {
    if (slot >= this.hashes.length) this.growSlots(slot)
    if (this.used + 1 + len > this.packed.length) this.repack(1 + len)
    const at = this.used
    const p = this.packed
    p[at] = len
    for (let k = 0; k < len; k++) p[at + 1 + k] = b[start + k]!
    this.used += 1 + len
    this.idAt[slot] = at
    this.hashes[slot] = h
    if (2 * (this.size + 1) > this.table.length) this.rehash(this.table.length * 2)
    this.place(slot, h)
    this.size++
  }

  /** Take `slot`'s id out of the table. */
  remove(slot: number): void {
    const { table, mask } = this
    let i = this.hashes[slot]! & mask
    while (table[i] !== slot + 1) {
      if (table[i] === 0) return
      i = (i + 1) & mask
    }
    // Shift back each entry after the hole that may not stay past it (its home is not in (hole, j]).
    let hole = i
    for (let j = (i + 1) & mask; table[j] !== 0; j = (j + 1) & mask) {
      const home = this.hashes[table[j]! - 1]! & mask
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        table[hole] = table[j]!
        hole = j
      }
    }
    table[hole] = 0
    this.size--
    this.dead += 1 + this.packed[this.idAt[slot]!]!
  }

  /** The id of `slot` (in the table). */
  idOf(slot: number): string {
    const at = this.idAt[slot]!
    return this.packed.toString('utf8', at + 1, at + 1 + this.packed[at]!)
  }

  /** The slots in the table, in no order. */
  *slots(): IterableIterator<number> {
    const { table } = this
    for (let i = 0; i < table.length; i++) if (table[i] !== 0) yield table[i]! - 1
  }

  private place(slot: number, h: number): void {
    const { table, mask } = this
    let i = h & mask
    while (table[i] !== 0) i = (i + 1) & mask
    table[i] = slot + 1
  }

  private rehash(size: number): void {
    const old = this.table
    this.table = new Int32Array(size)
    this.mask = size - 1
    for (let i = 0; i < old.length; i++) if (old[i] !== 0) this.place(old[i]! - 1, this.hashes[old[i]! - 1]!)
  }

  /** Room for slot `slot`: exactly, or doubled (a slot taken one at a time). */
  private growSlots(slot: number, exact = false): void {
    const cap = Math.max(1024, slot + 1, exact ? 0 : this.hashes.length * 2)
    const h = new Uint32Array(cap)
    h.set(this.hashes)
    this.hashes = h
    const a = new Uint32Array(cap)
    a.set(this.idAt)
    this.idAt = a
  }

  /** Room for `need` more packed bytes: the live ids copied to a new buffer, half as large again as they are if they would fill most of the old one. */
  private repack(need: number, to = 0): void {
    const live = this.used - this.dead
    let size = to > 0 ? to : this.packed.length
    if (to === 0 && live + need > size * 0.75) size = Math.ceil((live + need) * 1.5)
    const next = Buffer.allocUnsafe(size)
    if (this.dead === 0) {
      // Nothing to reclaim (as while a scan at open fills the table): one copy, every id stays where it is.
      next.set(this.packed.subarray(0, this.used))
      this.packed = next
      return
    }
    const { table, idAt, packed } = this
    let p = 0
    for (let i = 0; i < table.length; i++) {
      if (table[i] === 0) continue
      const slot = table[i]! - 1
      const at = idAt[slot]!
      const end = at + 1 + packed[at]!
      idAt[slot] = p
      for (let k = at; k < end; k++) next[p++] = packed[k]!
    }
    this.packed = next
    this.used = p
    this.dead = 0
  }
}

/** `id` as UTF-8 in `scratch`: its length, or -1 when longer than MAX_ID bytes. ASCII is copied in JavaScript. */
function encode(id: string): number {
  const n = id.length
  if (n <= MAX_ID) {
    let i = 0
    for (; i < n; i++) {
      const c = id.charCodeAt(i)
      if (c >= 0x80) break
      scratch[i] = c
    }
    if (i === n) return n
  }
  if (n > MAX_ID * 3) return -1
  const len = scratch.write(id, 0, 'utf8')
  return len > MAX_ID || len !== Buffer.byteLength(id) ? -1 : len
}
