/**
 * The sending side of a transfer: the file is opened at the receiver (file.put answers which
 * chunks it holds already), then read from disk chunk by chunk into the outbox as file.chunk
 * messages, a window of them in flight (sent, not yet acknowledged), and committed with the
 * whole file's sha256 (file.commit answers what is missing, or that the file is in place).
 *
 *   start ─▶ record ─▶ file.put ⇢ { have } ─▶ pump: read chunk i ─ sha256 ─▶ outbox
 *         ◀─ delivered (ACK) ─ pump the next … ─▶ file.commit sha256 ⇢ { missing } ─▶ pump those again
 *                                                                   ⇢ { done } ─▶ record done
 *
 * The whole file's sha256 is fed with each chunk as it is first read, in order (the file read
 * once; each chunk carries the sha256 so far, `upTo`). In memory only: a run that did not read
 * every chunk (a resume, chunks held already) hashes the file again before the commit, once.
 * Unless the node signs what it sends, a chunk goes into the outbox as a reference to its
 * source (chunk-ref.ts): the data is filled in as it is sent, read back and checked on a resend.
 *
 * The record (<dataDir>/transfers/out/<id>.json) is what a restart resumes from: the transfer
 * is opened again and the receiver says what it holds. Chunks still in the outbox are sent as
 * well (the receiver counts them as resent and writes each once).
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { OutpostError } from '../errors'
import type { MessageEvent } from '../events'
import type { MethodContext, MethodResult } from '../method'
import { ulid } from '../wire/ulid'
import { Bitmap } from './bitmap'
import { CHUNK_REF, expandChunk, HEAD_ROOM, type Chunk } from './chunk-ref'
import { ChunkPool } from './chunk-pool'
import { Records } from './records'
import { sha256Path, unchanged, WholeHash } from './whole-hash'
import { chunkAckTimeout } from './ack-timeout'
import type { FileTransfersOptions } from './index'
import { ended, KEEP_FINISHED_MS, outInfo, TRANSFER_RETRIES, TRANSFER_TTL, type Live, type OutRecord, type PutMeta, type TransferInfo } from './types'

export type { OutRecord } from './types'
export { ended, KEEP_FINISHED_MS, outInfo, TRANSFER_RETRIES, TRANSFER_TTL } from './types'

/** What the node gives its transfers (index.ts), and where the sender tells of each change. */
export interface SenderOptions extends FileTransfersOptions {
  notify: (info: TransferInfo) => void
}

/** Commits that may find chunks missing before the transfer is given up. */
const MAX_COMMIT_ROUNDS = 20

export class Sender {
  private readonly recs = new Map<string, OutRecord>()
  private readonly live = new Map<string, Live>()
  /** Chunk message id → transfer id, while in flight. */
  private readonly chunkOf = new Map<string, string>()
  /** Chunk message id → transfer id, for the transfer's run (a refused chunk's answer comes after its ACK). */
  private readonly chunkSent = new Map<string, string>()
  private readonly records: Records<OutRecord>
  private closed = false
  /** Chunk message id → its bytes (at HEAD_ROOM), read and hashed when queued, until its first send (upTo alone: its ACK). */
  private readonly fresh = new Map<string, Buffer>()
  /** Chunk buffers used again after their ACK (over tcp only: chunk-pool.ts). */
  readonly pool: ChunkPool

  constructor(private readonly o: SenderOptions) {
    this.records = new Records<OutRecord>(o.dataDir, 'out')
    this.pool = new ChunkPool(o.reuseChunkBuffers === true)
    for (const r of this.records.all()) {
      if (ended(r.state) && r.updatedAt < o.now() - KEEP_FINISHED_MS) void this.records.remove(r.id)
      else this.recs.set(r.id, r)
    }
  }

  list(): OutRecord[] {
    return [...this.recs.values()]
  }

  get(id: string): OutRecord | undefined {
    return this.recs.get(id)
  }

  /** After a start: open every unfinished transfer again. */
  resume(): void {
    for (const r of this.recs.values()) if (!ended(r.state)) void this.open(r)
  }

  /** Start sending `src` (a real, readable path) to `to`. */
  async start(o: { id: string; src: string; to: string; dest: string; name: string; mode?: number; owner?: string; mkdir?: boolean; rate?: number }): Promise<OutRecord> {
    let st: fs.Stats
    try {
      st = await fs.promises.stat(o.src)
    } catch {
      throw new OutpostError('file_not_found', `cp: ${o.src} does not exist on ${this.o.self}`)
    }
    if (!st.isFile()) throw new OutpostError('file_not_found', `cp: ${o.src} is not a regular file`)
    const chunkBytes = this.o.config.files.chunkBytes
    const chunks = Math.max(1, Math.ceil(st.size / chunkBytes))
    const now = this.o.now()
    const rec: OutRecord = {
      id: o.id, to: o.to, src: o.src, dest: o.dest, name: o.name, size: st.size, mtimeMs: st.mtimeMs, sha256: '', chunkBytes, chunks, rate: o.rate ?? 0,
      state: 'opening', have: new Bitmap(chunks).toString(), next: 0, resend: [], acked: 0, resent: 0, startedAt: now, updatedAt: now,
      ...(o.mode !== undefined ? { mode: o.mode } : {}), ...(o.owner !== undefined ? { owner: o.owner } : {}), ...(o.mkdir === true ? { mkdir: true } : {}),
    }
    this.recs.set(rec.id, rec)
    await this.records.save(rec)
    this.o.log('info', `files: sending ${o.src} (${st.size} bytes) to ${o.to}:${o.dest}, transfer ${rec.id}`)
    await this.open(rec)
    return rec
  }

  private async open(rec: OutRecord): Promise<void> {
    const meta: PutMeta = {
      id: rec.id, path: rec.dest, name: rec.name, size: rec.size, sha256: rec.sha256, chunkBytes: rec.chunkBytes,
      ...(rec.mode !== undefined ? { mode: rec.mode } : {}), ...(rec.owner !== undefined ? { owner: rec.owner } : {}), ...(rec.mkdir ? { mkdir: true } : {}),
    }
    rec.state = 'opening'
    await this.request(rec, 'file.put', [JSON.stringify(meta)])
  }

  private async request(rec: OutRecord, method: string, args: string[]): Promise<void> {
    // The id is known before the request is stored: its answer can come before submit resolves.
    const id = ulid()
    rec.pending = id
    rec.updatedAt = this.o.now()
    await this.o.submit([{ id, toNode: rec.to, method, methodArgs: args, replyMethod: 'file.reply', ttl: TRANSFER_TTL, retries: TRANSFER_RETRIES, methodTimeout: 600 }])
    await this.records.save(rec)
  }

  /** A reply to a file.put or file.commit of ours. */
  async reply(ctx: MethodContext): Promise<MethodResult> {
    const env = ctx.env
    const rec = [...this.recs.values()].find((r) => r.pending !== undefined && r.pending === env.inReplyTo)
    if (rec === undefined) {
      // A chunk the receiver refused (op.stop file.chunk, a methods.allow that lets in file.put
      // alone): sending it again would be refused again.
      const of = env.inReplyTo === undefined ? undefined : this.chunkSent.get(env.inReplyTo)
      const owner = of === undefined ? undefined : this.recs.get(of)
      if (owner !== undefined && env.error !== undefined && env.error.code !== 'method_args') await this.fail(owner, env.error)
      return {} // else an answer to a request overtaken by a newer one
    }
    rec.pending = undefined
    if (env.error !== undefined) {
      if (rec.state === 'opening' && rec.sha256 === '' && env.error.code === 'method_args' && /sha256 must be 64 hex digits/.test(env.error.message)) return this.hashFirst(rec)
      await this.fail(rec, env.error)
      return {}
    }
    let a: { have?: string; upTo?: boolean; missing?: number[]; done?: boolean; path?: string; size?: number; sha256?: string }
    try {
      a = JSON.parse(typeof env.data === 'string' ? env.data : Buffer.from(env.data ?? new Uint8Array()).toString('utf8')) as typeof a
    } catch {
      await this.fail(rec, { code: 'method_failed', message: `file transfer ${rec.id}: ${env.fromNode} answered something that is not JSON` })
      return {}
    }
    if (a.done === true) {
      rec.state = 'done'
      rec.acked = rec.size
      rec.result = { path: a.path ?? rec.dest, size: a.size ?? rec.size, sha256: a.sha256 ?? rec.sha256 }
      rec.updatedAt = this.o.now()
      await this.stopLive(rec.id)
      await this.records.save(rec)
      this.o.log('info', `files: ${rec.src} is in place at ${rec.to}:${rec.result.path}, transfer ${rec.id}`)
      this.o.notify(outInfo(rec))
      return {}
    }
    if (a.have !== undefined) {
      rec.have = a.have
      rec.upTo = a.upTo === true
      rec.next = 0
      rec.resend = []
      rec.acked = new Bitmap(rec.chunks, a.have).count() * rec.chunkBytes
    }
    if (a.missing !== undefined) {
      const live = this.liveOf(rec)
      if (++live.rounds > MAX_COMMIT_ROUNDS) {
        await this.fail(rec, { code: 'io', message: `file transfer ${rec.id}: ${rec.to} still misses ${a.missing.length} chunks after ${MAX_COMMIT_ROUNDS} rounds of sending them again; see its log` })
        return {}
      }
      rec.resend = a.missing
      rec.resent += a.missing.length * rec.chunkBytes
    }
    rec.state = 'sending'
    rec.updatedAt = this.o.now()
    await this.records.save(rec)
    this.o.notify(outInfo(rec))
    void this.pump(rec)
    return {}
  }

  /**
   * A receiver of a version before 2026-12-06 wants the whole file's sha256 in file.put, not with
   * file.commit: the file is hashed first and the transfer opened again with it.
   */
  private async hashFirst(rec: OutRecord): Promise<MethodResult> {
    this.o.log('info', `files: ${rec.to} takes the sha256 only before the chunks (an older outpost): hashing ${rec.src} first, transfer ${rec.id}`)
    try {
      rec.sha256 = await sha256Path(rec.src)
      await unchanged(rec)
      await this.open(rec)
    } catch (err) {
      await this.fail(rec, err instanceof OutpostError ? err.toJSON() : { code: 'io', message: `file transfer ${rec.id}: ${(err as Error).message}` })
    }
    return {}
  }

  /** What delivery says of a message: a chunk acknowledged makes room in its window. */
  onEvent(ev: MessageEvent): void {
    if (ev.type !== 'delivered' && ev.type !== 'expired') return
    const id = this.chunkOf.get(ev.id)
    if (id === undefined) return
    this.chunkOf.delete(ev.id)
    this.fresh.delete(ev.id)
    if (ev.type === 'delivered') this.pool.acked(ev.id)
    else this.pool.forget(ev.id)
    const rec = this.recs.get(id)
    const live = this.live.get(id)
    if (rec === undefined || live === undefined) return
    const index = live.inFlight.get(ev.id)
    live.inFlight.delete(ev.id)
    if (ev.type === 'expired') {
      void this.fail(rec, { code: ev.reason, message: `file transfer ${id}: a chunk to ${rec.to} was not delivered (${ev.reason})` })
      return
    }
    if (index !== undefined) rec.acked += index === rec.chunks - 1 ? rec.size - index * rec.chunkBytes : rec.chunkBytes
    const now = this.o.now()
    if (now - live.lastSave > 1000) {
      live.lastSave = now
      rec.updatedAt = now
      void this.records.save(rec).catch(() => {})
      this.o.notify(outInfo(rec))
    }
    void this.pump(rec)
  }

  private liveOf(rec: OutRecord): Live {
    let l = this.live.get(rec.id)
    if (l === undefined) {
      l = { handle: undefined, inFlight: new Map(), storing: 0, pumping: false, t0: this.o.now(), sentSince: 0, lastSave: 0, rounds: 0, sent: [], whole: new WholeHash(rec.chunks, this.o.config.files.window) }
      this.live.set(rec.id, l)
    }
    return l
  }

  /** Fill the window with the next chunks; commit once all are sent and acknowledged. */
  private async pump(rec: OutRecord): Promise<void> {
    const live = this.liveOf(rec)
    if (live.pumping || rec.state !== 'sending' || this.closed) return
    live.pumping = true
    try {
      const have = new Bitmap(rec.chunks, rec.have)
      const window = this.o.config.files.window
      // Chunks are read one after another, in order; each is stored (the journal's group commit,
      // an fdatasync) while the next is read, so a chunk's fdatasync does not hold up the next
      // one's read and hash: the window fills as fast as the disk reads.
      while (rec.state === 'sending' && !this.closed && live.inFlight.size + live.storing < window) {
        let i = rec.resend.shift()
        if (i === undefined) {
          while (rec.next < rec.chunks && have.has(rec.next)) live.whole.skip(rec.next++)
          if (rec.next >= rec.chunks) break
          i = rec.next++
        }
        live.storing++
        let stored: Promise<void>
        try {
          stored = this.storeChunk(rec, live, i, await this.readChunk(rec, live, i))
        } catch (err) {
          live.storing--
          throw err
        }
        const after = stored.then(
          () => { live.storing--; void this.pump(rec) },
          (err: unknown) => { live.storing--; void this.fail(rec, err instanceof OutpostError ? err.toJSON() : { code: 'io', message: `file transfer ${rec.id}: ${(err as Error).message}` }) },
        )
        // --rate paces chunk by chunk.
        if (rec.rate > 0) await after
      }
      if (rec.state === 'sending' && live.inFlight.size === 0 && live.storing === 0 && rec.resend.length === 0 && rec.next >= rec.chunks) {
        rec.state = 'committing'
        if (rec.sha256 === '') {
          const sha256 = await live.whole.digest(rec.src)
          // Read as it went: a write to the source meanwhile would go unseen by the chunks' own sha256s.
          await unchanged(rec)
          rec.sha256 = sha256
        }
        await this.request(rec, 'file.commit', [rec.id, rec.sha256])
        this.o.notify(outInfo(rec))
      }
    } catch (err) {
      await this.fail(rec, err instanceof OutpostError ? err.toJSON() : { code: 'io', message: `file transfer ${rec.id}: ${(err as Error).message}` })
    } finally {
      live.pumping = false
    }
  }

  private ackTimeout(rec: OutRecord): number {
    const { files, delivery } = this.o.config
    return chunkAckTimeout(files.window, rec.chunkBytes, delivery.ackTimeout, rec.rate)
  }

  /** Chunk `i` read from the source (after --rate's wait) into a buffer at HEAD_ROOM, with its sha256; fed to the whole file's. */
  private async readChunk(rec: OutRecord, live: Live, i: number): Promise<Chunk> {
    if (rec.rate > 0) {
      // --rate: no faster than rate bytes a second since this pass started.
      const due = live.t0 + (live.sentSince / rec.rate) * 1000 - this.o.now()
      if (due > 0) await new Promise((resolve) => setTimeout(resolve, due))
    }
    live.handle ??= await fs.promises.open(rec.src, 'r')
    const len = i === rec.chunks - 1 ? rec.size - i * rec.chunkBytes : rec.chunkBytes
    const room = this.pool.take(len) // all of it read, or the transfer fails
    const { bytesRead } = await live.handle.read(room, HEAD_ROOM, len, i * rec.chunkBytes)
    if (bytesRead !== len) throw new OutpostError('io', `file transfer ${rec.id}: ${rec.src} is shorter than when the transfer started (it changed while being sent)`)
    const buf = room.subarray(HEAD_ROOM)
    live.sentSince += len
    const upTo = rec.sha256 === '' ? live.whole.feed(i, buf) : undefined // to an upTo receiver: the chunk's own sha256 left out
    return { room, hash: upTo !== undefined && rec.upTo === true ? '' : createHash('sha256').update(buf).digest('hex'), upTo }
  }

  /** Chunk `i` stored in the outbox as a message (resolves once durable), then in flight. */
  private async storeChunk(rec: OutRecord, live: Live, i: number, { room, hash, upTo }: Chunk): Promise<void> {
    // The source is what keeps the chunk: the outbox keeps where it is and its sha256 (a signed
    // message keeps its data, the signature covers it).
    const ref = this.o.config.api.signingKey === null
    const id = ulid()
    if (ref) this.fresh.set(id, room)
    const args = ref ? [rec.id, String(i), hash, CHUNK_REF] : [rec.id, String(i), hash]
    if (upTo !== undefined) args.push(upTo)
    let env
    try {
      [env] = await this.o.submit([{ id, toNode: rec.to, method: 'file.chunk', methodArgs: args, ...(ref ? {} : { data: room.subarray(HEAD_ROOM) }), ttl: TRANSFER_TTL, retries: TRANSFER_RETRIES, ackTimeout: this.ackTimeout(rec), replyMethod: 'file.reply' }])
    } catch (err) {
      this.fresh.delete(id)
      throw err
    }
    live.inFlight.set(env!.id, i)
    this.chunkOf.set(env!.id, rec.id)
    this.chunkSent.set(env!.id, rec.id)
    live.sent.push(env!.id)
  }

  /** A stored file.chunk about to be sent (delivery, at each send): see chunk-ref.ts. */
  expand(body: Uint8Array): Uint8Array | null {
    return expandChunk(body, this.fresh, (id) => this.recs.get(id), (rec, error) => void this.fail(rec, error), (id, room, rec, ours) => this.pool.handed(id, room, ours && rec.to !== this.o.self && room.length === HEAD_ROOM + rec.chunkBytes))
  }

  async fail(rec: OutRecord, error: { code: string; message: string }): Promise<void> {
    if (ended(rec.state)) return
    const opened = rec.state === 'sending' || rec.state === 'committing'
    // The receiver ended it (outpost cp --cancel there): cancelled here too.
    rec.state = error.code === 'cancelled' ? 'cancelled' : 'failed'
    rec.error = error
    rec.pending = undefined
    rec.updatedAt = this.o.now()
    await this.stopLive(rec.id)
    await this.records.save(rec)
    this.o.log('warn', `files: transfer ${rec.id} of ${rec.src} to ${rec.to} failed: ${error.code}: ${error.message}`)
    this.o.notify(outInfo(rec))
    // The receiver deletes its partial file.
    if (opened) await this.o.submit([{ toNode: rec.to, method: 'file.commit', methodArgs: [rec.id, 'abort'], replyMethod: 'file.reply', ttl: TRANSFER_TTL }]).catch(() => {})
  }

  /**
   * Stop a transfer for good (outpost cp --cancel): nothing more is sent, and the receiver is
   * told to delete its partial file (unless it is the one that cancelled: `tell` false).
   */
  async cancel(rec: OutRecord, by: string, tell: boolean): Promise<void> {
    if (ended(rec.state)) return
    rec.state = 'cancelled'
    rec.error = { code: 'cancelled', message: `file transfer ${rec.id} of ${rec.src} to ${rec.to} was cancelled by ${by}` }
    rec.pending = undefined
    rec.updatedAt = this.o.now()
    await this.stopLive(rec.id)
    await this.records.save(rec)
    this.o.log('info', `files: ${rec.error.message}`)
    this.o.notify(outInfo(rec))
    // Sent even while opening: the file.put may have made the partial file there already.
    if (tell) await this.o.submit([{ toNode: rec.to, method: 'file.commit', methodArgs: [rec.id, 'abort'], replyMethod: 'file.reply', ttl: TRANSFER_TTL, retries: TRANSFER_RETRIES }]).catch((err: Error) => this.o.log('warn', `files: cannot tell ${rec.to} that transfer ${rec.id} was cancelled: ${err.message}`))
  }

  private async stopLive(id: string): Promise<void> {
    const l = this.live.get(id)
    if (l === undefined) return
    this.live.delete(id)
    for (const m of l.inFlight.keys()) this.chunkOf.delete(m)
    for (const m of l.sent) { this.chunkSent.delete(m); this.fresh.delete(m); this.pool.forget(m) }
    if (this.live.size === 0) this.pool.drain()
    await l.handle?.close().catch(() => {})
  }

  async close(): Promise<void> {
    this.closed = true
    for (const id of [...this.live.keys()]) await this.stopLive(id)
    await this.records.settled() // a progress save not awaited (an ACK's) ends before close does
  }
}
