/**
 * Log shipping (config `logs:`): follow files for as long as the node runs and send their
 * lines through the outbox to `toNode`'s reply.file.append, each as a minion log line
 * `time|stream|level|message`, many lines to a message.
 *
 *   every `interval` ms: read complete lines from (inode, offset) ─▶ one batch
 *     ─▶ position file: {ino, offset, pending: {id, end}}   (atomic; the batch's id is fixed first)
 *     ─▶ submit (durable in the outbox) ─▶ position file: {ino, offset: end}
 *   at EOF: the path names another inode ─▶ rotated: the old file is read to its end, then the new one from 0
 *           the file is shorter than the offset ─▶ truncated: from 0
 *
 * No gap, no duplicate across restarts and kill -9: the position moves only after the outbox
 * has the batch. A crash between the two leaves `pending`; the next start sends the same
 * byte range again under the same id, which the outbox (outbox_duplicate) or the receiver
 * (dedup by id) recognises. A file rotated while the node was down is found again by its
 * inode in the same directory (app.log.1), and read to its end before the new file.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { writeFileAtomic } from './lib/atomic-file'
import { isNoSpace } from './lib/disk-guard'
import type { Config } from './config'
import type { MessageDraft } from './wire/envelope'
import { isOutpostError } from './errors'
import type { LogFn } from './log'
import { ulid } from './wire/ulid'

export type LogSpec = Config['logs'][number]
type Spec = Required<LogSpec>

/** List items in the config keep only the keys the file sets: the schema's defaults, here. */
function withDefaults(s: LogSpec): Spec {
  return {
    path: s.path, toNode: s.toNode ?? '', replyMethod: s.replyMethod ?? 'reply.file.append', directory: s.directory ?? 'logs',
    fileName: s.fileName ?? '', stream: s.stream ?? '', level: s.level ?? 'info', startAt: s.startAt ?? 'end',
    interval: s.interval ?? 1000, maxBatchBytes: s.maxBatchBytes ?? 65536,
  }
}

export interface LogShipperOptions {
  logs: readonly LogSpec[]
  central: string
  dataDir: string
  /** Into the outbox; resolves once durable. */
  submit: (drafts: MessageDraft[]) => Promise<unknown>
  log: LogFn
}

interface Position { ino: number; offset: number; pending?: { id: string; end: number } }

interface Open { fh: fsp.FileHandle; ino: number }

/** `2020-06-10 16:23:50 -06:00`: local time with its offset, as minion writes it. */
export function minionTime(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0')
  const off = -d.getTimezoneOffset()
  const sign = off < 0 ? '-' : '+'
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${sign}${p(Math.floor(Math.abs(off) / 60))}:${p(Math.abs(off) % 60)}`
}

/** One followed file. */
class Follower {
  private readonly stateFile: string
  private pos: Position | undefined
  private cur: Open | undefined
  /** The file did not exist when we first looked: when it appears, all of it is new. */
  private sawMissing = false
  /** Batches queued so far. */
  sent = 0

  constructor(private readonly spec: Spec, private readonly o: LogShipperOptions) {
    const key = createHash('sha256').update(path.resolve(spec.path)).digest('hex').slice(0, 16)
    this.stateFile = path.join(o.dataDir, 'logs', `${key}.json`)
    try {
      this.pos = JSON.parse(fs.readFileSync(this.stateFile, 'utf8')) as Position
    } catch { /* never shipped from this file */ }
  }

  private save(pos: Position): void {
    writeFileAtomic(this.stateFile, JSON.stringify({ ...pos, path: this.spec.path }))
    this.pos = pos
  }

  /** One look at the file: ship what is new, follow rotation and truncation. */
  async tick(): Promise<void> {
    if (this.cur === undefined && !(await this.open())) return
    const cur = this.cur!
    while (await this.shipFrom(cur, false)) { /* until no complete line is left */ }
    const st = await fsp.stat(this.spec.path).catch(() => undefined)
    if (st === undefined || st.ino !== cur.ino) {
      // Rotated (renamed or removed): what is left of the old file, partial last line included.
      while (await this.shipFrom(cur, true)) { /* to its end */ }
      await cur.fh.close()
      this.cur = undefined
      this.o.log('info', `logs: ${this.spec.path} was rotated; following the new file from its start`)
      if (st !== undefined) { this.save({ ino: st.ino, offset: 0 }); await this.open() }
      else this.sawMissing = true
      return
    }
    if (st.size < this.pos!.offset) {
      this.o.log('info', `logs: ${this.spec.path} was truncated; following it from its start`)
      this.save({ ino: cur.ino, offset: 0 })
    }
  }

  /** Open the path and decide where to read from; false when the file is not there (yet). */
  private async open(): Promise<boolean> {
    let fh: fsp.FileHandle
    try {
      fh = await fsp.open(this.spec.path, 'r')
    } catch {
      this.sawMissing = true
      return false
    }
    const st = await fh.stat()
    const saved = this.pos
    if (saved !== undefined && saved.ino !== st.ino) {
      // Rotated while we were not looking: finish the old file if it is still around.
      const old = await findByInode(path.dirname(this.spec.path), saved.ino)
      if (old !== undefined) {
        const oldFh = await fsp.open(old, 'r')
        await this.resumePending({ fh: oldFh, ino: saved.ino })
        while (await this.shipFrom({ fh: oldFh, ino: saved.ino }, true)) { /* to its end */ }
        await oldFh.close()
      } else {
        this.o.log('warn', `logs: ${this.spec.path} was rotated while outpost was down and the old file (inode ${saved.ino}) is gone; lines after offset ${saved.offset} of it are lost`)
      }
      this.save({ ino: st.ino, offset: 0 })
    } else if (saved === undefined) {
      const offset = this.sawMissing || this.spec.startAt === 'start' ? 0 : st.size
      this.save({ ino: st.ino, offset })
    } else {
      await this.resumePending({ fh, ino: st.ino })
      if (st.size < this.pos!.offset) this.save({ ino: st.ino, offset: 0 })
    }
    this.cur = { fh, ino: st.ino }
    this.o.log('info', `logs: shipping ${this.spec.path} from offset ${this.pos!.offset} to ${this.toNode}`)
    return true
  }

  private get toNode(): string {
    return this.spec.toNode || this.o.central
  }

  /** A batch whose enqueue may or may not have happened before a crash: send it again, same id. */
  private async resumePending(f: Open): Promise<void> {
    const p = this.pos
    if (p?.pending === undefined || p.ino !== f.ino) return
    const len = p.pending.end - p.offset
    const buf = Buffer.alloc(len)
    const { bytesRead } = await f.fh.read(buf, 0, len, p.offset)
    if (bytesRead === len) await this.send(f.ino, p.offset, p.pending.end, buf, p.pending.id)
    else this.save({ ino: p.ino, offset: p.offset }) // the file shrank meanwhile: read it afresh
  }

  /** Ship one batch from the position; false when there was nothing (complete) to ship. */
  private async shipFrom(f: Open, toEnd: boolean): Promise<boolean> {
    const start = this.pos!.ino === f.ino ? this.pos!.offset : 0
    const max = this.spec.maxBatchBytes
    const buf = Buffer.alloc(max)
    const { bytesRead } = await f.fh.read(buf, 0, max, start)
    if (bytesRead === 0) return false
    let used = buf.lastIndexOf(0x0a, bytesRead - 1) + 1
    // A line longer than a batch is cut; the partial line at the end of a rotated file is sent.
    if (used === 0 && (bytesRead === max || toEnd)) used = bytesRead
    if (used === 0) return false
    await this.send(f.ino, start, start + used, buf.subarray(0, used), ulid())
    return true
  }

  private async send(ino: number, offset: number, end: number, bytes: Buffer, id: string): Promise<void> {
    const { spec } = this
    const stream = spec.stream || path.basename(spec.path)
    const time = minionTime(new Date())
    let text = bytes.toString('utf8')
    if (text.endsWith('\n')) text = text.slice(0, -1)
    const data = text.split('\n').map((l) => `${time}|${stream}|${spec.level}|${l.endsWith('\r') ? l.slice(0, -1) : l}`).join('\n') + '\n'
    this.save({ ino, offset, pending: { id, end } })
    try {
      await this.o.submit([{ id, toNode: this.toNode, method: spec.replyMethod, data, directory: spec.directory, fileName: spec.fileName || path.basename(spec.path) }])
    } catch (err) {
      if (!isOutpostError(err, 'outbox_duplicate')) throw err
    }
    this.save({ ino, offset: end })
    this.sent++
    this.o.log('debug', `logs: queued ${id}: bytes ${offset}-${end} of ${spec.path} (inode ${ino}) for ${this.toNode}`)
  }

  async close(): Promise<void> {
    await this.cur?.fh.close().catch(() => {})
    this.cur = undefined
  }
}

async function findByInode(dir: string, ino: number): Promise<string | undefined> {
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    const st = await fsp.stat(path.join(dir, name)).catch(() => undefined)
    if (st?.isFile() && st.ino === ino) return path.join(dir, name)
  }
  return undefined
}

export class LogShipper {
  /** `full`: the last look failed for a full disk (said once, and once when shipping goes on). */
  private readonly followers: { f: Follower; spec: Spec; timer?: NodeJS.Timeout; busy?: Promise<void>; full?: boolean }[]
  private stopped = false

  constructor(private readonly o: LogShipperOptions) {
    const seen = new Set<string>()
    const specs = o.logs.map(withDefaults).filter((spec) => {
      // Two followers of one file would share its position file and ship every line twice.
      const key = path.resolve(spec.path)
      if (seen.has(key)) { o.log('warn', `logs: ${spec.path} is listed twice; the second entry is ignored`); return false }
      seen.add(key)
      return true
    })
    this.followers = specs.map((spec) => ({ f: new Follower(spec, o), spec }))
  }

  start(): void {
    for (const entry of this.followers) this.loop(entry)
  }

  private loop(entry: (typeof this.followers)[number]): void {
    if (this.stopped) return
    const sent = entry.f.sent
    entry.busy = entry.f.tick()
      .then(() => {
        // A look with nothing new proves nothing: the disk may still be full.
        if (entry.full && entry.f.sent > sent) {
          this.o.log('info', `logs: ${entry.spec.path}: shipping again (space is back)`)
          entry.full = false
        }
      }, (err: Error) => {
        // A full disk fails every look until space is freed: said once, not once an interval.
        const full = isOutpostError(err, 'disk_full') || isNoSpace(err)
        if (!full || !entry.full) this.o.log('warn', `logs: ${entry.spec.path}: ${err.message} (trying again${full ? ' every interval until space is freed' : ''})`)
        entry.full = full
      })
      .finally(() => {
        if (this.stopped) return
        entry.timer = setTimeout(() => this.loop(entry), entry.spec.interval)
        entry.timer.unref()
      })
  }

  /** Stop following; a batch being queued is finished first. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true
    for (const e of this.followers) clearTimeout(e.timer)
    await Promise.all(this.followers.map(async (e) => { await e.busy; await e.f.close() }))
  }
}
