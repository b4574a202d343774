/**
 * Jobs: one message sent to many nodes (a selector, or several names), at most `batch` at once,
 * stopping after `maxErrors` failures, a `canary` first. Central keeps each job in its data
 * directory (store.ts) and picks it up again after a restart.
 *
 *   create ─ resolve receivers (selectors → names + the selector that picked each) ─ a fixed
 *            message id per node ─▶ save ─▶ pump
 *   pump   ─ stop? (max-errors, a canary not ok, cancel: the rest are skipped)
 *          ─ start nodes while fewer than `batch` are under way: mark sent (store) ─▶ outbox
 *   delivered event ─▶ delivered;  a stream chunk ─▶ running;  final reply (kept by reply.job) ─▶
 *          ok | failed | expired | not_selected ─▶ save ─▶ pump
 *
 * Nothing runs twice: a node's message id is fixed when the job is made, and marked sent before
 * it is handed to the outbox. After a crash a node that was handed over is looked up: its final reply
 * kept (reply.job), still queued in the outbox, or delivered (the outbox's record of the request:
 * its reply is still to come); only a message the outbox never took is handed over again, and
 * the receiver's record of ids it has seen would not run it twice even then.
 */
import { OutpostError } from '../errors'
import type { OutpostNode } from '../node'
import { apiSigner } from '../signer'
import { checkReceivers } from '../submit'
import { dataText, type MessageDraft } from '../wire/envelope'
import { ulid } from '../wire/ulid'
import { FINAL, JobStore, NODE_STATES, type JobNode, type JobOptions, type JobRecord, type KeptReply, type NodeState } from './store'

export const JOB_REPLY_METHOD = 'reply.job'

/** A change to a job: its record after the change, and the node that changed, if one did. */
export interface JobEvent {
  job: JobRecord
  node?: JobNode
}

/** How many nodes of a job are in each state. */
export function counts(job: JobRecord): Record<NodeState, number> {
  const out = Object.fromEntries(NODE_STATES.map((s) => [s, 0])) as Record<NodeState, number>
  for (const n of job.nodes) out[n.state]++
  return out
}

/** Check job options from a request; throws api_bad_request naming the one that is wrong. */
export function checkOptions(o: Record<string, unknown>): JobOptions {
  const out: JobOptions = {}
  const whole = (k: string, min: number): number | undefined => {
    const v = o[k]
    if (v === undefined) return undefined
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new OutpostError('api_bad_request', `job: ${k} must be a whole number of at least ${min}, got ${JSON.stringify(v)}`)
    return v
  }
  if (o.batch !== undefined) {
    const b = typeof o.batch === 'number' ? String(o.batch) : o.batch
    if (typeof b !== 'string' || !/^[1-9]\d{0,5}%?$/.test(b) || (b.endsWith('%') && Number(b.slice(0, -1)) > 100)) {
      throw new OutpostError('api_bad_request', `job: batch must be a number of nodes (5) or a percentage of them (10%), got ${JSON.stringify(o.batch)}`)
    }
    out.batch = b
  }
  const maxErrors = whole('maxErrors', 1)
  const canary = whole('canary', 1)
  const ttl = whole('ttl', 1)
  if (maxErrors !== undefined) out.maxErrors = maxErrors
  if (canary !== undefined) out.canary = canary
  if (ttl !== undefined) out.ttl = ttl
  const unknown = Object.keys(o).filter((k) => !['batch', 'maxErrors', 'canary', 'ttl'].includes(k))
  if (unknown.length > 0) throw new OutpostError('api_bad_request', `job: unknown option ${unknown.join(', ')} (batch, maxErrors, canary, ttl)`)
  return out
}

/** Nodes under way at once: a count, a percentage of `total` (at least 1), or all. */
export function batchSize(batch: string | undefined, total: number): number {
  if (batch === undefined) return Math.max(total, 1)
  if (batch.endsWith('%')) return Math.max(1, Math.ceil((total * Number(batch.slice(0, -1))) / 100))
  return Number(batch)
}

/** How long a change that resume() can work out again may wait to be saved. */
const SAVE_DELAY_MS = 200

/** Output kept per node, as reply.job keeps it. */
const MAX_OUTPUT = 4096

function cut(v: Uint8Array | string | undefined): string | undefined {
  const s = dataText(v)
  if (s === '') return undefined
  return s.length > MAX_OUTPUT ? `${s.slice(0, MAX_OUTPUT)}…` : s
}

export class JobRunner {
  private readonly node: OutpostNode
  private readonly store: JobStore
  private readonly jobs = new Map<string, JobRecord>()
  /** Message id → its job and node. */
  private readonly byMessage = new Map<string, { job: JobRecord; node: JobNode }>()
  private readonly listeners = new Set<(ev: JobEvent) => void>()
  private readonly unwatch: (() => void)[] = []
  private closed = false
  /** Jobs with a change not yet saved (saveSoon). */
  private readonly dirty = new Set<string>()

  constructor(node: OutpostNode) {
    this.node = node
    this.store = new JobStore(node.dataDir)
    // Watch first: a reply arriving while the kept ones are read is not missed (applied once).
    this.unwatch.push(node.watchReplies((env) => {
      const hit = this.byMessage.get(env.inReplyTo ?? '')
      if (hit === undefined || env.fromNode !== hit.node.name) return
      if (env.final === false && env.error === undefined) return this.running(hit.job, hit.node)
      const output = cut(env.data)
      this.ended(hit.job, hit.node, { id: env.inReplyTo!, node: env.fromNode, at: Date.now(), ...(env.exitCode !== undefined ? { exitCode: env.exitCode } : {}), ...(env.error ? { error: env.error } : {}), ...(output !== undefined ? { output } : {}) })
    }))
    this.unwatch.push(node.watchEvents((ev) => {
      if (ev.type !== 'delivered') return
      const hit = this.byMessage.get(ev.id)
      if (hit === undefined || hit.node.state !== 'pending') return
      hit.node.state = 'delivered'
      hit.node.deliveredAt = Date.now()
      this.changed(hit.job, hit.node)
    }))
    // op.cancel of a job id (methods/op.ts): what has not started is skipped.
    node.control.cancelJob = (id, by) => {
      const job = this.jobs.get(id)
      if (job === undefined) return false
      if (job.endedAt !== undefined) throw new OutpostError('method_failed', `op.cancel: job ${id} has ended already (${job.status})`)
      this.cancel(id, by)
      return true
    }
    for (const job of this.store.load()) {
      this.jobs.set(job.id, job)
      if (job.endedAt === undefined) this.resume(job)
    }
    this.prune()
  }

  /** Make a job of `draft` (its toNode/toNodes: names and selectors) and start it. */
  create(draft: MessageDraft, options: JobOptions, allowUnknown: boolean, origin?: string): JobRecord {
    if (this.closed) throw new OutpostError('outbox_closed', `jobs: ${this.node.name} is stopping`)
    const targets = [...(draft.toNode !== undefined ? [draft.toNode] : []), ...(draft.toNodes ?? [])]
    const drafts = [{ ...draft }]
    checkReceivers(this.node, drafts, allowUnknown)
    const id = ulid()
    const nodes: JobNode[] = []
    const seen = new Set<string>()
    for (const d of drafts) {
      for (const name of [...(d.toNode !== undefined ? [d.toNode] : []), ...(d.toNodes ?? [])]) {
        if (seen.has(name)) continue
        seen.add(name)
        nodes.push({ name, id: ulid(), state: 'pending', ...(d.selector !== undefined ? { selector: d.selector } : {}) })
      }
    }
    const { toNode: _t, toNodes: _ts, id: _id, selector: _s, createdAt: _c, ...message } = draft
    message.replyMethod = JOB_REPLY_METHOD
    message.replyMethodArgs = [id]
    if (options.ttl !== undefined) message.ttl = options.ttl
    const job: JobRecord = { id, createdAt: Date.now(), ...(origin !== undefined ? { origin } : {}), targets, message, options, status: 'running', nodes }
    this.jobs.set(id, job)
    for (const n of nodes) this.byMessage.set(n.id, { job, node: n })
    this.store.save(job)
    this.pump(job)
    return job
  }

  /** Ended jobs beyond jobs.keep go, oldest first (their record and kept replies). */
  private prune(): void {
    const ended = [...this.jobs.values()].filter((j) => j.endedAt !== undefined).sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
    for (const job of ended.slice(0, Math.max(0, ended.length - this.node.config.jobs.keep))) {
      this.jobs.delete(job.id)
      this.dirty.delete(job.id)
      for (const n of job.nodes) this.byMessage.delete(n.id)
      this.store.remove(job.id)
    }
  }

  /** Every job, newest first. */
  list(): JobRecord[] {
    return [...this.jobs.values()].sort((a, b) => b.createdAt - a.createdAt || b.id.localeCompare(a.id))
  }

  get(id: string): JobRecord {
    const job = this.jobs.get(id)
    if (job === undefined) throw new OutpostError('job_unknown', `jobs: ${this.node.name} keeps no job ${JSON.stringify(id)} (outpost jobs lists them)`)
    return job
  }

  /**
   * Stop what has not started: nodes waiting for their turn are skipped; a node whose message still
   * waits in the outbox never sent is withdrawn (its error reply `withdrawn` makes it `cancelled`);
   * those under way finish.
   */
  cancel(id: string, by: string): JobRecord {
    const job = this.get(id)
    if (job.status !== 'running') return job
    job.status = 'cancelled'
    job.reason = `cancelled by ${by}`
    this.pump(job)
    this.saveNow(job)
    const waiting = job.nodes.filter((n) => n.sentAt !== undefined && n.state === 'pending').map((n) => n.id)
    // Not removed (delivery logged why): they go on, as messages under way do.
    if (waiting.length > 0) this.node.delivery.withdraw(waiting).catch(() => {})
    return job
  }

  /** Call `fn` with every change to any job; returns the unsubscribe. */
  watch(fn: (ev: JobEvent) => void): () => void {
    this.listeners.add(fn)
    return () => { this.listeners.delete(fn) }
  }

  close(): void {
    delete this.node.control.cancelJob
    for (const id of [...this.dirty]) { const job = this.jobs.get(id); if (job !== undefined) this.saveNow(job) }
    this.closed = true
    for (const u of this.unwatch.splice(0)) u()
    this.listeners.clear()
  }

  /** After a restart: where each node handed to the outbox stands now. */
  private resume(job: JobRecord): void {
    for (const n of job.nodes) this.byMessage.set(n.id, { job, node: n })
    const sent = this.store.sent(job.id)
    for (const n of job.nodes) if (n.sentAt === undefined && sent.has(n.id)) n.sentAt = sent.get(n.id)!
    const kept = this.store.replies(job.id)
    const again: JobNode[] = []
    for (const n of job.nodes) {
      if (FINAL.has(n.state) || n.sentAt === undefined) continue
      const reply = kept.get(n.id)
      if (reply !== undefined) { this.settle(n, reply); continue }
      if (this.node.outbox.get(n.id) !== undefined) continue // still queued: delivery goes on
      if (this.node.outbox.sentRequest(n.id, n.name, JOB_REPLY_METHOD)) {
        if (n.state === 'pending') n.state = 'delivered' // its reply is still to come
        continue
      }
      const ttl = job.message.ttl ?? this.node.config.delivery.ttl
      if (Date.now() > n.sentAt + ttl * 1000) {
        // Past its ttl the outbox's record of it may be gone while the node ran it: never sent again.
        this.settle(n, { id: n.id, node: n.name, at: Date.now(), error: { code: 'ttl_expired', message: `${job.id}: central was down past the ttl (${ttl} s) of its message to ${n.name}, which is not sent again; it may or may not have run` } })
        continue
      }
      again.push(n) // marked as handed over, but the outbox never took it
    }
    this.store.save(job)
    for (const n of again) this.submit(job, n)
    this.pump(job)
  }

  private running(job: JobRecord, n: JobNode): void {
    if (FINAL.has(n.state) || n.state === 'running') return
    n.state = 'running'
    this.changed(job, n)
  }

  private ended(job: JobRecord, n: JobNode, reply: KeptReply): void {
    if (FINAL.has(n.state)) return
    this.settle(n, reply)
    this.changed(job, n)
    this.pump(job)
  }

  /** A node's final reply decides its state. */
  private settle(n: JobNode, r: KeptReply): void {
    const code = r.error?.code
    n.state = code === undefined ? ((r.exitCode ?? 0) === 0 ? 'ok' : 'failed')
      : code === 'ttl_expired' || code === 'not_delivered' ? 'expired'
        : code === 'not_selected' ? 'not_selected' : code === 'withdrawn' ? 'cancelled' : 'failed'
    n.endedAt = r.at
    if (r.exitCode !== undefined) n.exitCode = r.exitCode
    if (r.error !== undefined) n.error = r.error
    if (r.output !== undefined) n.output = r.output
  }

  /** Start what may start now; stop what must stop; end the job when every node ended. */
  private pump(job: JobRecord): void {
    if (job.endedAt !== undefined || this.closed) return
    const before = job.status
    const nodes = job.nodes
    const o = job.options
    const errors = nodes.filter((n) => n.state === 'failed' || n.state === 'expired').length
    const canary = Math.min(o.canary ?? 0, nodes.length)
    const badCanary = nodes.slice(0, canary).find((n) => FINAL.has(n.state) && n.state !== 'ok')
    if (job.status === 'running' && o.maxErrors !== undefined && errors >= o.maxErrors) {
      job.status = 'stopped'
      job.reason = `${errors} node${errors === 1 ? '' : 's'} failed (max-errors ${o.maxErrors}): no more were started`
    } else if (job.status === 'running' && badCanary !== undefined) {
      job.status = 'stopped'
      job.reason = `the canary ${badCanary.name} ended ${badCanary.state}: no more were started`
    }
    const start: JobNode[] = []
    if (job.status !== 'running') {
      for (const n of nodes) {
        if (n.sentAt !== undefined || FINAL.has(n.state)) continue
        n.state = 'skipped'
        n.reason = job.reason ?? 'stopped'
        this.emit({ job, node: n })
      }
    } else {
      let free = batchSize(o.batch, nodes.length) - nodes.filter((n) => n.sentAt !== undefined && !FINAL.has(n.state)).length
      const canaryOk = nodes.slice(0, canary).every((n) => n.state === 'ok')
      for (const n of canaryOk ? nodes : nodes.slice(0, canary)) {
        if (free <= 0) break
        if (n.sentAt !== undefined || FINAL.has(n.state)) continue
        n.sentAt = Date.now()
        start.push(n)
        free--
      }
    }
    if (nodes.every((n) => FINAL.has(n.state))) {
      if (job.status === 'running') job.status = 'done'
      job.endedAt = Date.now()
      queueMicrotask(() => this.prune())
    }
    // Marked before the outbox gets them: after a crash they are looked up, not sent blind. A
    // stop or the end is saved at once; the rest can wait a moment (saveSoon).
    if (start.length > 0) this.store.markSent(job.id, start.map((n) => n.id), start[0]!.sentAt!)
    if (job.status !== before || job.endedAt !== undefined) this.saveNow(job)
    else this.saveSoon(job)
    this.emit({ job })
    for (const n of start) this.submit(job, n)
  }

  private submit(job: JobRecord, n: JobNode): void {
    const fail = (err: unknown): void => {
      const e = err instanceof OutpostError ? err.toJSON() : { code: 'io', message: (err as Error).message }
      this.ended(job, n, { id: n.id, node: n.name, at: Date.now(), error: e })
    }
    let envs
    try {
      envs = this.node.prepare([{ ...job.message, toNode: n.name, id: n.id, ...(n.selector !== undefined ? { selector: n.selector } : {}) }])
      // Signed as it starts (api.signingKey), like any message the APIs take: its expiry counts from now.
      apiSigner(this.node.config.api.signingKey)?.signAll(envs, Date.now(), this.node.config.delivery.ttl)
    } catch (err) {
      // An unreadable signing key: later, as a refused store would be, not inside this round.
      queueMicrotask(() => fail(err))
      return
    }
    // Not stored (a full outbox): this node's outcome is that error.
    this.node.submitPrepared(envs).catch(fail)
  }

  private changed(job: JobRecord, n: JobNode): void {
    this.saveSoon(job)
    this.emit({ job, node: n })
  }

  /**
   * Save a change that a crash may lose (delivered, running, a final state whose reply
   * reply.job kept): after a restart resume() works it out again. Coalesced to one write.
   */
  private saveSoon(job: JobRecord): void {
    if (this.dirty.has(job.id)) return
    this.dirty.add(job.id)
    setTimeout(() => { if (this.dirty.delete(job.id)) this.store.save(job) }, SAVE_DELAY_MS).unref()
  }

  private saveNow(job: JobRecord): void {
    this.dirty.delete(job.id)
    this.store.save(job)
  }

  private emit(ev: JobEvent): void {
    for (const fn of this.listeners) fn(ev)
  }
}
