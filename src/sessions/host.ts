/**
 * The running side of a session (session.open, tunnel.open on the node that was asked): what
 * both methods share. The method's run lasts as long as the session, so it shows among the
 * node's runs, op.cancel ends it and a stopping node ends it; its end kills what it started.
 *
 *   methodArgs [SID, --option=…, --, ARGS…] ─▶ channel SID.r with the sender ─▶ `ready`
 *   ends: the program exits / the peer closes / grace, idle, maxDuration / ctx.signal
 *   ─▶ audit line (who, what, when, how long, bytes) ─▶ the method's result (the reply)
 */
import { OutpostError } from '../errors'
import type { MethodContext, MethodResult } from '../method'
import type { Channel } from './channel'
import type { Live } from './live'

export interface HostArgs {
  sid: string
  /** --name=value options before the `--`. */
  options: Map<string, string[]>
  rest: string[]
}

/** [SID, --k=v…, --, rest…] */
export function parseHostArgs(method: string, args: readonly string[]): HostArgs {
  const [sid, ...more] = args
  if (sid === undefined || !/^[A-Za-z0-9_-]{16,64}$/.test(sid)) throw new OutpostError('method_args', `${method}: the first argument is the session id the asking node made (outpost shell / outpost tunnel open sessions)`)
  const end = more.indexOf('--')
  const head = end < 0 ? more : more.slice(0, end)
  const options = new Map<string, string[]>()
  for (const a of head) {
    const m = /^--([a-z]+)=(.*)$/s.exec(a)
    if (m === null) throw new OutpostError('method_args', `${method}: options are --name=value before --, got ${JSON.stringify(a)}`)
    options.set(m[1]!, [...(options.get(m[1]!) ?? []), m[2]!])
  }
  return { sid, options, rest: end < 0 ? [] : more.slice(end + 1) }
}

export function liveOf(ctx: MethodContext): Live {
  if (ctx.live === undefined) throw new OutpostError('method_failed', `${ctx.env.method} needs a running node (it cannot run in \`outpost call\`)`)
  return ctx.live
}

export interface Hosted {
  ch: Channel
  /** Resolves with the session's end: exitCode, or an error. */
  done: Promise<{ exitCode?: number; error?: OutpostError }>
  end(result: { exitCode?: number; error?: OutpostError }): void
}

/**
 * Open the channel for this run and wire its ends: the peer closing, the channel's timers,
 * sessions.maxDuration and ctx.signal all come to one end(); `stop` kills what was started.
 * `idle: false`: sessions.idleTimeout does not apply (a reverse tunnel's listening session,
 * whose bytes go on the sessions of its connections).
 */
export function host(ctx: MethodContext, sid: string, stop: () => Promise<void>, o: { idle?: boolean } = {}): Hosted {
  const live = liveOf(ctx)
  const ch = live.open(`${sid}.r`, ctx.env.fromNode, { waitPeer: false, idle: o.idle ?? true })
  let settle!: (r: { exitCode?: number; error?: OutpostError }) => void
  const done = new Promise<{ exitCode?: number; error?: OutpostError }>((resolve) => { settle = resolve })
  let over = false
  const maxMs = live.settings().maxDuration * 1000
  const timer = setTimeout(() => end({ error: new OutpostError('session_timeout', `${ctx.env.method}: the session reached sessions.maxDuration (${maxMs / 1000} s) on ${ctx.node}; it ended`) }), Math.min(maxMs, 2 ** 31 - 1))
  const onAbort = (): void => end({ error: ctx.signal.reason instanceof OutpostError ? ctx.signal.reason : new OutpostError('cancelled', `${ctx.env.method} was stopped`) })
  ctx.signal.addEventListener('abort', onAbort, { once: true })
  function end(r: { exitCode?: number; error?: OutpostError }): void {
    if (over) return
    over = true
    clearTimeout(timer)
    ctx.signal.removeEventListener('abort', onAbort)
    ch.end(r.error)
    stop().catch((err: unknown) => ctx.log('error', `${ctx.env.method}: stopping what session ${ctx.env.id} started failed: ${(err as Error).message}`)).finally(() => settle(r))
  }
  return { ch, done, end }
}

/** The audit line and the method's result for a session that ended. */
export function ended(ctx: MethodContext, ch: Channel, what: string, user: string | undefined, r: { exitCode?: number; error?: OutpostError }): MethodResult {
  const ms = Date.now() - ch.openedAt
  liveOf(ctx).record({
    id: ctx.env.id, sid: ch.sid, method: ctx.env.method, fromNode: ctx.env.fromNode, node: ctx.node, what, ...(user !== undefined ? { user } : {}),
    startedAt: ch.openedAt, ms, bytesIn: ch.bytesIn, bytesOut: ch.bytesOut,
    ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}), ...(r.error !== undefined ? { error: r.error.toJSON() } : {}),
  })
  if (r.error !== undefined) throw r.error
  const summary = `${ctx.env.method} ${what}${user !== undefined ? ` as ${user}` : ''} for ${ctx.env.fromNode}: ${(ms / 1000).toFixed(1)} s, ${ch.bytesIn} bytes in, ${ch.bytesOut} bytes out\n`
  return { data: summary, ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}) }
}
