/**
 * tunnel.open: one TCP connection from this node to HOST:PORT for `outpost tunnel`, its bytes
 * carried by live frames (src/sessions/host.ts) for as long as it lasts.
 *
 *   [SID, --, HOST:PORT] ─ tunnels.allow lists it? (else tunnel_denied) ─▶ connect ─▶ ready
 *   then the socket is carried by the channel (src/sessions/carry.ts) until both ends closed
 */
import net from 'node:net'
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'
import { ended, host, parseHostArgs } from '../src/sessions/host'
import { carry } from '../src/sessions/carry'

/** HOST:PORT → [host, port] (an IPv6 host in brackets), or undefined. */
export function splitTarget(target: string): [string, number] | undefined {
  const m = /^(\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(target)
  if (m === null) return undefined
  const port = Number(m[4])
  return port >= 1 && port <= 65535 ? [m[2] ?? m[3]!, port] : undefined
}

/** Whether tunnels.allow lets this node connect to `target` ("*" as host or port matches any). */
export function tunnelAllowed(allow: readonly string[], target: string): boolean {
  const t = splitTarget(target)
  if (t === undefined) return false
  return allow.some((rule) => {
    const cut = rule.lastIndexOf(':')
    const host = rule.slice(0, cut).replace(/^\[(.*)\]$/, '$1')
    const port = rule.slice(cut + 1)
    return (host === '*' || host === t[0]) && (port === '*' || Number(port) === t[1])
  })
}

export default {
  name: 'tunnel.open',
  kind: 'unary',
  summary: 'A TCP connection from this node to a HOST:PORT that tunnels.allow lists, for `outpost tunnel` (live frames, not stored).',
  async run(ctx: MethodContext): Promise<MethodResult> {
    const { sid, rest } = parseHostArgs('tunnel.open', ctx.args)
    const target = rest[0]
    const hp = target === undefined ? undefined : splitTarget(target)
    if (target === undefined || hp === undefined || rest.length > 1) throw new OutpostError('method_args', `tunnel.open: give one target HOST:PORT after --, got ${JSON.stringify(rest.join(' '))}`)
    if (!tunnelAllowed(ctx.config.tunnels.allow, target)) {
      throw new OutpostError('tunnel_denied', `tunnel.open: ${ctx.node} may not connect to ${target}: tunnels.allow lists ${ctx.config.tunnels.allow.length === 0 ? 'no target' : ctx.config.tunnels.allow.join(', ')}`)
    }
    const sock = net.connect({ host: hp[0], port: hp[1], allowHalfOpen: true })
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => { sock.destroy(); reject(ctx.signal.reason) }
      ctx.signal.addEventListener('abort', onAbort, { once: true })
      sock.once('connect', () => { ctx.signal.removeEventListener('abort', onAbort); resolve() })
      sock.once('error', (err: NodeJS.ErrnoException) => {
        ctx.signal.removeEventListener('abort', onAbort)
        reject(new OutpostError('method_failed', `tunnel.open: cannot connect from ${ctx.node} to ${target}: ${err.code ?? err.message}`, { cause: err }))
      })
    })
    let session: ReturnType<typeof host>
    try {
      session = host(ctx, sid, async () => { sock.destroy() })
    } catch (err) {
      sock.destroy()
      throw err
    }
    carry(ctx, session, sock, `to ${target}`)
    const { ch } = session
    ch.write('ready')
    const r = await session.done
    return ended(ctx, ch, target, undefined, r)
  },
} satisfies UnaryMethod
