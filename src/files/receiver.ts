/**
 * The receiving side of a transfer: file.put opens it, file.chunk writes each chunk at its
 * place in a temp file beside the target, file.commit checks the whole and renames it in.
 *
 *   file.put  ─ rules (roots, size, space, owner) ─▶ .NAME.ID.outpost-part (sparse, 0600) + record ─▶ { have }
 *   file.chunk ─ sha256 of the chunk (the next in order with `upTo`: of the file up to its end, the
 *                bytes hashed once) ─▶ pwrite at index × chunkBytes ─▶ (batched) fdatasync ─▶ record.have
 *   file.commit ─ all held? no ─▶ { missing } ─ yes ─▶ sha256 of the file (fed as chunks came in order; the rest read back) ─▶ chmod/chown, fsync,
 *               rename over the target, fsync the directory ─▶ { done }   (mismatch: temp deleted)
 *
 * A chunk counts as held only once it is synced and in the record: what a crash loses between
 * the ACK of a chunk and that record is asked for again at commit (`missing`).
 */
import fs from 'node:fs'
import path from 'node:path'
import type { Config } from '../config'
import { ERROR_CODES, OutpostError, type ErrorCode } from '../errors'
import type { LogFn } from '../log'
import type { MethodContext, MethodResult } from '../method'
import { Bitmap } from './bitmap'
import { InOrder, SHA256 } from './in-order'
import { Records } from './records'
import { ended, KEEP_FINISHED_MS } from './sender'
import { checkRoom, ioError, resolveOwner, rootsOf, writableParent } from './rules'
import { giveBack } from '../wire/whole-pool'
import { answer, bytesOf, parseMeta, sha256File, sizeOf, targetPath } from './meta'
import type { TransferInfo } from './types'

export interface InRecord {
  id: string
  from: string
  /** Target path. */
  path: string
  temp?: string
  state: 'expected' | 'receiving' | 'done' | 'failed' | 'cancelled'
  size: number
  sha256?: string
  chunkBytes: number
  chunks: number
  /** Chunks synced to the temp file (Bitmap, base64). */
  have: string
  mode?: number
  owner?: string
  uid?: number
  gid?: number
  mkdir?: boolean
  /** A pull this node asked for: the target is its own choice, not the sender's (no files.roots). */
  pull?: boolean
  /** Chunk bytes that arrived more than once. */
  resent: number
  startedAt: number
  updatedAt: number
  error?: { code: string; message: string }
}

interface Open {
  handle: fs.promises.FileHandle
  written: Bitmap
  have: Bitmap
  sync: Promise<void> | undefined
  timer: NodeJS.Timeout | undefined
  /** The whole file's sha256 as the chunks come (in-order.ts; in memory only): the commit reads back and hashes only what follows. */
  order: InOrder
}

/** How long chunk writes gather before one fdatasync makes them held. */
const SYNC_DELAY_MS = 100

export interface ReceiverOptions {
  dataDir: string
  config: Config
  log: LogFn
  now: () => number
  notify: (info: TransferInfo) => void
}

export function inInfo(r: InRecord): TransferInfo {
  const have = new Bitmap(r.chunks, r.have).count()
  const bytes = r.state === 'done' ? r.size : Math.min(r.size, have * r.chunkBytes)
  return {
    id: r.id, direction: 'in', peer: r.from, path: r.path, state: r.state, size: r.size, bytes, resent: r.resent,
    ...(r.sha256 !== undefined ? { sha256: r.sha256 } : {}), startedAt: r.startedAt, updatedAt: r.updatedAt, ...(r.error ? { error: r.error } : {}),
  }
}

export class Receiver {
  private readonly recs = new Map<string, InRecord>()
  private readonly open = new Map<string, Open>()
  private readonly records: Records<InRecord>

  constructor(private readonly o: ReceiverOptions) {
    this.records = new Records<InRecord>(o.dataDir, 'in')
    for (const r of this.records.all()) {
      if (ended(r.state) && r.updatedAt < o.now() - KEEP_FINISHED_MS) void this.records.remove(r.id)
      else this.recs.set(r.id, r)
    }
  }

  list(): InRecord[] {
    return [...this.recs.values()]
  }

  get(id: string): InRecord | undefined {
    return this.recs.get(id)
  }

  /** A file.put, file.chunk or file.commit for a pull this node expects from `from` (let in whatever methods.allow says). */
  admits(method: string, args: readonly string[] | undefined, from: string): boolean {
    if (!['file.put', 'file.chunk', 'file.commit'].includes(method)) return false
    let id = args?.[0]
    if (method === 'file.put') try { id = (JSON.parse(id ?? '') as { id?: string }).id } catch { return false }
    const r = id === undefined ? undefined : this.recs.get(id)
    return r !== undefined && r.pull === true && r.from === from
  }

  /** Record a pull this node asked for: `from` will put the file at `target`. */
  async expect(id: string, from: string, target: string, opts: { mode?: number; owner?: string; mkdir?: boolean }): Promise<InRecord> {
    const now = this.o.now()
    const rec: InRecord = { id, from, path: target, state: 'expected', size: 0, chunkBytes: 0, chunks: 0, have: '', pull: true, resent: 0, startedAt: now, updatedAt: now, ...opts }
    this.recs.set(id, rec)
    await this.records.save(rec)
    return rec
  }

  async put(ctx: MethodContext): Promise<MethodResult> {
    const meta = parseMeta(ctx.args[0])
    const from = ctx.env.fromNode
    let rec = this.recs.get(meta.id)
    if (rec !== undefined && rec.from !== from) throw new OutpostError('file_transfer_unknown', `file.put: transfer ${meta.id} is not one ${from} opened here`)
    if (rec?.state === 'done') return answer({ id: rec.id, done: true, path: rec.path, size: rec.size, sha256: rec.sha256 })
    if (rec?.state === 'receiving') {
      const otherHash = rec.sha256 !== undefined && rec.sha256 !== '' && meta.sha256 !== '' && rec.sha256 !== meta.sha256
      if (rec.size !== meta.size || otherHash || rec.chunkBytes !== meta.chunkBytes) throw new OutpostError('method_args', `file.put: transfer ${meta.id} was opened for another file (size or sha256 differ)`)
      if (meta.sha256 !== '') rec.sha256 = meta.sha256
      await this.flush(rec.id)
      return answer({ id: rec.id, have: rec.have, chunks: rec.chunks, upTo: true })
    }
    if (rec?.state === 'cancelled') throw new OutpostError('cancelled', rec.error?.message ?? `file.put: transfer ${meta.id} was cancelled`)
    if (rec?.state === 'failed') {
      const code = rec.error !== undefined && rec.error.code in ERROR_CODES ? rec.error.code as ErrorCode : 'file_transfer_unknown'
      throw new OutpostError(code, rec.error?.message ?? `file.put: transfer ${meta.id} failed`)
    }
    if (rec?.state !== 'expected') return this.openTransfer(ctx, meta, rec)
    // A pull this node asked for: a refusal here ends it here too, or the `outpost cp` waiting
    // for it (and `outpost transfers`) would wait for a file that never comes.
    try {
      return await this.openTransfer(ctx, meta, rec)
    } catch (err) {
      const e = err instanceof OutpostError ? err : ioError(`file transfer ${rec.id}`, err)
      await this.fail(rec, { code: e.code, message: e.message })
      throw e
    }
  }

  /** Open the transfer `meta` describes: its temp file beside the target, its record. */
  private async openTransfer(ctx: MethodContext, meta: ReturnType<typeof parseMeta>, rec: InRecord | undefined): Promise<MethodResult> {
    const from = ctx.env.fromNode
    const now = this.o.now()
    let target: string
    let dir: string
    if (rec?.state === 'expected') {
      // A pull: where it goes was chosen here; what the sender names is not used.
      target = rec.path
      if (rec.mkdir === true) await fs.promises.mkdir(path.dirname(target), { recursive: true, mode: 0o755 }).catch((err: unknown) => { throw ioError(`cannot create ${path.dirname(target)}`, err) })
      dir = await fs.promises.realpath(path.dirname(target)).catch(() => { throw new OutpostError('file_not_found', `file transfer: the directory ${path.dirname(target)} does not exist (--mkdir creates it)`) })
      const st = await fs.promises.lstat(target).catch(() => undefined)
      if (st?.isSymbolicLink()) throw new OutpostError('file_outside', `file transfer: ${target} is a symlink; outpost does not write through one`)
      if (st !== undefined && !st.isFile()) throw new OutpostError('io', `file transfer: ${target} exists and is not a regular file`)
    } else {
      target = await targetPath(meta)
      const defaultRoot = path.join(this.o.dataDir, 'files')
      dir = await writableParent(target, rootsOf(this.o.config.files.roots, this.o.dataDir), meta.mkdir === true, defaultRoot)
      checkRoom(dir, meta.size, 0, this.o.config, target)
    }
    if (rec?.state === 'expected') checkRoom(dir, meta.size, 0, { ...this.o.config, files: { ...this.o.config.files, maxBytes: 0 } }, target)
    // A pull's owner and mode are the choice of the node that asked, never of the source.
    const pulled = rec?.state === 'expected'
    const owner = pulled ? rec.owner : meta.owner
    const ids = owner !== undefined ? await resolveOwner(owner) : undefined
    const base = path.basename(target)
    const temp = path.join(dir, `.${base}.${meta.id.slice(-8)}.outpost-part`)
    const chunks = Math.max(1, Math.ceil(meta.size / meta.chunkBytes))
    // No setuid or setgid bits from afar: a file.put never makes a program that runs as its owner.
    const given = pulled ? rec.mode : meta.mode
    const mode = given === undefined ? undefined : given & 0o1777
    const next: InRecord = {
      id: meta.id, from, path: path.join(dir, base), temp, state: 'receiving', size: meta.size, sha256: meta.sha256, chunkBytes: meta.chunkBytes, chunks,
      have: new Bitmap(chunks).toString(), resent: 0, startedAt: rec?.startedAt ?? now, updatedAt: now,
      ...(mode !== undefined ? { mode } : {}), ...(owner !== undefined ? { owner } : {}), ...(ids ?? {}), ...(rec?.pull ? { pull: true } : {}),
    }
    try {
      const h = await fs.promises.open(temp, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o600)
      try { await h.truncate(meta.size) } finally { await h.close() }
    } catch (err) {
      throw ioError(`cannot create ${temp}`, err)
    }
    this.recs.set(next.id, next)
    await this.records.save(next)
    this.o.log('info', `files: receiving ${next.path} (${meta.size} bytes) from ${from}, transfer ${next.id}`)
    this.o.notify(inInfo(next))
    return answer({ id: next.id, have: next.have, chunks, upTo: true })
  }

  /** Chunk writes in progress per transfer: a commit waits for them (their ACK went out before they ran). */
  private readonly writing = new Map<string, Set<Promise<MethodResult>>>()

  chunk(ctx: MethodContext): Promise<MethodResult> {
    const id = ctx.args[0] ?? ''
    const p = this.writeChunk(ctx)
    let set = this.writing.get(id)
    if (set === undefined) this.writing.set(id, (set = new Set()))
    set.add(p)
    const done = (): void => { set.delete(p); if (set.size === 0) this.writing.delete(id) }
    p.then(done, done)
    return p
  }

  private async writeChunk(ctx: MethodContext): Promise<MethodResult> {
    const [id = '', index = '', hash = '', upTo] = ctx.args
    const rec = this.recs.get(id)
    if (rec === undefined || rec.from !== ctx.env.fromNode || rec.state === 'expected') throw new OutpostError('file_transfer_unknown', `file.chunk: no transfer ${id} from ${ctx.env.fromNode} here`)
    if (rec.state === 'done') { rec.resent += sizeOf(ctx.env.data); return {} }
    // Chunks still on their way when the transfer was cancelled: dropped.
    if (rec.state === 'cancelled') return {}
    if (rec.state !== 'receiving') throw new OutpostError('file_transfer_unknown', `file.chunk: transfer ${id} has ${rec.state}`)
    const i = Number(index)
    if (!Number.isInteger(i) || i < 0 || i >= rec.chunks) throw new OutpostError('method_args', `file.chunk: chunk ${index} of transfer ${id} is out of range (0–${rec.chunks - 1})`)
    const data = bytesOf(ctx.env.data)
    const expected = i === rec.chunks - 1 ? rec.size - i * rec.chunkBytes : rec.chunkBytes
    const f = await this.handle(rec)
    const o = f.order
    if (f.written.has(i) || (o.ahead.has(i) && !SHA256.test(hash))) { rec.resent += data.length; return {} }
    // Checked by upTo (in order: hashed once) or its own sha256; or ahead, by upTo later (in-order.ts).
    const how = data.length === expected && o.check(i, data, hash, upTo)
    if (how === false) throw new OutpostError('method_args', `file.chunk: chunk ${i} of transfer ${id} does not match its size or sha256; dropped (asked for again at commit)`)
    if (how !== 'ahead') { f.written.set(i); o.ahead.delete(i) }
    // Two copies of a chunk at once (one written ahead, one checked by its own sha256): written in the order they came.
    const put = (): Promise<unknown> => f.handle.write(data, 0, data.length, i * rec.chunkBytes)
    const write = o.writes.has(i) ? o.writes.get(i)!.catch(() => {}).then(put) : put()
    o.writes.set(i, write)
    try {
      await write
      if (o.writes.get(i) === write) o.writes.delete(i)
      giveBack(data) // nothing reads the chunk's bytes after this (whole-pool.ts)
      if (f.written.has(o.hashed) || o.ahead.has(o.hashed)) void o.catchUp(f.handle, (j) => f.written.has(j), (j) => f.written.set(j)).catch((err: Error) => this.o.log('warn', `files: transfer ${id}: ${err.message}`))
    } catch (err) {
      // A full disk does not get better by sending the chunk again: the transfer ends here,
      // and the sender hears it at its commit.
      const e = ioError(`cannot write ${rec.temp}`, err)
      await this.fail(rec, e.toJSON())
      throw e
    }
    f.timer ??= setTimeout(() => { f.timer = undefined; void this.sync(rec.id).catch((err: Error) => this.o.log('warn', `files: ${err.message}`)) }, SYNC_DELAY_MS)
    return {}
  }

  async commit(ctx: MethodContext): Promise<MethodResult> {
    const [id = '', what] = ctx.args
    const rec = this.recs.get(id)
    if (what === 'abort' && rec === undefined && /^[0-9A-Za-z_-]{1,64}$/.test(id)) {
      // Cancelled before its file.put came (or was run): a file.put arriving later is refused.
      await this.cancelUnopened(id, ctx.env.fromNode)
      return answer({ id, aborted: true })
    }
    if (rec === undefined || rec.from !== ctx.env.fromNode) throw new OutpostError('file_transfer_unknown', `file.commit: no transfer ${id} from ${ctx.env.fromNode} here`)
    if (what === 'abort') {
      await this.fail(rec, { code: 'cancelled', message: `file transfer ${id} was cancelled by ${ctx.env.fromNode} (the sender); the partial file was deleted` })
      return answer({ id, aborted: true })
    }
    if (rec.state === 'cancelled') throw new OutpostError('cancelled', rec.error?.message ?? `file.commit: transfer ${id} was cancelled`)
    if (rec.state === 'done') return answer({ id, done: true, path: rec.path, size: rec.size, sha256: rec.sha256 })
    if (rec.state === 'failed' && rec.error !== undefined && rec.error.code in ERROR_CODES) throw new OutpostError(rec.error.code as ErrorCode, rec.error.message)
    if (rec.state !== 'receiving') throw new OutpostError('file_transfer_unknown', `file.commit: transfer ${id} has ${rec.state}`)
    // A sender that hashed the file as it read it gives the sha256 now (file.put had none).
    if (what !== undefined && /^[0-9a-f]{64}$/.test(what)) {
      if (rec.sha256 !== undefined && rec.sha256 !== '' && rec.sha256 !== what) throw new OutpostError('method_args', `file.commit: transfer ${id} was opened with sha256 ${rec.sha256}, the commit says ${what}`)
      rec.sha256 = what
    }
    if (rec.sha256 === undefined || rec.sha256 === '') throw new OutpostError('method_args', `file.commit: transfer ${id} has no sha256 to check the file against (give it as the second argument)`)
    await this.flush(id)
    // Chunks written ahead wait for the ones before them (in-order.ts): not asked for again.
    const missing = new Bitmap(rec.chunks, rec.have).missing(4096).filter((i) => this.open.get(id)?.order.ahead.has(i) !== true)
    if (missing.length > 0) return answer({ id, missing })
    const f = await this.handle(rec)
    const sum = await sha256File(f.handle, rec.size, f.order.hash, f.order.hashed * rec.chunkBytes)
    if (sum !== rec.sha256) {
      const err = new OutpostError('file_hash_mismatch', `file transfer ${id}: ${rec.path} put together here has sha256 ${sum}, not ${rec.sha256}; the partial file was deleted and ${rec.path} left as it was`)
      await this.fail(rec, err.toJSON())
      throw err
    }
    if (rec.state !== 'receiving') throw new OutpostError('cancelled', rec.error?.message ?? `file.commit: transfer ${id} was cancelled`)
    try {
      const old = await fs.promises.lstat(rec.path).catch(() => undefined)
      await f.handle.chmod(rec.mode ?? (old?.isFile() ? old.mode & 0o7777 : 0o644))
      if (rec.uid !== undefined) await f.handle.chown(rec.uid, rec.gid ?? rec.uid)
      await f.handle.sync()
      await this.close(id)
      await fs.promises.rename(rec.temp!, rec.path)
      const d = await fs.promises.open(path.dirname(rec.path), 'r')
      try { await d.sync() } finally { await d.close() }
    } catch (err) {
      const e = ioError(`cannot put ${rec.path} in place`, err)
      await this.fail(rec, e.toJSON())
      throw e
    }
    rec.state = 'done'
    rec.updatedAt = this.o.now()
    await this.records.save(rec)
    this.o.log('info', `files: ${rec.path} received from ${rec.from} (${rec.size} bytes, sha256 ${rec.sha256}), transfer ${id}`)
    this.o.notify(inInfo(rec))
    return answer({ id, done: true, path: rec.path, size: rec.size, sha256: rec.sha256 })
  }

  /** End a transfer that will not complete: its temp file is deleted, the target untouched. */
  async fail(rec: InRecord, error: { code: string; message: string }): Promise<void> {
    if (ended(rec.state)) return
    // Set first: a chunk write or commit in progress sees it and stops.
    rec.state = error.code === 'cancelled' ? 'cancelled' : 'failed'
    await this.close(rec.id)
    if (rec.temp !== undefined) fs.rmSync(rec.temp, { force: true })
    rec.error = error
    rec.updatedAt = this.o.now()
    await this.records.save(rec)
    this.o.notify(inInfo(rec))
  }

  /** outpost cp --cancel here: the partial file goes, the target stays as it was. */
  cancel(rec: InRecord, by: string): Promise<void> {
    return this.fail(rec, { code: 'cancelled', message: `file transfer ${rec.id} from ${rec.from} to ${rec.path} was cancelled by ${by}; the partial file was deleted` })
  }

  private async cancelUnopened(id: string, from: string): Promise<void> {
    const now = this.o.now()
    const rec: InRecord = { id, from, path: '', state: 'cancelled', size: 0, chunkBytes: 0, chunks: 0, have: '', resent: 0, startedAt: now, updatedAt: now, error: { code: 'cancelled', message: `file transfer ${id} was cancelled by ${from} (the sender) before it was opened here` } }
    this.recs.set(id, rec)
    await this.records.save(rec)
  }

  private async handle(rec: InRecord): Promise<Open> {
    let f = this.open.get(rec.id)
    if (f !== undefined) return f
    let handle: fs.promises.FileHandle
    try {
      handle = await fs.promises.open(rec.temp!, fs.constants.O_RDWR | fs.constants.O_NOFOLLOW)
    } catch (err) {
      throw ioError(`cannot open ${rec.temp}`, err)
    }
    f = this.open.get(rec.id)
    if (f !== undefined) { await handle.close(); return f }
    f = { handle, have: new Bitmap(rec.chunks, rec.have), written: new Bitmap(rec.chunks, rec.have), sync: undefined, timer: undefined, order: new InOrder(rec.size, rec.chunkBytes) }
    this.open.set(rec.id, f)
    return f
  }

  /** Make what was written held: fdatasync the temp file, then record it (not a chunk whose write is still under way: the next sync's). */
  private sync(id: string): Promise<void> {
    const f = this.open.get(id)
    const rec = this.recs.get(id)
    if (f === undefined || rec === undefined) return Promise.resolve()
    const run = async (): Promise<void> => {
      const snapshot = Buffer.from(f.written.bits)
      for (const i of f.order.writes.keys()) snapshot[i >> 3]! &= ~(1 << (i & 7))
      await f.handle.datasync()
      f.have.bits.set(snapshot)
      rec.have = f.have.toString()
      rec.updatedAt = this.o.now()
      await this.records.save(rec)
      this.o.notify(inInfo(rec))
    }
    const p = (f.sync ?? Promise.resolve()).then(run)
    f.sync = p.finally(() => { if (f.sync === p) f.sync = undefined })
    return p
  }

  private async flush(id: string): Promise<void> {
    await Promise.allSettled([...(this.writing.get(id) ?? [])])
    const f = this.open.get(id)
    if (f === undefined) return
    await f.order.settled()
    if (f.timer !== undefined) { clearTimeout(f.timer); f.timer = undefined }
    await this.sync(id)
  }

  private async close(id: string): Promise<void> {
    const f = this.open.get(id)
    if (f === undefined) return
    if (f.timer !== undefined) clearTimeout(f.timer)
    await f.order.settled()
    await f.sync?.catch(() => {})
    this.open.delete(id)
    await f.handle.close().catch(() => {})
  }

  async closeAll(): Promise<void> {
    for (const id of [...this.open.keys()]) await this.flush(id).catch(() => {}).then(() => this.close(id))
  }
}
