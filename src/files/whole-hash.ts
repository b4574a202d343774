/**
 * The whole file's sha256 at the sender, fed with each chunk as it is first read (sender.ts),
 * so the file is read from disk once. Chunks are read a window at a time and their reads end
 * in any order: one read ahead waits here until those before it are in.
 *
 *   chunk i read ─▶ feed(i) ─ i next? ─▶ hash ─▶ the ones waiting behind it
 *                           └ ahead ─▶ held (at most `window` of them; past that, given up)
 *   commit ─▶ digest(): every chunk fed ─▶ the sha256 ─ else ─▶ read the file again and hash it
 *
 * In memory only: a resume after a restart, or a run that skipped chunks the receiver already
 * held, hashes the file once more before its commit.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { OutpostError } from '../errors'
import type { OutRecord } from './types'

export class WholeHash {
  private readonly hash = createHash('sha256')
  /** Chunks 0 … hashed-1 are in; -1: given up (the file is hashed again at the commit). */
  private hashed = 0
  private readonly ahead = new Map<number, Buffer>()

  constructor(private readonly chunks: number, private readonly window: number) {}

  /**
   * Chunk i's bytes, read for the first time in this run. Returns, when chunk i was the next one
   * in order, the sha256 of the file from its start to the end of chunk i (`upTo`: the receiver
   * checks a chunk that comes in order against it, hashing its bytes once; receiver.ts).
   */
  feed(i: number, buf: Buffer): string | undefined {
    if (this.hashed < 0 || i < this.hashed) return undefined
    if (i > this.hashed) {
      // A copy: the chunk's buffer is used again once it is ACKed (chunk-pool.ts).
      this.ahead.set(i, Buffer.from(buf))
      // The chunk in the way is not being read (the receiver has it): no point holding more.
      if (this.ahead.size > this.window) this.giveUp()
      return undefined
    }
    this.hash.update(buf)
    this.hashed++
    const upTo = this.hash.copy().digest('hex')
    for (let next = this.ahead.get(this.hashed); next !== undefined; next = this.ahead.get(this.hashed)) {
      this.ahead.delete(this.hashed)
      this.hash.update(next)
      this.hashed++
    }
    return upTo
  }

  /** Chunk i will not be read in this run. */
  skip(i: number): void {
    if (i === this.hashed) this.giveUp()
  }

  private giveUp(): void {
    this.hashed = -1
    this.ahead.clear()
  }

  /** The sha256 of `file`: from what was fed when that was all of it, else read again. */
  async digest(file: string): Promise<string> {
    const complete = this.hashed >= this.chunks
    this.giveUp()
    return complete ? this.hash.digest('hex') : sha256Path(file)
  }
}

export async function sha256Path(file: string): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer)
  return h.digest('hex')
}

/** Throws file_source_changed when the source is not what it was when the transfer started. */
export async function unchanged(rec: Pick<OutRecord, 'id' | 'src' | 'size' | 'mtimeMs'>): Promise<void> {
  const st = await fs.promises.stat(rec.src).catch(() => undefined)
  if (st !== undefined && st.size === rec.size && (rec.mtimeMs === undefined || st.mtimeMs === rec.mtimeMs)) return
  throw new OutpostError('file_source_changed', `file transfer ${rec.id}: ${rec.src} changed while it was being sent (its size or modification time is not what it was when the transfer started); the receiver deletes its partial file; send the file again`)
}
