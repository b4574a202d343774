/**
 * Running one method, the same way wherever it runs: for a message (dispatcher.ts), for this
 * node's own schedules (local-runs.ts) and for `outpost call` (cli/client.ts).
 *
 *   timer (methodTimeout; unary runs share one, run-deadlines.ts) ─▶ stop.abort(method_timeout)
 *   unary  ─▶ run(ctx)                        ─┐  a method that ignores the stop gets graceMs,
 *   stream ─▶ each chunk ─▶ onChunk (may throw) ├▶ then its run ends as the stop's reason
 *          ─▶ its return value (exitCode)      ─┘
 *   a throw ─▶ { error } (method_failed unless it is an OutpostError); stopped ─▶ the stop's reason
 */
import { OutpostError, isOutpostError, type ErrorCode } from './errors'
import type { Config } from './config'
import { untilStopped, type Stopper } from './lib/stopper'
import type { LogFn } from './log'
import type { Method, MethodContext, MethodResult, StreamMethod } from './method'
import type { ReplyResult } from './reply'
import type { Envelope } from './wire/envelope'
import { Coalescer } from './coalesce'
import { RUN_DEADLINES } from './run-deadlines'

/** setTimeout's limit: longer delays fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** Grace after a stop beyond methods.killGrace for a method to give up what it started, before its run ends anyway. */
const STOP_GRACE_MS = 3000

/** How long a stopped method may take: its process group's TERM→KILL grace, and a little more. */
export function stopGraceMs(killGraceSeconds: number): number {
  return killGraceSeconds * 1000 + STOP_GRACE_MS
}

export type RunResult = MethodResult & { error?: { code: string; message: string } }

export interface RunOptions {
  /** methodTimeout, seconds. */
  seconds: number
  /** How long a stopped method may take to give up before its run ends anyway. */
  graceMs: number
  /** A stream's chunks, as they come; a throw stops the method (its result carries the error). */
  onChunk?: (chunk: Uint8Array | string) => void | Promise<void>
}

/** methodTimeout reached: stop the method (a module function handed its arguments, not a closure a run). */
function timedOut(stop: Stopper, name: string, seconds: number): void {
  stop.abort(new OutpostError('method_timeout', `${name} ran past its methodTimeout of ${seconds} s`))
}

/** Run `method` with `ctx` (whose signal is `stop`'s) until it ends, fails, or is stopped. */
export function runMethod(method: Method, ctx: MethodContext, stop: Stopper, o: RunOptions): Promise<RunResult> {
  if (method.kind !== 'unary') return runStreamMethod(method, ctx, stop, o)
  // A unary method (nearly every message): its methodTimeout on the shared timer, and one promise
  // around the method's (untilStopped's work done here, not wrapped again).
  const deadline = RUN_DEADLINES.arm(stop, method.name, o.seconds)
  let work: Promise<MethodResult>
  try {
    work = method.run(ctx)
  } catch (err) {
    work = Promise.reject(err)
  }
  return new Promise<RunResult>((resolve) => {
    let grace: NodeJS.Timeout | undefined
    let settled = false
    const settle = (result: RunResult): void => {
      if (settled) return
      settled = true
      stop.off(onAbort)
      if (grace !== undefined) clearTimeout(grace)
      RUN_DEADLINES.disarm(deadline)
      resolve(result)
    }
    const failed = (err: unknown): void => settle({ error: stop.aborted && isOutpostError(stop.reason) ? stop.reason.toJSON() : failure(method.name, err) })
    // A method that ignores the stop gets graceMs, then its run ends as the stop's reason.
    const onAbort = (): void => {
      grace = setTimeout(failed, o.graceMs, stop.reason)
      grace.unref()
    }
    if (stop.aborted) onAbort()
    else stop.on(onAbort)
    work.then(settle, failed)
  })
}

async function runStreamMethod(method: Extract<Method, { kind: 'stream' }>, ctx: MethodContext, stop: Stopper, o: RunOptions): Promise<RunResult> {
  const timer = setTimeout(timedOut, Math.min(o.seconds * 1000, MAX_TIMER_MS), stop, method.name, o.seconds)
  try {
    let result = await stream(method, ctx, stop, o)
    // A stream method returns normally when stopped: its result says why it stopped, unless
    // methodTimeout is its normal end (file.tail).
    const reason: unknown = stop.reason
    const normalEnd = method.untilTimeout === true && isOutpostError(reason, 'method_timeout')
    if (stop.aborted && isOutpostError(reason) && !normalEnd) result = { ...result, error: reason.toJSON() }
    return result
  } catch (err) {
    return { error: stop.aborted && isOutpostError(stop.reason) ? stop.reason.toJSON() : failure(method.name, err) }
  } finally {
    clearTimeout(timer)
  }
}

async function stream(method: Extract<Method, { kind: 'stream' }>, ctx: MethodContext, stop: Stopper, o: RunOptions): Promise<RunResult> {
  const it = method.run(ctx)
  try {
    for (;;) {
      const step = await untilStopped(it.next(), stop, o.graceMs)
      if (step.done === true) return step.value
      if (o.onChunk) await o.onChunk(step.value)
    }
  } catch (err) {
    void it.return({}).catch(() => {})
    return { error: failure(method.name, err) }
  }
}

/**
 * Run a stream method for a request: its chunks go out as replies seq 0, 1, … through `send`
 * (coalesced: maxBytes, maxDelayMs), when `replies`; what is left and the end result are
 * returned for the final reply, which carries the next seq.
 */
export async function runStream(method: StreamMethod, ctx: MethodContext, stop: Stopper, o: RunOptions & { replies: boolean; maxBytes?: number; maxDelayMs?: number; send: (data: Uint8Array, seq: number) => Promise<void> }): Promise<ReplyResult> {
  let seq = 0
  const out = new Coalescer({
    ...(o.maxBytes !== undefined ? { maxBytes: o.maxBytes } : {}), ...(o.maxDelayMs !== undefined ? { maxDelayMs: o.maxDelayMs } : {}),
    flush: (piece) => o.send(piece, seq++),
  })
  let end: ReplyResult = await runMethod(method, ctx, stop, {
    seconds: o.seconds, graceMs: o.graceMs,
    onChunk: async (chunk) => {
      if (!o.replies) return
      await out.push(chunk)
      // The outbox refused a reply (full): stop the method; the final reply says why.
      if (out.error !== undefined) throw out.error
    },
  })
  const rest = await out.end()
  if (out.error !== undefined && end.error === undefined) end = { ...end, error: failure(ctx.env.method, out.error) }
  const data = end.data === undefined ? rest : Buffer.concat([rest, typeof end.data === 'string' ? Buffer.from(end.data) : end.data])
  return { ...end, ...(data.length > 0 ? { data } : {}), seq }
}

/** A thrown error as a result's error: its own code, else method_failed naming the method. */
export function failure(method: string, err: unknown): { code: string; message: string } {
  return isOutpostError(err) ? err.toJSON() : { code: 'method_failed' satisfies ErrorCode, message: `${method}: ${(err as Error)?.message ?? String(err)}` }
}

/** What a node hands every method it runs, besides the message: ctx.ops, ctx.control, … (absent ones stay absent). */
export type RunParts = Pick<MethodContext, 'ops' | 'control' | 'disk' | 'files' | 'live'>

/**
 * A method's context, made once a message: a class rather than an object literal with a getter
 * and spreads (a message's run made several objects for it). The signal is made only when the
 * method asks for it (Stopper).
 */
export class RunContext implements MethodContext {
  declare ops?: NonNullable<RunParts['ops']>
  declare control?: NonNullable<RunParts['control']>
  declare disk?: NonNullable<RunParts['disk']>
  declare files?: NonNullable<RunParts['files']>
  declare live?: NonNullable<RunParts['live']>
  readonly #stop: Stopper

  constructor(readonly node: string, readonly env: Envelope, readonly args: string[], readonly config: Config, readonly dataDir: string, readonly log: LogFn, stop: Stopper, parts: RunParts) {
    this.#stop = stop
    if (parts.ops !== undefined) this.ops = parts.ops
    if (parts.control !== undefined) this.control = parts.control
    if (parts.disk !== undefined) this.disk = parts.disk
    if (parts.files !== undefined) this.files = parts.files
    if (parts.live !== undefined) this.live = parts.live
  }

  get signal(): AbortSignal {
    return this.#stop.signal
  }
}
