/**
 * tunnel.listen: a port on this node's loopback for `outpost tunnel NODE -R PORT:HOST:PORT`;
 * each connection accepted there is carried back to the asking node, whose CLI connects to
 * HOST:PORT from where it is. Two kinds of run under the one name (methods.allow covers both):
 *
 *   listener  [SID, --once=1?, --, PORT] ─ tunnels.listen lists PORT? (else tunnel_listen_denied)
 *             ─▶ listen on 127.0.0.1:PORT ─▶ ready; a connection accepted there is held, not
 *             read, and its id goes to the CLI as one line "ID\n" of data
 *             eof from the CLI ─▶ the port is closed ─▶ exit 0; the session's end otherwise (the
 *             CLI went away, the link stayed down past sessions.grace, …) closes it too
 *   accept    [SID, --accept=ID] ─▶ the held connection ID (held for this same asking node)
 *             ─▶ ready, then carried like tunnel.open's (src/sessions/carry.ts)
 *
 * Each connection is its own session: its own window both ways, so a slow reader holds up
 * only its own connection. A held connection nobody takes within sessions.grace, or still held
 * when its listener ends, is dropped; a listener holds at most MAX_HELD at once (more are reset).
 */
import net from 'node:net'
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'
import { carry } from '../src/sessions/carry'
import { ended, host, parseHostArgs, type Hosted } from '../src/sessions/host'
import { Live } from '../src/sessions/live'

const MAX_HELD = 128

interface Held {
  sock: net.Socket
  /** The asking node, and this node (several nodes may share a process in tests). */
  from: string
  node: string
  port: number
  timer: NodeJS.Timeout
  mine: Set<string>
}

/** Connections accepted and not yet taken by an accept run, by id. */
const held = new Map<string, Held>()

function drop(id: string): void {
  const h = held.get(id)
  if (h === undefined) return
  held.delete(id)
  h.mine.delete(id)
  clearTimeout(h.timer)
  h.sock.destroy()
}

/** Whether tunnels.listen lets this node open `port`. */
export function listenAllowed(listen: readonly string[], port: number): boolean {
  return listen.some((p) => Number(p) === port)
}

async function listener(ctx: MethodContext, sid: string, options: Map<string, string[]>, rest: string[]): Promise<MethodResult> {
  const port = rest.length === 1 && /^\d{1,5}$/.test(rest[0]!) ? Number(rest[0]) : 0
  if (port < 1 || port > 65535) throw new OutpostError('method_args', `tunnel.listen: give one PORT (1 to 65535) after --, got ${JSON.stringify(rest.join(' '))}`)
  const allowed = ctx.config.tunnels.listen
  if (!listenAllowed(allowed, port)) {
    throw new OutpostError('tunnel_listen_denied', `tunnel.listen: ${ctx.node} may not listen on port ${port}: tunnels.listen lists ${allowed.length === 0 ? 'no port' : allowed.join(', ')}`)
  }
  const once = options.get('once')?.[0] === '1'
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true })
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { server.close(); reject(ctx.signal.reason) }
    ctx.signal.addEventListener('abort', onAbort, { once: true })
    server.once('error', (err: NodeJS.ErrnoException) => {
      ctx.signal.removeEventListener('abort', onAbort)
      reject(new OutpostError('method_failed', `tunnel.listen: cannot listen on 127.0.0.1:${port} on ${ctx.node}: ${err.code ?? err.message}`, { cause: err }))
    })
    server.listen(port, '127.0.0.1', () => { ctx.signal.removeEventListener('abort', onAbort); resolve() })
  })
  const mine = new Set<string>()
  // server.close() lets go of the port at once; its 'close' waits for every connection it
  // accepted (carried ones too), so it is not awaited. One turn of the loop closes the handle.
  const stop = async (): Promise<void> => {
    server.close()
    for (const id of [...mine]) drop(id)
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
  let session: Hosted
  try {
    // Its connections carry the bytes (each with sessions.idleTimeout); this session only ids.
    session = host(ctx, sid, stop, { idle: false })
  } catch (err) {
    server.close()
    throw err
  }
  const { ch } = session
  let accepted = 0
  ch.handler = {
    frame(f) {
      if (f.type === 'data') ch.consumed(f.data?.length ?? 0)
      else if (f.type === 'eof') {
        // The CLI is done: the port is closed before it is told (exit), so a CLI that ended cleanly left nothing open.
        void stop().then(() => {
          ch.write('exit', undefined, [], 0)
          return ch.flushed(ctx.live!.settings().grace * 1000)
        }).then(() => session.end({ exitCode: 0 }))
      }
    },
    drain: () => {},
    end: (error) => session.end({ error: error ?? new OutpostError('session_closed', `${ctx.env.fromNode} closed the tunnel`) }),
  }
  server.on('error', (err: NodeJS.ErrnoException) => session.end({ error: new OutpostError('method_failed', `tunnel.listen: 127.0.0.1:${port} on ${ctx.node} failed: ${err.code ?? err.message}`) }))
  server.on('connection', (sock: net.Socket) => {
    if (mine.size >= MAX_HELD) {
      ctx.log('warn', `tunnel.listen: ${MAX_HELD} connections to 127.0.0.1:${port} wait for ${ctx.env.fromNode} to take them; one more was reset`)
      sock.destroy()
      return
    }
    accepted++
    if (once) server.close()
    const id = Live.newId()
    sock.on('error', () => {})
    const timer = setTimeout(() => drop(id), ctx.live!.settings().grace * 1000)
    held.set(id, { sock, from: ctx.env.fromNode, node: ctx.node, port, timer, mine })
    mine.add(id)
    ch.write('data', Buffer.from(`${id}\n`))
  })
  ch.write('ready')
  const r = await session.done
  ctx.log('debug', `tunnel.listen: 127.0.0.1:${port} on ${ctx.node} closed after ${accepted} connection(s)`)
  return ended(ctx, ch, `listen 127.0.0.1:${port}`, undefined, r)
}

async function accept(ctx: MethodContext, sid: string, id: string): Promise<MethodResult> {
  const h = held.get(id)
  if (h === undefined || h.from !== ctx.env.fromNode || h.node !== ctx.node) {
    throw new OutpostError('session_closed', `tunnel.listen: ${ctx.node} holds no connection ${id} for ${ctx.env.fromNode} (it waited past sessions.grace, or its listener ended)`)
  }
  held.delete(id)
  h.mine.delete(id)
  clearTimeout(h.timer)
  const { sock } = h
  let session: Hosted
  try {
    session = host(ctx, sid, async () => { sock.destroy() })
  } catch (err) {
    sock.destroy()
    throw err
  }
  const what = `127.0.0.1:${h.port} from ${sock.remoteAddress ?? '?'}:${sock.remotePort ?? '?'}`
  carry(ctx, session, sock, what)
  session.ch.write('ready')
  sock.resume()
  const r = await session.done
  return ended(ctx, session.ch, what, undefined, r)
}

export default {
  name: 'tunnel.listen',
  kind: 'unary',
  summary: 'A port on this node\'s loopback that tunnels.listen lists, for `outpost tunnel -R`: each connection made to it is carried back to the asking node (live frames, not stored).',
  async run(ctx: MethodContext): Promise<MethodResult> {
    const { sid, options, rest } = parseHostArgs('tunnel.listen', ctx.args)
    const id = options.get('accept')
    if (id !== undefined) {
      if (id.length !== 1 || rest.length > 0 || options.size > 1) throw new OutpostError('method_args', 'tunnel.listen: --accept=ID takes nothing else')
      return accept(ctx, sid, id[0]!)
    }
    for (const k of options.keys()) if (k !== 'once') throw new OutpostError('method_args', `tunnel.listen: unknown option --${k} (--once=1, --accept=ID)`)
    return listener(ctx, sid, options, rest)
  },
} satisfies UnaryMethod
