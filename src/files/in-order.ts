/**
 * The receiver's sha256 of a file as its chunks come in (receiver.ts), and the check of a chunk
 * by `upTo`, the sha256 of the file from its start to the chunk's end (sender: chunk-ref.ts).
 * A chunk checked that way has its bytes hashed once, into the whole file's sha256; a sender
 * that sends upTo to a receiver that says it takes it (file.put's answer `upTo: true`) leaves
 * the chunk's own sha256 out, and hashes each byte once too.
 *
 *   next in order, upTo        ─▶ hash + bytes = upTo? ─▶ taken, fed       (else dropped)
 *   own sha256 (any order)     ─▶ bytes = own? ─▶ taken; fed now when next, else by catchUp
 *   ahead of the order, upTo   ─▶ written, not held yet (`ahead`); checked by catchUp
 *   catchUp: from `hashed` on, each chunk that is written or ahead read back and fed; an ahead
 *            one held if the sha256 so far is its upTo, else dropped (asked for again at commit)
 *
 * After a restart `hashed` starts at 0: catchUp reads back what is held once (the commit would
 * have read it back anyway) and chunks in order are checked by upTo again.
 */
import { createHash, type Hash } from 'node:crypto'
import type fs from 'node:fs'

export const SHA256 = /^[0-9a-f]{64}$/

export class InOrder {
  /** sha256 of chunks 0 … hashed-1. */
  hash: Hash = createHash('sha256')
  hashed = 0
  /** Chunks written ahead of the order with only upTo to check them by. */
  readonly ahead = new Map<number, string>()
  /** Chunk writes in progress, by index (catchUp reads a chunk back once it is written). */
  readonly writes = new Map<number, Promise<unknown>>()
  private running: Promise<void> | undefined
  private again = false

  constructor(private readonly size: number, private readonly chunkBytes: number) {}

  /**
   * How chunk i is checked: 'fed' (it was next with a matching upTo: hashed once and in),
   * 'own' (its own sha256 matches), 'ahead' (upTo only, ahead: written, checked later), or
   * false (it does not match, or nothing to check it by).
   */
  check(i: number, data: Buffer, own: string, upTo: string | undefined): 'fed' | 'own' | 'ahead' | false {
    const up = upTo !== undefined && SHA256.test(upTo) ? upTo : undefined
    if (i === this.hashed && this.running === undefined && up !== undefined) {
      const next = this.hash.copy().update(data)
      if (next.copy().digest('hex') !== up) return false
      this.hash = next
      this.hashed++
      return 'fed'
    }
    if (SHA256.test(own)) {
      if (createHash('sha256').update(data).digest('hex') !== own) return false
      if (i === this.hashed && this.running === undefined) { this.hash.update(data); this.hashed++; return 'fed' }
      return 'own'
    }
    if (up !== undefined && i >= this.hashed) { this.ahead.set(i, up); return 'ahead' }
    return false
  }

  /**
   * Feed what follows `hashed` from the file while it is written (`written(i)`) or ahead; an
   * ahead chunk that matches its upTo is told to `held`, one that does not is dropped. Called
   * while one runs: that one goes on once more at its end.
   */
  catchUp(handle: fs.promises.FileHandle, written: (i: number) => boolean, held: (i: number) => void): Promise<void> {
    if (this.running !== undefined) { this.again = true; return this.running }
    this.running = (async () => {
      await null // this.running is set before anything runs
      try {
        do {
          this.again = false
          await this.pass(handle, written, held)
        } while (this.again)
      } finally {
        this.running = undefined
      }
    })()
    return this.running
  }

  private async pass(handle: fs.promises.FileHandle, written: (i: number) => boolean, held: (i: number) => void): Promise<void> {
    const chunks = Math.max(1, Math.ceil(this.size / this.chunkBytes))
    let buf: Buffer | undefined
    for (let i = this.hashed; i < chunks; i = this.hashed) {
      const up = this.ahead.get(i)
      if (up === undefined && !written(i)) return
      await this.writes.get(i)?.catch(() => {})
      const len = i === chunks - 1 ? this.size - i * this.chunkBytes : this.chunkBytes
      buf ??= Buffer.allocUnsafe(this.chunkBytes)
      const { bytesRead } = await handle.read(buf, 0, len, i * this.chunkBytes)
      const next = this.hash.copy().update(buf.subarray(0, bytesRead))
      if (up !== undefined) {
        this.ahead.delete(i)
        if (bytesRead !== len || next.copy().digest('hex') !== up) return
        held(i)
      }
      this.hash = next
      this.hashed++
    }
  }

  /** Resolves once no catchUp runs. */
  async settled(): Promise<void> {
    while (this.running !== undefined) await this.running.catch(() => {})
  }
}
