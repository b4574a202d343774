/**
 * The receive path (SPEC §1.3–1.5): what a node does with an envelope addressed to it.
 *
 *   bytes ─ decode ─▶ sender check (the hub's word) ─▶ ack? ─▶ delivery.onAck
 *         ─▶ duplicate? ─▶ ACK again, run nothing
 *         ─▶ inbox (durable, implies seen) ─▶ ACK ─▶ ACL / known / enabled? ─▶ inbox start (durable)
 *         ─▶ method with methodTimeout ─▶ reply envelope ─▶ outbox (closing the inbox entry atomically)
 *   a reply (inReplyTo set) runs its reply method, is handed to waiting clients, and is never replied to.
 *   events (ackTimeout 0) are neither acknowledged, deduplicated nor replied to.
 */
import type { Config } from './config'
import { dataText, decode, makeAck, type Envelope } from './envelope'
import { OutpostError, isOutpostError, type ErrorCode } from './errors'
import type { LogFn } from './log'
import type { Method, MethodResult } from './method'
import type { InboxEntry, Outbox } from './outbox'

export interface DispatcherOptions {
  self: string
  config: Config
  dataDir: string
  outbox: Outbox
  methods: ReadonlyMap<string, Method>
  /** Send an ACK straight back (never through the outbox). */
  sendAck: (ack: Envelope) => void
  /** Queue an envelope through the outbox; `inboxId` is closed in the same record. */
  enqueue: (env: Envelope, inboxId?: string) => Promise<void>
  onAck: (id: string) => void
  /** A reply arrived here: hand it to whoever waits for it. */
  onReply: (env: Envelope) => void
  /** True for a request this node gave up on (its error reply went out already). */
  gaveUp?: (id: string) => boolean
  /** Methods switched off at run time (op.stop). */
  disabled?: ReadonlySet<string>
  log: LogFn
  now: () => number
  ulid: () => string
}

/** Methods that receive results rather than produce them: never replied to. */
const SINKS = new Set(['reply.console', 'reply.file', 'reply.file.append', 'error.log', 'node.hello', 'node.pong'])

/** setTimeout's limit: longer delays fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** Grace after a method's timeout for it to stop what it started, before the reply goes anyway. */
const STOP_GRACE_MS = 5000

export class Dispatcher {
  private readonly o: DispatcherOptions
  /** Ids being recorded right now: a duplicate arriving meanwhile waits for the first to ACK. */
  private readonly receiving = new Set<string>()
  private readonly running = new Map<string, AbortController>()

  constructor(o: DispatcherOptions) {
    this.o = o
  }

  /** Methods running now: id → method name. */
  jobs(): { id: string; abort: AbortController }[] {
    return [...this.running].map(([id, abort]) => ({ id, abort }))
  }

  async receive(bytes: Uint8Array, from?: string): Promise<void> {
    let env: Envelope
    try {
      env = decode(bytes)
    } catch (err) {
      this.o.log('warn', `dispatch: dropped a message from ${from ?? 'unknown'}: ${(err as Error).message}`)
      return
    }
    if (from !== undefined && env.fromNode !== from) {
      this.o.log('warn', `dispatch: dropped ${env.id}: it claims to come from ${env.fromNode} but the hub says ${from}`)
      return
    }
    if (env.toNode !== this.o.self) {
      this.o.log('warn', `dispatch: dropped ${env.id}: addressed to ${env.toNode}, not ${this.o.self}`)
      return
    }
    if (env.method === 'ack') {
      if (env.inReplyTo !== undefined) this.o.onAck(env.inReplyTo)
      return
    }
    if (env.ackTimeout === 0) {
      await this.execute(env, undefined)
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
    this.receiving.add(env.id)
    // A waiting client gets a reply at once; recording and the reply method follow.
    if (env.inReplyTo !== undefined) this.o.onReply(env)
    const refusal = this.refusal(env)
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
    this.ack(env)
    if (refusal) return this.refuse(env, refusal)
    await this.execute(env, env.id, true)
  }

  private refuse(env: Envelope, refusal: OutpostError): Promise<void> {
    this.o.log('warn', `dispatch: refused ${env.method} from ${env.fromNode}: ${refusal.message}`)
    if (env.inReplyTo !== undefined) return this.finish(env.id)
    return this.reply(env, { error: refusal.toJSON() }, env.id)
  }

  private ack(env: Envelope): void {
    this.o.sendAck(makeAck(env, this.o.ulid(), this.o.now()))
  }

  /** After a restart: run what was received but not started; report what was running. */
  async resume(entries: InboxEntry[]): Promise<void> {
    for (const e of entries) {
      let env: Envelope
      try {
        env = decode(e.body)
      } catch {
        await this.o.outbox.finishRun(e.id)
        continue
      }
      if (env.inReplyTo !== undefined || SINKS.has(env.method)) {
        // Replies and sinks end a conversation: nothing to report, and not run twice.
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
    const refusal = this.refusal(env)
    if (refusal) return this.refuse(env, refusal)
    try {
      await this.o.outbox.startRun(env.id)
    } catch (err) {
      this.o.log('error', `dispatch: cannot record the start of ${env.id}: ${(err as Error).message}`)
      return
    }
    await this.execute(env, env.id, true)
  }

  private finish(inboxId: string): Promise<void> {
    return this.o.outbox.finishRun(inboxId).catch((err: Error) => this.o.log('error', `dispatch: ${err.message}`))
  }

  /** Why this node will not run env, or undefined. */
  private refusal(env: Envelope): OutpostError | undefined {
    const { config, self } = this.o
    if (!allowed(config, self, env.fromNode, env.method)) {
      return new OutpostError('denied', `${self} does not let ${env.fromNode} call ${env.method} (methods.allow)`)
    }
    if (!this.o.methods.has(env.method)) return new OutpostError('method_unknown', `${self} has no method ${env.method}`)
    // A reply answers a request this node sent: it is handled whatever methods.enabled lists.
    if (env.inReplyTo === undefined && !config.methods.enabled.some((p) => matches(p, env.method))) {
      return new OutpostError('method_disabled', `${env.method} is switched off on ${self} (methods.enabled: ${config.methods.enabled.join(', ')})`)
    }
    if (this.o.disabled?.has(env.method)) return new OutpostError('method_disabled', `${env.method} is switched off on ${self} (op.stop)`)
    return undefined
  }

  /** Run env's method; reply to requests, hand replies to waiting clients. */
  private async execute(env: Envelope, inboxId: string | undefined, notified = false): Promise<void> {
    const isReply = env.inReplyTo !== undefined
    // Sinks (reply.*, error.log, heartbeats) end a conversation: nothing is sent back.
    const noReply = isReply || SINKS.has(env.method)
    if (isReply && !notified) this.o.onReply(env)
    await this.executeInner(env, inboxId, isReply, noReply)
  }

  private async executeInner(env: Envelope, inboxId: string | undefined, isReply: boolean, noReply: boolean): Promise<void> {
    const method = this.o.methods.get(env.method)
    // Requests were checked in start(); events are checked here.
    const refusal = method === undefined ? new OutpostError('method_unknown', `${this.o.self} has no method ${env.method}`) : env.ackTimeout === 0 ? this.refusal(env) : undefined
    if (method === undefined || refusal) {
      this.o.log('warn', `dispatch: ${env.method} from ${env.fromNode}: ${refusal?.message}`)
      if (inboxId !== undefined) await this.finish(inboxId)
      return
    }
    let result: MethodResult
    const abort = new AbortController()
    this.running.set(env.id, abort)
    const seconds = env.methodTimeout ?? this.o.config.methods.timeout
    const timer = setTimeout(() => abort.abort(new OutpostError('method_timeout', `${env.method} ran past its methodTimeout of ${seconds} s`)), Math.min(seconds * 1000, MAX_TIMER_MS))
    let error: { code: string; message: string } | undefined
    try {
      result = await untilStopped(method.run({
        node: this.o.self, env, args: env.methodArgs ?? [], config: this.o.config, dataDir: this.o.dataDir,
        signal: abort.signal, log: this.o.log,
      }), abort.signal)
    } catch (err) {
      result = {}
      error = isOutpostError(err) ? err.toJSON() : { code: 'method_failed' satisfies ErrorCode, message: `${env.method}: ${(err as Error)?.message ?? String(err)}` }
      if (abort.signal.aborted && !isOutpostError(err, 'method_timeout') && isOutpostError(abort.signal.reason)) error = abort.signal.reason.toJSON()
    } finally {
      clearTimeout(timer)
      this.running.delete(env.id)
    }
    if (error) this.o.log(isReply ? 'warn' : 'info', `dispatch: ${env.method} ${env.id} from ${env.fromNode} failed: ${error.code}: ${error.message}`)
    if (noReply || env.ackTimeout === 0) {
      if (inboxId !== undefined) await this.finish(inboxId)
      return
    }
    await this.reply(env, error ? { ...result, error } : result, inboxId)
  }

  /** The reply to `req`, queued through the outbox; closes inbox entry `inboxId` in the same record. */
  private async reply(req: Envelope, result: MethodResult & { error?: { code: string; message: string } }, inboxId: string | undefined): Promise<void> {
    const data = result.data
    const text = dataText(data)
    const reply: Envelope = {
      id: this.o.ulid(),
      toNode: req.fromNode,
      fromNode: this.o.self,
      method: req.replyMethod ?? 'reply.file.append',
      methodArgs: expandData(req.replyMethodArgs ?? [], text),
      inReplyTo: req.id,
      final: true,
      createdAt: this.o.now(),
      ...(data !== undefined ? { data } : {}),
      ...(result.stderr !== undefined && result.stderr.length > 0 ? { stderr: result.stderr } : {}),
      ...(result.exitCode !== undefined ? { exitCode: result.exitCode } : {}),
      ...(result.error ? { error: result.error } : {}),
      ...(req.replyAckTimeout !== undefined ? { ackTimeout: req.replyAckTimeout } : {}),
      ...(req.replyRetries !== undefined ? { retries: req.replyRetries } : {}),
      ...(req.replyMethodTimeout !== undefined ? { methodTimeout: req.replyMethodTimeout } : {}),
      ...(req.directory !== undefined ? { directory: req.directory } : {}),
      ...(req.fileName !== undefined ? { fileName: req.fileName } : {}),
    }
    try {
      await this.o.enqueue(reply, inboxId)
    } catch (err) {
      this.o.log('error', `dispatch: cannot queue the reply to ${req.id}: ${(err as Error).message}`)
    }
  }
}

/** A method that ignores its abort signal still gets a bounded time to give up. */
function untilStopped<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let grace: NodeJS.Timeout | undefined
    const onAbort = (): void => {
      grace = setTimeout(() => reject(signal.reason), STOP_GRACE_MS)
      grace.unref()
    }
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(resolve, reject).finally(() => {
      signal.removeEventListener('abort', onAbort)
      if (grace) clearTimeout(grace)
    })
  })
}

/** `{{DATA}}` (alias `{{STEWARD_DATA}}`) in replyMethodArgs becomes the method's output. */
export function expandData(args: string[], data: string): string[] {
  return args.map((a) => a.replaceAll('{{DATA}}', data).replaceAll('{{STEWARD_DATA}}', data))
}

/** SPEC §5: by default only the central node and the node itself may call anything. */
export function allowed(config: Config, self: string, from: string, method: string): boolean {
  return config.methods.allow.some((rule) =>
    rule.from.some((f) => f === '*' || f === from || (f === '$central' && from === config.node.central) || (f === '$self' && from === self)) &&
    (rule.methods ?? ['*']).some((p) => matches(p, method)))
}

/** A method pattern of methods.allow / methods.enabled: "*", an exact name, or a prefix such as "info.*". */
export function matches(pattern: string, method: string): boolean {
  return pattern === '*' || pattern === method || (pattern.endsWith('*') && method.startsWith(pattern.slice(0, -1)))
}

