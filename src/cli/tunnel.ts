/**
 * `outpost tunnel NODE LOCALPORT:HOST:PORT`: listen on 127.0.0.1:LOCALPORT; each connection
 * becomes one tunnel.open session, NODE connecting to HOST:PORT from where it is.
 *
 *   local socket ─ data ─▶ {"in"} (paused while the agent's socket is full) ─ end ─▶ {"eof"}
 *   {"out"} ─▶ local socket (the session pauses while it is full) · {"eof"} ─▶ half-close
 *   {"exit"} ─▶ end · {"error"} ─▶ the connection is reset, the error printed
 */
import net from 'node:net'
import path from 'node:path'
import { exitCodeFor, OutpostError } from '../errors'
import { askAgent, EXIT, GLOBAL_HELP, load, parse, print, socketPath, type Io } from './common'
import { openStream } from './session-stream'
import { SOCKET_BUFFER } from '../sessions/channel'

const HELP = `Usage: outpost tunnel NODE LOCALPORT:HOST:PORT [--once]

  Listen on 127.0.0.1:LOCALPORT; each connection made to it is carried to NODE (tunnel.open),
  which connects to HOST:PORT from where it is. HOST:PORT must be listed in NODE's
  tunnels.allow (none by default: tunnel_denied). LOCALPORT 0 picks a free port (printed).
  Many connections at once, each with its own flow control.

  --once              carry one connection, then exit (with 3 when it was refused)
  --allow-unknown     open to a node the node list has not heard of
  --socket PATH       this node's API socket (default <dataDir>/outpost.sock)
  --json              {"listening":{"port"}} and one {"closed"} or {"error"} per connection

  Runs until interrupted (Ctrl-C: exit 0).

${GLOBAL_HELP}`

export async function tunnel(io: Io, args: string[], signal?: AbortSignal): Promise<number> {
  const { values, positionals } = parse(args, { once: { type: 'boolean' }, 'allow-unknown': { type: 'boolean' }, socket: { type: 'string' } }, true)
  if (values.help) return print(io, HELP)
  const [node, spec, ...extra] = positionals
  const m = spec === undefined ? null : /^(\d{1,5}):(.+:\d{1,5})$/.exec(spec)
  if (node === undefined || m === null || extra.length > 0) throw new OutpostError('usage', 'usage: outpost tunnel NODE LOCALPORT:HOST:PORT, e.g. outpost tunnel ship1 8080:127.0.0.1:80')
  const target = m[2]!
  const targetPort = Number(/:(\d+)$/.exec(target)![1])
  if (Number(m[1]) > 65535 || targetPort < 1 || targetPort > 65535) throw new OutpostError('usage', `tunnel: ${spec}: LOCALPORT is 0 to 65535 and PORT 1 to 65535`)
  const loaded = load(io, values, false)
  const file = values.socket !== undefined ? path.resolve(io.cwd, values.socket) : socketPath(loaded.config)
  const json = values.json === true
  const once = values.once === true
  const say = (obj: Record<string, unknown>, text: string): void => { if (json) io.stdout.write(JSON.stringify(obj) + '\n'); else io.stderr.write(`outpost: ${text}\n`) }
  const server = net.createServer({ allowHalfOpen: true })
  let last: number = EXIT.ok
  let open = 0
  let finish!: (code: number) => void
  const done = new Promise<number>((resolve) => { finish = resolve })

  server.on('connection', (local) => {
    open++
    if (once) server.close()
    let ended = false
    let sentEof = false
    let gotEof = false
    const s = openStream(file, { toNode: node, method: 'tunnel.open', methodArgs: ['--', target], ...(values['allow-unknown'] === true ? { allowUnknown: true } : {}) }, {
      out: (bytes) => {
        local.write(bytes)
        if (local.writableLength < SOCKET_BUFFER) return true
        local.once('drain', () => s.resume())
        return false
      },
      eof: () => { gotEof = true; local.end() },
      end: (r) => {
        ended = true
        if ('code' in r) {
          local.end()
          if (json) say({ closed: { target } }, '')
        } else {
          local.destroy()
          last = exitCodeFor(r.error.code)
          say({ error: r.error.toJSON() }, `${r.error.message} [${r.error.code}]`)
        }
        if (--open === 0 && once) finish(last)
      },
    })
    local.on('data', (d: Buffer) => {
      if (!s.send({ in: d.toString('base64') })) { local.pause(); void s.drained().then(() => local.resume()) }
    })
    local.on('end', () => { sentEof = true; s.send({ eof: true }) })
    local.on('error', () => {})
    // Closed both ways: the remote side ends it (exit); closed abruptly: the session is ended here.
    local.on('close', () => { if (!ended && !(sentEof && gotEof)) s.close() })
  })

  // No agent here: say so now (agent_not_running, exit 2), not at the first connection.
  await askAgent(io, loaded, values.socket, { op: 'status' }, () => true, signal)
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new OutpostError('io', `tunnel: cannot listen on 127.0.0.1:${m[1]}: ${err.code ?? err.message}`, { cause: err })))
    server.listen(Number(m[1]), '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port))
  })
  say({ listening: { port, node, target } }, `tunnel listening on 127.0.0.1:${port} → ${node} → ${target}${once ? ' (one connection)' : ''}; Ctrl-C ends it`)
  const stop = (): void => { server.close(); finish(EXIT.ok) }
  const unlisten = signal !== undefined ? (signal.addEventListener('abort', stop), () => signal.removeEventListener('abort', stop)) : (process.once('SIGINT', stop), process.once('SIGTERM', stop), () => { process.off('SIGINT', stop); process.off('SIGTERM', stop) })
  try {
    return await done
  } finally {
    unlisten()
    server.close()
  }
}
