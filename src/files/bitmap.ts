/** Which chunks of a transfer are held: one bit a chunk, kept in records as base64. */
export class Bitmap {
  readonly bits: Uint8Array
  constructor(readonly size: number, from?: string) {
    this.bits = new Uint8Array(Math.ceil(size / 8))
    if (from !== undefined) this.bits.set(Buffer.from(from, 'base64').subarray(0, this.bits.length))
  }
  has(i: number): boolean { return (this.bits[i >> 3]! & (1 << (i & 7))) !== 0 }
  set(i: number): void { this.bits[i >> 3]! |= 1 << (i & 7) }
  count(): number {
    let n = 0
    for (let i = 0; i < this.size; i++) if (this.has(i)) n++
    return n
  }
  missing(max = Infinity): number[] {
    const out: number[] = []
    for (let i = 0; i < this.size && out.length < max; i++) if (!this.has(i)) out.push(i)
    return out
  }
  toString(): string { return Buffer.from(this.bits).toString('base64') }
}
