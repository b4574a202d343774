/**
 * A node's file transfers: the sending side (sender.ts), the receiving side (receiver.ts) and
 * what the local APIs ask for (`cp`, `transfers`). The file.* methods reach it as ctx.files.
 *
 *   cp LOCAL NODE:/p ─▶ Sender.start ─ file.put, file.chunk…, file.commit ─▶ NODE's Receiver
 *   cp NODE:/p LOCAL ─▶ Receiver.expect (this node's choice of target) ─ file.get ─▶ NODE's Sender ─▶ here
 *   cp A:/p B:/q     ─ file.get {to: B} ─▶ A's Sender ─▶ B's Receiver (B's methods.allow must let A call file.*)
 */
import path from 'node:path'
import fs from 'node:fs'
import type { Config } from '../config'
import { ERROR_CODES, OutpostError, type ErrorCode } from '../errors'
import type { MessageEvent } from '../events'
import type { LogFn } from '../log'
import type { MethodContext, MethodResult } from '../method'
import type { Envelope, MessageDraft } from '../wire/envelope'
import { ulid } from '../wire/ulid'
import { inInfo, Receiver } from './receiver'
import { readableFile } from './rules'
import { ended, outInfo, Sender, TRANSFER_RETRIES, TRANSFER_TTL } from './sender'
import type { FileRoom, GetMeta, TransferInfo } from './types'

export type { FileRoom, TransferInfo } from './types'

export interface FileTransfersOptions {
  self: string
  dataDir: string
  config: Config
  log: LogFn
  now: () => number
  submit: (drafts: MessageDraft[]) => Promise<Envelope[]>
  /** The transport is tcp: the sender may use a chunk's buffer again once the chunk is ACKed (chunk-pool.ts). */
  reuseChunkBuffers?: boolean
}

/** What `outpost cp` asks (the socket's {"op":"cp"}); local paths absolute, remote ones NODE:/abs/path. */
export interface CopyRequest {
  src: string
  dst: string
  mode?: number
  owner?: string
  mkdir?: boolean
  rate?: number
}

/** How long file.get waits for a third node to accept a copy before it answers `started` anyway. */
const OPEN_WAIT_MS = 30_000

const REMOTE = /^([A-Za-z0-9][A-Za-z0-9_-]{0,62}):(.*)$/

/** A side of a copy: a node's path, or a local one. */
export function parseSide(s: string): { node?: string; path: string } {
  const m = REMOTE.exec(s)
  if (m !== null && m[2]!.startsWith('/')) return { node: m[1]!, path: m[2]! }
  if (m !== null) throw new OutpostError('usage', `cp: ${JSON.stringify(s)}: the path on node ${m[1]} must be absolute (${m[1]}:/path)`)
  return { path: s }
}

export class FileTransfers implements FileRoom {
  readonly sender: Sender
  readonly receiver: Receiver
  private readonly watchers = new Map<string, Set<(t: TransferInfo) => void>>()
  /** file.get request id → the pull it starts here. */
  private readonly pulls = new Map<string, string>()

  constructor(private readonly o: FileTransfersOptions) {
    const notify = (t: TransferInfo): void => { for (const fn of this.watchers.get(t.id) ?? []) fn(t) }
    this.sender = new Sender({ ...o, notify })
    this.receiver = new Receiver({ ...o, notify })
  }

  resume(): void {
    this.sender.resume()
  }

  async close(): Promise<void> {
    await this.sender.close()
    await this.receiver.closeAll()
  }

  onEvent(ev: MessageEvent): void {
    this.sender.onEvent(ev)
  }

  /** A stored file.chunk about to be sent: its data filled in from the source (Sender.expand). */
  expand(body: Uint8Array): Uint8Array | null {
    return this.sender.expand(body)
  }

  /**
   * A file.* message let in whatever methods.allow (and requireSignatures) say: a part of a pull
   * this node expects, or the receiver of a transfer this node sends telling it to stop
   * (file.commit [id, abort-send] from that very receiver: all it can do is end that transfer).
   */
  admits(env: Envelope): boolean {
    const args = env.methodArgs
    if (env.method === 'file.commit' && args?.length === 2 && args[1] === 'abort-send') {
      const rec = this.sender.get(args[0] ?? '')
      return rec !== undefined && rec.to === env.fromNode
    }
    return this.receiver.admits(env.method, env.methodArgs, env.fromNode)
  }

  /** Every transfer this node keeps a record of, newest first. */
  list(): TransferInfo[] {
    return [...this.sender.list().map(outInfo), ...this.receiver.list().map(inInfo)].sort((a, b) => b.startedAt - a.startedAt)
  }

  info(id: string): TransferInfo | undefined {
    const s = this.sender.get(id)
    if (s !== undefined) return outInfo(s)
    const r = this.receiver.get(id)
    return r === undefined ? undefined : inInfo(r)
  }

  /** Call fn with each change of transfer `id`; returns the unsubscribe. */
  watch(id: string, fn: (t: TransferInfo) => void): () => void {
    let set = this.watchers.get(id)
    if (set === undefined) this.watchers.set(id, (set = new Set()))
    set.add(fn)
    return () => {
      set.delete(fn)
      if (set.size === 0) this.watchers.delete(id)
    }
  }

  /** Start a copy asked for here; resolves to its transfer id once it is under way (durable). */
  async copy(req: CopyRequest, onId: (id: string) => void = () => {}): Promise<{ id: string; local: boolean }> {
    const src = parseSide(req.src)
    const dst = parseSide(req.dst)
    const opts = { ...(req.mode !== undefined ? { mode: req.mode } : {}), ...(req.owner !== undefined ? { owner: req.owner } : {}), ...(req.mkdir === true ? { mkdir: true } : {}) }
    const id = ulid()
    onId(id)
    if (src.node === undefined && dst.node === undefined) throw new OutpostError('usage', 'cp: one side must be NODE:/path (to copy between local paths, use cp(1))')
    if (src.node === undefined) {
      if (!path.isAbsolute(src.path)) throw new OutpostError('usage', `cp: the local path ${JSON.stringify(src.path)} must be absolute here (outpost cp makes it so)`)
      const real = await fs.promises.realpath(src.path).catch(() => { throw new OutpostError('file_not_found', `cp: ${src.path} does not exist`) })
      await this.sender.start({ id, src: real, to: dst.node!, dest: dst.path, name: path.basename(src.path), ...opts, ...(req.rate !== undefined ? { rate: req.rate } : {}) })
      return { id, local: true }
    }
    const meta: GetMeta = { id, path: src.path, dest: dst.path, ...opts, ...(req.rate !== undefined ? { rate: req.rate } : {}) }
    if (dst.node === undefined) {
      if (!path.isAbsolute(dst.path)) throw new OutpostError('usage', `cp: the local path ${JSON.stringify(dst.path)} must be absolute here (outpost cp makes it so)`)
      const st = await fs.promises.stat(dst.path).catch(() => undefined)
      const target = dst.path.endsWith('/') || st?.isDirectory() === true ? path.join(dst.path, path.basename(src.path)) : dst.path
      const rec = await this.receiver.expect(id, src.node, target, opts)
      meta.dest = target
      await this.ask(src.node, meta, id).catch(async (err: unknown) => {
        // Not asked for (outbox full, disk full): nothing will come.
        await this.receiver.fail(rec, err instanceof OutpostError ? err.toJSON() : { code: 'io', message: String(err) })
        throw err
      })
      return { id, local: true }
    }
    meta.to = dst.node
    await this.ask(src.node, meta, id)
    return { id, local: false }
  }

  /**
   * Cancel transfer `id` (outpost cp --cancel, POST /v1/transfers/ID/cancel) on this node, the
   * sending or the receiving end, and tell the other end: the receiver deletes its partial file
   * and leaves the target as it was, the sender stops; both records say `cancelled`.
   */
  async cancel(id: string, by: string): Promise<TransferInfo> {
    const out = this.sender.get(id)
    const inc = this.receiver.get(id)
    if (out === undefined && inc === undefined) throw new OutpostError('file_transfer_unknown', `cp --cancel: this node has no transfer ${id} (outpost transfers lists them; a copy between two other nodes is cancelled on one of them)`)
    const ends = [out, inc].filter((r) => r !== undefined)
    if (ends.every((r) => ended(r.state))) throw new OutpostError('file_transfer_ended', `cp --cancel: transfer ${id} has ended already (${ends.map((r) => r.state).join(', ')}); nothing changed`)
    if (inc !== undefined && !ended(inc.state)) {
      await this.receiver.cancel(inc, by)
      // A copy to this node itself: its sending end is stopped below, no message needed.
      if (out === undefined) {
        await this.o.submit([{ toNode: inc.from, method: 'file.commit', methodArgs: [id, 'abort-send'], replyMethod: 'file.reply', ttl: TRANSFER_TTL, retries: TRANSFER_RETRIES }])
          .catch((err: Error) => this.o.log('warn', `files: cannot tell ${inc.from} that transfer ${id} was cancelled: ${err.message}`))
      }
    }
    if (out !== undefined) await this.sender.cancel(out, by, inc === undefined)
    return this.info(id)!
  }

  /** Send file.get to `node`; its answer is known as the one for transfer `id` before it can come. */
  private async ask(node: string, meta: GetMeta, id: string): Promise<void> {
    const request = ulid()
    this.pulls.set(request, id)
    try {
      await this.o.submit([{ id: request, toNode: node, method: 'file.get', methodArgs: [JSON.stringify(meta)], replyMethod: 'file.reply', ttl: TRANSFER_TTL, retries: TRANSFER_RETRIES, methodTimeout: 600 }])
    } catch (err) {
      this.pulls.delete(request)
      throw err
    }
  }

  // ── the file.* methods ──

  put(ctx: MethodContext): Promise<MethodResult> { return this.receiver.put(ctx) }
  chunk(ctx: MethodContext): Promise<MethodResult> { return this.receiver.chunk(ctx) }
  commit(ctx: MethodContext): Promise<MethodResult> {
    if (ctx.args[1] === 'abort-send') return this.abortSend(ctx)
    return this.receiver.commit(ctx)
  }

  /** file.commit [id, abort-send]: the receiver of a transfer this node sends cancelled it. */
  private async abortSend(ctx: MethodContext): Promise<MethodResult> {
    const id = ctx.args[0] ?? ''
    const rec = this.sender.get(id)
    if (rec === undefined || rec.to !== ctx.env.fromNode) throw new OutpostError('file_transfer_unknown', `file.commit: ${this.o.self} sends no transfer ${id} to ${ctx.env.fromNode}`)
    await this.sender.cancel(rec, `${ctx.env.fromNode} (the receiver)`, false)
    return { data: JSON.stringify({ id, cancelled: true }) }
  }

  /** file.get: send a file this node may read (files.read) to the asking node, or to `to`. */
  async get(ctx: MethodContext): Promise<MethodResult> {
    const meta = parseGet(ctx.args)
    const { real } = await readableFile(meta.path, this.o.config, this.o.dataDir)
    const to = meta.to ?? ctx.env.fromNode
    const known = this.sender.get(meta.id)
    const rec = known ?? await this.sender.start({
      id: meta.id, src: real, to, dest: meta.dest, name: path.basename(meta.path),
      ...(meta.mode !== undefined ? { mode: meta.mode } : {}), ...(meta.owner !== undefined ? { owner: meta.owner } : {}), ...(meta.mkdir === true ? { mkdir: true } : {}), ...(meta.rate !== undefined ? { rate: meta.rate } : {}),
    })
    // A copy to a third node: the node that asked sees nothing of it after this answer, so
    // the receiver's first word (a refusal: denied, file_outside, …) is waited for, a while.
    if (to !== ctx.env.fromNode) await this.opened(rec.id, OPEN_WAIT_MS)
    const now = this.sender.get(rec.id) ?? rec
    if (now.state === 'failed' && now.error !== undefined) {
      throw new OutpostError(now.error.code in ERROR_CODES ? now.error.code as ErrorCode : 'method_failed', `file.get: ${to} refused ${meta.dest}: ${now.error.message}`)
    }
    return { data: JSON.stringify({ id: rec.id, started: true, to, state: now.state, size: rec.size, ...(rec.sha256 !== '' ? { sha256: rec.sha256 } : {}) }) }
  }

  /** Resolves once transfer `id` is past its opening (or after `ms`). */
  private opened(id: string, ms: number): Promise<void> {
    if (this.sender.get(id)?.state !== 'opening') return Promise.resolve()
    return new Promise((resolve) => {
      const stop = this.watch(id, (t) => { if (t.state !== 'opening') end() })
      const timer = setTimeout(() => end(), ms)
      const end = (): void => { clearTimeout(timer); stop(); resolve() }
    })
  }

  /** file.reply: the answer to a file.put, file.commit or file.get this node sent. */
  async reply(ctx: MethodContext): Promise<MethodResult> {
    const pull = ctx.env.inReplyTo === undefined ? undefined : this.pulls.get(ctx.env.inReplyTo)
    if (pull === undefined) return this.sender.reply(ctx)
    this.pulls.delete(ctx.env.inReplyTo!)
    const err = ctx.env.error
    const rec = this.receiver.get(pull)
    if (err === undefined) {
      // A copy between two other nodes: the source has started it; that is all this node sees.
      if (rec === undefined) for (const fn of this.watchers.get(pull) ?? []) fn({ id: pull, direction: 'out', peer: ctx.env.fromNode, path: '', state: 'sending', size: 0, bytes: 0, resent: 0, startedAt: 0, updatedAt: this.o.now() })
      return {}
    }
    if (rec !== undefined) await this.receiver.fail(rec, err)
    else for (const fn of this.watchers.get(pull) ?? []) fn({ id: pull, direction: 'out', peer: ctx.env.fromNode, path: '', state: 'failed', size: 0, bytes: 0, resent: 0, startedAt: 0, updatedAt: this.o.now(), error: err })
    return {}
  }
}

/** file.get's arguments: one JSON object, or steward's REQCopySrc form [srcPath, dstNode, dstPath]. */
function parseGet(args: readonly string[]): GetMeta & { to?: string } {
  if (args.length === 3) {
    const [p, to, dest] = args as [string, string, string]
    return { id: ulid(), path: p, to, dest }
  }
  let m: GetMeta
  try {
    m = JSON.parse(args[0] ?? '') as GetMeta
  } catch {
    throw new OutpostError('method_args', 'file.get: takes the transfer as JSON ({id, path, dest, to?, mode?, owner?, mkdir?, rate?}), or SRC_PATH DST_NODE DST_PATH')
  }
  if (typeof m !== 'object' || m === null || typeof m.path !== 'string' || typeof m.dest !== 'string') throw new OutpostError('method_args', 'file.get: path and dest must be strings')
  if (typeof m.id !== 'string' || !/^[0-9A-Za-z_-]{1,64}$/.test(m.id)) throw new OutpostError('method_args', 'file.get: id must be a transfer id')
  return m
}
