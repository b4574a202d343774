/**
 * The journal's reserve for a full disk, and the disk-full mode it serves (journal.ts).
 *
 * The reserve is `journal-reserve.dat` in the outbox directory: zeros written and fsynced ahead
 * of need, kept while the node is stopped. When a journal write fails with ENOSPC the journal
 * goes into disk-full mode: records that settle messages already accepted (removals, replies,
 * receipts) go on into the reserve, renamed into place as the next segment (take()), so they are
 * written over blocks the store already holds and no other writer on the disk can take; new
 * messages are refused. Once a second the free space is looked at; with room for a new reserve
 * and `margin` more, the reserve is made again and the mode ends.
 *
 *   start: journal-reserve.dat of the right size ─▶ ready as it is; else made in the background
 *          (no room for it and `margin` more: disk-full mode from the start)
 *   make:  free ≥ bytes + margin ─▶ journal-spare-<pid>-<rand>.tmp ─▶ zeros ─▶ fsync
 *          ─▶ renamed to journal-reserve.dat ─▶ fsync dir ─▶ ready (a crash leaves a spare, removed at start)
 *   ENOSPC ─▶ enterFull ─▶ take() ─▶ the journal's next segment
 *   full, every second: statfs ─▶ room ─▶ make ─▶ ready ─▶ not full (onSpace)
 */
import fs from 'node:fs'
import path from 'node:path'
import { discard, fillWithZeros, fsyncDir } from './journal-segments'
import { isNoSpace, mib } from '../lib/disk-guard'

export const RESERVE_FILE = 'journal-reserve.dat'
/** How often free space is looked at while the disk is full. */
const FULL_CHECK_MS = 1000

/** What make() came to: the reserve is ready, or the disk has no room for it. */
type Made = 'ready' | 'no room'

type State =
  | { type: 'none' }
  | { type: 'preparing'; done: Promise<Made> }
  | { type: 'ready'; fd: number }

export interface ReserveOptions {
  dir: string
  /** Size of the reserve; 0: none, and no disk-full mode. */
  bytes: number
  /** Free space, besides a new reserve, before the disk counts as having room again. */
  margin: number
  /** Free bytes on the disk holding `dir`. */
  free: (dir: string) => Promise<number>
  /** One line when the disk-full mode starts, one when it ends. */
  warn: (message: string) => void
  /** The mode ended: the journal may prepare spares again. */
  onSpace: () => void
}

export class Reserve {
  readonly bytes: number
  private readonly o: ReserveOptions
  private state: State = { type: 'none' }
  private closed = false
  private fullMode = false
  private timer: NodeJS.Timeout | undefined

  /** Takes over the reserve a previous run left when it is whole; any other is removed. */
  constructor(o: ReserveOptions) {
    this.o = o
    this.bytes = Math.ceil(o.bytes / 4096) * 4096
    const file = path.join(o.dir, RESERVE_FILE)
    let fd: number | undefined
    try {
      fd = fs.openSync(file, 'r+')
      if (this.bytes > 0 && fs.fstatSync(fd).size === this.bytes) {
        this.state = { type: 'ready', fd }
        return
      }
    } catch { /* none yet */ }
    discard(fd, file)
  }

  get ready(): boolean {
    return this.state.type === 'ready'
  }

  /** The disk filled up: only settling records are written, until space is back. */
  get full(): boolean {
    return this.fullMode
  }

  /** At start, in the background: the reserve, when it is not there. */
  start(): void {
    if (this.bytes === 0 || this.ready) return
    this.make().then(
      (made) => { if (made === 'no room' && !this.fullMode && !this.closed) this.enterFull('no room for the reserve') },
      (err: Error) => this.o.warn(`journal: cannot make the reserve in ${this.o.dir} (${err.message}); going on without it until the disk fills up`),
    )
  }

  /** A journal write ran out of space: new messages are refused from now on, until space is back. */
  enterFull(why: string): void {
    if (this.fullMode || this.bytes === 0) return
    this.fullMode = true
    const from = this.ready ? `from the ${mib(this.bytes)} reserve` : 'while there is room (no reserve is ready)'
    this.o.warn(`journal: the disk holding ${this.o.dir} is full (${why}): new messages are refused (disk_full) until space is freed; deliveries, replies and receipts are still recorded, ${from}`)
    this.timer = setInterval(() => { void this.checkSpace() }, FULL_CHECK_MS)
    this.timer.unref()
  }

  /** While full, once a second: with room again, make the reserve anew, then take everything again. */
  private async checkSpace(): Promise<void> {
    if (!this.fullMode || this.closed || this.state.type === 'preparing') return
    try {
      // An unused reserve needs only the margin free; a missing one is made first (with it to spare).
      const ok = this.ready ? (await this.o.free(this.o.dir)) >= this.o.margin : (await this.make()) === 'ready'
      if (!ok || !this.fullMode || this.closed) return
    } catch (err) {
      // Room, but no reserve (the file cannot be made): take everything again, without one.
      this.o.warn(`journal: cannot make the reserve in ${this.o.dir} (${(err as Error).message}); going on without it`)
    }
    this.fullMode = false
    clearInterval(this.timer)
    this.timer = undefined
    this.o.warn(`journal: space is free again on the disk holding ${this.o.dir} and the ${mib(this.bytes)} reserve is ready: new messages are accepted again`)
    this.o.onSpace()
  }

  /**
   * Make the reserve unless it is there or being made; only when the disk has room for it and
   * the margin more, so that making it never takes the last free bytes other records need.
   * Rejects when the file cannot be made for another reason than space.
   */
  private make(): Promise<Made> {
    if (this.state.type === 'ready') return Promise.resolve('ready')
    if (this.state.type === 'preparing') return this.state.done
    if (this.closed) return Promise.resolve('no room')
    const done = this.fill().then(
      (fd): Made => {
        this.state = fd === undefined ? { type: 'none' } : { type: 'ready', fd }
        return fd === undefined ? 'no room' : 'ready'
      },
      (err: unknown): Made => {
        this.state = { type: 'none' }
        if (isNoSpace(err)) return 'no room'
        throw err
      },
    )
    this.state = { type: 'preparing', done }
    return done
  }

  private async fill(): Promise<number | undefined> {
    const { dir } = this.o
    if ((await this.o.free(dir)) < this.bytes + this.o.margin) return undefined
    const tmp = path.join(dir, `journal-spare-${process.pid}-${Math.random().toString(36).slice(2, 10)}.tmp`)
    let fd: number
    try {
      fd = await fillWithZeros(tmp, this.bytes, () => this.closed)
    } catch (err) {
      discard(undefined, tmp)
      throw err
    }
    if (this.closed) {
      discard(fd, tmp)
      return undefined
    }
    try {
      fs.renameSync(tmp, path.join(dir, RESERVE_FILE))
      fsyncDir(dir)
    } catch (err) {
      discard(fd, tmp)
      throw err
    }
    return fd
  }

  /** The ready reserve, handed over (the caller renames the file and owns the descriptor); undefined when none is ready. */
  take(): { fd: number; file: string; bytes: number } | undefined {
    if (this.state.type !== 'ready') return undefined
    const fd = this.state.fd
    this.state = { type: 'none' }
    return { fd, file: path.join(this.o.dir, RESERVE_FILE), bytes: this.bytes }
  }

  /** Stop looking and making; a ready reserve stays on disk for the next start. */
  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.timer)
    this.timer = undefined
    if (this.state.type === 'preparing') await this.state.done.catch(() => undefined)
    if (this.state.type === 'ready') {
      try {
        fs.closeSync(this.state.fd)
      } catch { /* already closed */ }
    }
    this.state = { type: 'none' }
  }
}
