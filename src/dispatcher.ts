/**
 * The receive path (SPEC §1.3–1.5): what a node does with an envelope addressed to it.
 *
 *   bytes ─ decode ─▶ sender check (the hub's word) ─▶ ack? ─▶ delivery.onAck
 *         ─▶ duplicate? ─▶ ACK again, run nothing
 *         ─▶ inbox (durable, implies seen; a request to a sink: seen only, the receipts of one read in one append, receipts.ts) ─▶ ACK ─▶ signature / ACL / known / enabled? (admission.ts) ─▶ inbox start (durable)
 *         ─▶ method with methodTimeout ─▶ reply envelope ─▶ outbox (closing the inbox entry atomically)
 *   a stream method's chunks ─ coalesced (~50 ms / 4 KiB) ─▶ replies seq 0, 1, … ─▶ outbox; the last
 *   one (final, exitCode, error) closes the inbox entry.
 *   a reply (inReplyTo set) runs only when this node's record says it sent that request to that
 *   node naming that reply method (outbox.sentRequest; methods.allow does not apply: this node
 *   asked for it); anything else is refused, logged and reported to central's error.log.
 *   It runs its reply method and is never replied to; the replies to one request run their reply
 *   method one at a time, in arrival order. Stream chunks reach waiting clients at once; a final
 *   reply once its reply method ran, carrying that method's failure (a path_outside, a full disk).
 *   events (ackTimeout 0) are neither acknowledged, deduplicated nor replied to.
 */
import { decode, type Envelope } from './wire/envelope'
import { ackedIds } from './wire/acks'
import { OutpostError } from './errors'
import type { MessageEvent } from './events'
import { NO_METRICS, type Metrics } from './metrics'
import { Stopper } from './lib/stopper'
import type { HandlerInfo, JobInfo, Ops } from './method'
import { ACK_METHOD, nameIndex } from './method-names'
import { replyTo, type ReplyResult } from './reply'
import { Requester } from './requester'
import { Admission } from './admission'
import { RunContext, runMethod, runStream, stopGraceMs, type RunParts } from './run'
import type { InboxEntry } from './store/outbox'
import { caughtSinks, ReceiptGroup } from './receipts'
import { landedReplies } from './resume-replies'
import { FRAME_METHOD } from './sessions/frames'
import { Backlog } from './backlog'
import { LogTally } from './log-tally'

import type { DispatcherOptions } from './dispatcher-options'
export type { DispatcherOptions }

interface Job extends JobInfo {
  abort: Stopper
}

export class Dispatcher {
  private readonly o: DispatcherOptions
  /** Ids being recorded right now (a duplicate arriving meanwhile waits for the first to ACK). */
  private readonly receiving = new Set<string>()
  private readonly running = new Map<string, Job>()
  /** What may run here: signatures, methods.allow, selector, handler switches (admission.ts). */
  private readonly admission: Admission
  /** Replies to this node's requests: authorised, run in order, failures told (requester.ts). */
  private readonly requester: Requester
  /** The handle op.* methods get in their context. */
  readonly ops: Ops
  private readonly metrics: Metrics
  /** Native method names by name and alias: a sender that did not know an alias leaves it to us. */
  private readonly names: ReadonlyMap<string, string>
  /** What every method run here gets besides its message. */
  private readonly parts: RunParts
  /** Requests to sinks: the receipts of one read recorded together (receipts.ts). */
  private readonly receipts: ReceiptGroup
  /** Envelopes taken and not yet settled: the node's read loop waits while it is full (backlog.ts). */
  readonly backlog = new Backlog()
  /** Refusals and drops, per sender: a few lines and then a count (log-tally.ts). */
  private readonly tally: LogTally

  constructor(o: DispatcherOptions) {
    this.o = o
    this.metrics = o.metrics ?? NO_METRICS
    this.names = nameIndex(o.methods.values())
    this.admission = new Admission(o, this.names)
    this.tally = new LogTally(o.log, 'dispatch: ')
    this.requester = new Requester({ self: o.self, outbox: o.outbox, onReply: o.onReply, log: o.log, ...(o.report ? { report: o.report } : {}), ...(o.events ? { events: o.events } : {}) })
    this.ops = {
      handlers: () => [...this.o.methods.values()].map((m): HandlerInfo => ({ name: m.name, kind: m.kind, summary: m.summary, enabled: this.enabled(m.name) })),
      jobs: () => this.jobs().map(({ id, method, from, started }) => ({ id, method, from, started })),
      setEnabled: (name, on) => this.admission.setEnabled(name, on),
      cancel: (id, by) => {
        const job = this.running.get(id)
        if (job === undefined) return false
        job.abort.abort(new OutpostError('cancelled', `${job.method} ${id} was cancelled by ${by} (op.cancel)`))
        return true
      },
    }
    this.receipts = new ReceiptGroup({
      record: (ids) => this.o.outbox.markSeen(ids),
      durable: (id) => this.o.outbox.hasSeen(id),
      done: (env) => { this.receiving.delete(env.id); return this.recorded(env, undefined, undefined) },
      failed: (env, err) => { this.receiving.delete(env.id); this.o.log('error', `dispatch: cannot record ${env.id}: ${err.message}`) },
      selfHealing: (env) => this.o.methods.get(env.method)?.selfHealing === true,
      marks: { open: (key, body) => this.o.outbox.receive(key, this.o.self, body), close: (key) => void this.finish(key) },
    })
    this.parts = { ops: this.ops, ...(o.control ? { control: o.control } : {}), ...(o.disk ? { disk: o.disk } : {}), ...(o.files ? { files: o.files } : {}), ...(o.live ? { live: o.live } : {}) }
  }

  /** Methods running now. */
  jobs(): Job[] {
    return [...this.running.values()]
  }

  /** Resolves once no method runs any more, or after `ms` (stopping jobs get to kill what they started). */
  async drain(ms: number): Promise<void> {
    const end = Date.now() + ms
    while (this.running.size > 0 && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 50))
  }

  private get stopGraceMs(): number {
    return stopGraceMs(this.o.config.methods.killGrace)
  }

  /** env with its method named natively, where it names one of ours by an alias. */
  private native(env: Envelope): Envelope {
    const name = this.names.get(env.method)
    if (name !== undefined && name !== env.method) env.method = name
    return env
  }

  /** Whether a handler may run: listed in methods.enabled and not switched off by op.stop. */
  enabled(name: string): boolean {
    return this.admission.enabled(name)
  }

  /**
   * `remote`: it came through the transport (a reply from another node is then checked against
   * its pinned key). Returns at once: what follows (recording, the ACK, the run) goes on by itself.
   */
  receive(bytes: Uint8Array, from?: string, remote = false): void {
    let env: Envelope
    try {
      env = this.native(decode(bytes))
    } catch (err) {
      this.tally.note(from ?? 'unknown', 'not envelopes', `dispatch: dropped a message from ${from ?? 'unknown'}: ${(err as Error).message}`)
      return
    }
    if (from !== undefined && env.fromNode !== from) {
      this.tally.note(from, 'forged fromNode', `dispatch: dropped ${env.id}: it claims to come from ${env.fromNode} but the hub says ${from}`)
      return
    }
    if (env.toNode !== this.o.self) {
      this.tally.note(from ?? env.fromNode, 'misaddressed', `dispatch: dropped ${env.id}: addressed to ${env.toNode}, not ${this.o.self}`)
      return
    }
    if (env.method === ACK_METHOD) {
      for (const id of ackedIds(env)) this.o.onAck(id)
      return
    }
    // Shell and tunnel bytes: never stored, never run as a method; their session checks the sender.
    if (env.method === FRAME_METHOD) { this.o.live?.receive(env); return }
    if (env.ackTimeout === 0) {
      if (env.inReplyTo !== undefined && (this.requester.forged(env) || (remote && this.admission.badSignature(env)))) return
      this.metrics.delivered(env.method)
      void this.execute(env, undefined)
      return
    }
    if (this.receiving.has(env.id)) return
    if (this.o.outbox.hasSeen(env.id)) {
      this.o.log('debug', `dispatch: ${env.id} from ${env.fromNode} is a duplicate; ACKed again, not run`)
      this.ack(env)
      return
    }
    if (env.inReplyTo !== undefined && this.o.gaveUp?.(env.inReplyTo)) {
      // Its sender already got an error reply for this request: one outcome only.
      this.o.log('warn', `dispatch: late reply ${env.id} from ${env.fromNode} to ${env.inReplyTo}, which was given up; dropped`)
      this.ack(env)
      return
    }
    if (env.inReplyTo !== undefined && (this.requester.forged(env) || (remote && this.admission.badSignature(env)))) {
      // ACKed so that it is not sent again; nothing is recorded or run.
      this.ack(env)
      return
    }
    this.receiving.add(env.id)
    const refusal = this.admission.refusal(env)
    // A request to a sink that starts now: only its id is recorded, for dedup (a started sink never runs again), with
    // others of its read in one append (receipts.ts): no inbox entry, none of its data (file.chunk's 128 KiB and more).
    if (refusal === undefined && env.inReplyTo === undefined && this.o.methods.get(env.method)?.sink === true) {
      this.receipts.add(env)
      return
    }
    // After the sinks' receipts waiting (flushNow), else after the request before it (FIFO); sinks after it wait for its start.
    const recording = this.record(env, bytes, refusal, this.receipts.flushNow() ?? this.receipts.last)
    this.backlog.track(recording)
    this.receipts.after(recording)
  }

  /** Record a request or reply (receipt, and its start when it runs now) before its ACK; then run it once `before` (what came ahead) has started; resolves then. */
  private async record(env: Envelope, bytes: Uint8Array, refusal: OutpostError | undefined, before: Promise<unknown> | undefined): Promise<void> {
    try {
      // A method about to run is recorded as started in the same write as its receipt (one
      // fdatasync, not two): after a crash it is reported interrupted, never run again.
      await this.o.outbox.receive(env.id, env.fromNode, bytes, { started: refusal === undefined })
    } catch (err) {
      // Not recorded: no ACK, so the sender sends it again.
      this.o.log('error', `dispatch: cannot record ${env.id}: ${(err as Error).message}`)
      return
    } finally {
      this.receiving.delete(env.id)
    }
    if (before !== undefined) await before
    const settled = this.recorded(env, refusal, env.id)
    if (refusal !== undefined) this.backlog.track(settled)
  }

  /** Recorded: ACK it, then refuse or run it (`inboxId`: its inbox entry, none for a sink's receipt). */
  private recorded(env: Envelope, refusal: OutpostError | undefined, inboxId: string | undefined): Promise<void> {
    this.metrics.delivered(env.method)
    this.ack(env)
    if (refusal) return this.refuse(env, refusal)
    return this.execute(env, inboxId)
  }

  private refuse(env: Envelope, refusal: OutpostError): Promise<void> {
    this.tally.note(env.fromNode, `refused ${env.method} (${refusal.code})`, `dispatch: refused ${env.method} from ${env.fromNode}: ${refusal.message}`, { id: env.id, from: env.fromNode, method: env.method, code: refusal.code })
    this.o.events?.({ type: 'denied', id: env.id, fromNode: env.fromNode, method: env.method, error: refusal.toJSON() })
    if (env.inReplyTo !== undefined) {
      // A reply whose reply method cannot run here: the waiting client and error.log are told.
      this.o.report?.(refusal.toJSON())
      this.o.onReply(env.error === undefined ? { ...env, error: refusal.toJSON() } : env)
      return this.finish(env.id)
    }
    return this.reply(env, { error: refusal.toJSON() }, env.id)
  }

  private ack(env: Envelope): void {
    this.o.sendAck(env.fromNode, env.id)
  }

  /** After a restart: run what was received but not started; report what was running. */
  async resume(entries: InboxEntry[]): Promise<void> {
    const envs = entries.map((e) => {
      try { return caughtSinks(e, this.o.self) === undefined ? this.native(decode(e.body)) : undefined } catch { return undefined }
    })
    // Replies caught running: which landed, asked for all of them before any runs again.
    const caughtReplies = entries.flatMap((e, i) => (e.state === 'started' && envs[i]?.inReplyTo !== undefined ? [{ inboxId: e.id, env: envs[i]! }] : []))
    const landed = await landedReplies(caughtReplies, this.o.methods, (env) => ({
      node: this.o.self, env, args: env.methodArgs ?? [], config: this.o.config, dataDir: this.o.dataDir,
      signal: new AbortController().signal, log: this.o.log, ops: this.ops, ...(this.o.disk ? { disk: this.o.disk } : {}),
    }))
    for (const [i, e] of entries.entries()) {
      // Requests to sinks a crash caught between their receipt and the end of their runs (receipts.ts): told, closed.
      const caught = caughtSinks(e, this.o.self)
      if (caught !== undefined) { this.o.log('warn', `dispatch: ${caught.message}`, { code: caught.code, count: caught.count }); this.o.report?.(caught); await this.finish(e.id); continue }
      const env = envs[i]
      if (env === undefined) {
        await this.o.outbox.finishRun(e.id)
        continue
      }
      if (env.inReplyTo !== undefined && e.state === 'started') {
        // A reply is its request's only outcome here: losing it would leave the request with
        // none (SPEC §1). Its reply method runs again unless its effect already landed.
        if (landed.has(e.id)) await this.finish(e.id)
        else {
          this.o.log('info', `dispatch: reply ${env.id} to ${env.inReplyTo} was being handled when this node stopped; running ${env.method} again`)
          void this.execute(env, e.id)
        }
      } else if (env.inReplyTo !== undefined || this.o.methods.get(env.method)?.sink === true) {
        // Sinks end a conversation: nothing to report, and not run twice.
        if (e.state === 'started') await this.finish(e.id)
        else void this.start(env)
      } else if (e.state === 'started') {
        this.o.log('warn', `dispatch: ${env.method} ${env.id} from ${env.fromNode} was running when this node stopped; not run again`)
        await this.reply(env, { error: { code: 'interrupted', message: `${this.o.self} stopped while ${env.method} ran; it was not run again (it may have had side effects)` } }, e.id)
      } else {
        void this.start(env)
      }
    }
  }

  /** A received message not started yet (after a restart): check it, record the start, run it. */
  private async start(env: Envelope): Promise<void> {
    const refusal = this.admission.refusal(env)
    if (refusal) return this.refuse(env, refusal)
    try {
      await this.o.outbox.startRun(env.id)
    } catch (err) {
      this.o.log('error', `dispatch: cannot record the start of ${env.id}: ${(err as Error).message}`)
      return
    }
    await this.execute(env, env.id)
  }

  private finish(inboxId: string): Promise<void> {
    return this.o.outbox.finishRun(inboxId).catch((err: Error) => this.o.log('error', `dispatch: ${err.message}`))
  }

  /** Run env's method; reply to requests, hand replies to waiting clients. */
  private execute(env: Envelope, inboxId: string | undefined): Promise<void> {
    const isReply = env.inReplyTo !== undefined
    // Sinks (reply.*, error.log, heartbeats) end a conversation: nothing is sent back.
    const noReply = isReply || this.o.methods.get(env.method)?.sink === true
    if (!isReply) return this.executeInner(env, inboxId, isReply, noReply)
    // Stream chunks are appended in order: each waits for the previous reply to the same request.
    return this.requester.inOrder(env, () => this.executeInner(env, inboxId, isReply, noReply))
  }

  private async executeInner(env: Envelope, inboxId: string | undefined, isReply: boolean, noReply: boolean): Promise<void> {
    const method = this.o.methods.get(env.method)
    // Requests were checked in start(); events are checked here.
    const refusal = method === undefined ? new OutpostError('method_unknown', `${this.o.self} has no method ${env.method}`) : env.ackTimeout === 0 ? this.admission.refusal(env) : undefined
    if (method === undefined || refusal) {
      this.tally.note(env.fromNode, `refused ${env.method} (${refusal?.code})`, `dispatch: ${env.method} from ${env.fromNode}: ${refusal?.message}`)
      const why = refusal ?? new OutpostError('method_unknown', `${this.o.self} has no method ${env.method}`)
      this.o.events?.({ type: 'denied', id: env.id, fromNode: env.fromNode, method: env.method, error: why.toJSON() })
      if (isReply) this.requester.replied(env, why.toJSON())
      if (inboxId !== undefined) await this.finish(inboxId)
      return
    }
    const abort = new Stopper()
    const t0 = performance.now()
    this.running.set(env.id, { id: env.id, method: env.method, from: env.fromNode, started: this.o.now(), abort })
    const seconds = env.methodTimeout ?? this.o.config.methods.timeout
    const ctx = new RunContext(this.o.self, env, env.methodArgs ?? [], this.o.config, this.o.dataDir, this.o.log, abort, this.parts)
    const replies = !(noReply || env.ackTimeout === 0)
    let result: ReplyResult
    try {
      result = method.kind === 'stream'
        ? await runStream(method, ctx, abort, { seconds, graceMs: this.stopGraceMs, replies, ...this.o.stream, send: (data, seq) => this.enqueueReply(this.replyEnvelope(env, { data, seq, final: false })) })
        : await runMethod(method, ctx, abort, { seconds, graceMs: this.stopGraceMs })
    } finally {
      this.running.delete(env.id)
    }
    const error = result.error
    if (this.o.events !== undefined) {
      const ev: MessageEvent = { type: 'run', id: env.id, fromNode: env.fromNode, method: env.method, ms: Math.round((performance.now() - t0) * 1000) / 1000 }
      if (result.exitCode !== undefined) ev.exitCode = result.exitCode
      if (error) ev.error = error
      this.o.events(ev)
    }
    // A reply file skipped on a nearly full disk is told once by the disk guard, not once a
    // reply; its waiting client still gets the reply, with the error, and error.log is not fed
    // more. (A write that failed on a disk the guard finds roomy, a quota say, is reported.)
    const diskFull = isReply && error?.code === 'disk_full' && this.o.disk?.paused === true
    if (error) this.o.log(diskFull ? 'debug' : isReply ? 'warn' : 'info', `dispatch: ${env.method} ${env.id} from ${env.fromNode} failed: ${error.code}: ${error.message}`, { id: env.id, from: env.fromNode, method: env.method, code: error.code })
    if (isReply) this.requester.replied(env, error && { code: error.code, message: `the reply method ${env.method} on ${this.o.self} failed for the reply from ${env.fromNode} to ${env.inReplyTo}: ${error.message}` }, !diskFull)
    if (!replies) {
      if (inboxId !== undefined) await this.finish(inboxId)
      return
    }
    await this.reply(env, result, inboxId)
  }

  /** The reply to `req`, queued through the outbox; closes inbox entry `inboxId` in the same record. */
  private async reply(req: Envelope, result: ReplyResult, inboxId: string | undefined): Promise<void> {
    try {
      await this.enqueueReply(this.replyEnvelope(req, { ...result, final: true }), inboxId)
    } catch (err) {
      this.o.log('error', `dispatch: cannot queue the reply to ${req.id}: ${(err as Error).message}`)
    }
  }

  private enqueueReply(reply: Envelope, inboxId?: string): Promise<void> {
    return this.o.enqueue(reply, inboxId)
  }

  private replyEnvelope(req: Envelope, result: ReplyResult): Envelope {
    const env = replyTo(req, result, { self: this.o.self, id: this.o.ulid(), now: this.o.now() })
    this.o.replySigning?.signReply(env)
    return env
  }
}

/** The ACL check, kept importable from here (it lives in admission.ts). */
export { allowed } from './admission'
