/**
 * The dedup set's run files (store format 3): `seen-<n>.run` beside the snapshot, one per packed
 * run (seen-pack.ts), written once and never changed; the snapshot's `seen_runs` rows name them
 * with their length and CRC32. Kept out of sql.js so that a run's bytes are in memory once
 * (sql.js would hold a second copy, and export it at every snapshot).
 *
 *   snapshot: new runs ─▶ written, each fsynced ─▶ fsync dir ─▶ (the snapshot is renamed into place)
 *             ─▶ files neither it nor the snapshot before it names are deleted
 *   open:     each named file read and checked (missing, short or failing its CRC: outbox_corrupt);
 *             files numbered past the last the snapshot gave out (from one never durable) deleted
 */
import fs from 'node:fs'
import path from 'node:path'
import { OutpostError } from '../errors'
import { crc32 } from './crc32'
import { fsyncDir } from './journal'

const RUN_RE = /^seen-(\d{12})\.run$/
export const runFileName = (n: number): string => `seen-${String(n).padStart(12, '0')}.run`

export class RunFiles {
  /** Runs made since the last flush: written (and fsynced) before the snapshot naming them is. */
  private readonly pending = new Map<number, Uint8Array>()
  /** Run files on disk, read at open or written by a flush: never written again (a snapshot may name them). */
  private readonly durable = new Set<number>()

  constructor(readonly dir: string) {}

  /** Run `n`'s bytes, checked against what the snapshot says of them. */
  read(n: number, bytes: number, crc: number): Buffer {
    const file = path.join(this.dir, runFileName(n))
    let buf: Buffer
    try {
      buf = fs.readFileSync(file)
    } catch (cause) {
      throw new OutpostError('outbox_corrupt', `outbox: the dedup set's run ${file} cannot be read (${(cause as Error).message}); keep a copy of the directory before repairing it`, { cause })
    }
    if (buf.length !== bytes || crc32(buf) !== crc) {
      throw new OutpostError('outbox_corrupt', `outbox: the dedup set's run ${file} is ${buf.length} bytes${buf.length === bytes ? ' that fail their CRC' : `, not ${bytes}`}; keep a copy of the directory before repairing it`)
    }
    this.durable.add(n)
    return buf
  }

  /**
   * Delete run files numbered above `lastGiven` (the last number the loaded snapshot had given
   * out): a snapshot that never became durable wrote them, and their numbers will be given again.
   * Lower ones may be the snapshot's before it; the next snapshot removes those it does not need.
   */
  cleanAtOpen(lastGiven: number): void {
    for (const f of fs.readdirSync(this.dir)) {
      const n = RUN_RE.exec(f)?.[1]
      if (n !== undefined && Number(n) > lastGiven) fs.rmSync(path.join(this.dir, f), { force: true })
    }
  }

  /** A run to be written by the next flush(), unless its file is on disk already. */
  add(n: number, buf: Uint8Array): void {
    if (!this.durable.has(n)) this.pending.set(n, buf)
  }

  /** Write every new run durably, then the directory (before a snapshot names them). */
  async flush(): Promise<void> {
    if (this.pending.size === 0) return
    for (const [n, buf] of this.pending) {
      const fh = await fs.promises.open(path.join(this.dir, runFileName(n)), 'w', 0o600)
      try {
        await fh.writeFile(buf)
        await fh.sync()
      } finally {
        await fh.close()
      }
      this.pending.delete(n)
      this.durable.add(n)
    }
    fsyncDir(this.dir)
  }

  /** After a snapshot naming only `kept` (with the one before it) is durable: delete every other run file. */
  async removeExcept(kept: Set<number>): Promise<void> {
    for (const f of await fs.promises.readdir(this.dir)) {
      const n = RUN_RE.exec(f)?.[1]
      if (n === undefined || kept.has(Number(n)) || this.pending.has(Number(n))) continue
      this.durable.delete(Number(n))
      await fs.promises.rm(path.join(this.dir, f), { force: true })
    }
  }
}
