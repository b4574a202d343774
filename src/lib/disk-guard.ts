/**
 * Free space for the files a node writes beside its store: audit.log, reply files, errors.log,
 * log files. They stop while the disk has less than `floor` bytes free (the store's reserve plus
 * a margin), so a filling disk is left to the outbox's own records, and an operator freeing
 * space gives it to the store first. One line says when they stop, one when they resume.
 *
 *   allow(bytes) ─ statfs (~2 µs; other processes fill the disk too, so no figure is kept)
 *     running: free − bytes ≥ floor ─▶ true;  else ─▶ stopped (the one line), false
 *     stopped: free ≥ floor + RESUME_SLACK ─▶ running (one line, with what was skipped), true;
 *              else ─▶ false (skipped, counted)
 */
import fs from 'node:fs'
import type { LogFn } from '../log'
import type { DiskRoom } from '../method'

export const MIB = 1024 * 1024

/** While stopped, writes resume only this far above the floor: no line pair each time a few bytes come and go. */
export const RESUME_SLACK = MIB

export interface DiskGuardOptions {
  /** A directory on the disk the files go to. */
  dir: string
  /** Bytes that must stay free. */
  floor: number
  /** What stops, for the log lines (`audit.log, reply files and errors.log`). */
  what: string
  log: LogFn
  /** Free bytes for unprivileged writers on the disk holding `dir` (tests inject one). */
  free?: (dir: string) => number
}

export function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir)
  return s.bavail * s.bsize
}

export class DiskGuard implements DiskRoom {
  private readonly o: DiskGuardOptions
  private readonly free: (dir: string) => number
  private stopped = false
  /** Writes and bytes skipped since writes stopped. */
  private skippedWrites = 0
  private skippedBytes = 0

  constructor(o: DiskGuardOptions) {
    this.o = o
    this.free = o.free ?? freeBytes
  }

  /** Whether `bytes` more may be written now; false (the write is skipped, and counted) while space is short. */
  allow(bytes: number): boolean {
    let free: number
    try {
      free = this.free(this.o.dir)
    } catch {
      // No figure (the directory is gone, say): let the write try and fail on its own terms.
      return true
    }
    if (this.stopped && free - this.o.floor >= RESUME_SLACK) {
      this.stopped = false
      this.o.log('info', `disk: ${mib(free)} free again on the disk of ${this.o.dir}: ${this.o.what} are written again (${this.skippedWrites} writes of ${mib(this.skippedBytes)} were skipped meanwhile)`)
      this.skippedWrites = 0
      this.skippedBytes = 0
    }
    if (!this.stopped && free - bytes >= this.o.floor) return true
    this.stop(free)
    this.skippedWrites++
    this.skippedBytes += bytes
    return false
  }

  /** Whether writes are stopped now (the last allow() said no). */
  get paused(): boolean {
    return this.stopped
  }

  private stop(free: number): void {
    if (this.stopped) return
    this.stopped = true
    this.o.log('warn', `disk: ${mib(free)} left on the disk of ${this.o.dir}, which keeps ${mib(this.o.floor)} free for the outbox's records: ${this.o.what} are not written until space is freed`)
  }
}

export function mib(bytes: number): string {
  return `${(Math.max(0, bytes) / MIB).toFixed(1)} MiB`
}

/** errno codes of a full disk, a quota or a file-size limit. */
export function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG'
}
