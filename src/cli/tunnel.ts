/**
 * `outpost tunnel NODE LOCALPORT:HOST:PORT`: listen on 127.0.0.1:LOCALPORT; each connection
 * becomes one tunnel.open session, NODE connecting to HOST:PORT from where it is (its bytes:
 * tunnel-bridge.ts). With -R, the other way round: tunnel-reverse.ts.
 */
import net from 'node:net'
import path from 'node:path'
import { exitCodeFor, OutpostError, type ErrorCode } from '../errors'
import { askAgent, EXIT, GLOBAL_HELP, load, parse, print, socketPath, type Io } from './common'
import { bridge } from './tunnel-bridge'
import { parseReverse, reverseTunnel, reverseUsage } from './tunnel-reverse'

const HELP = `Usage: outpost tunnel NODE LOCALPORT:HOST:PORT [--once]
       outpost tunnel NODE -R REMOTEPORT:HOST:PORT [--once]

  Listen on 127.0.0.1:LOCALPORT; each connection made to it is carried to NODE (tunnel.open),
  which connects to HOST:PORT from where it is. HOST:PORT must be listed in NODE's
  tunnels.allow (none by default: tunnel_denied). LOCALPORT 0 picks a free port (printed).
  Many connections at once, each with its own flow control.

  -R, --remote REMOTEPORT:HOST:PORT
                      the other way round: NODE listens on its own 127.0.0.1:REMOTEPORT
                      (tunnel.listen; loopback only, and REMOTEPORT must be listed in NODE's
                      tunnels.listen, none by default: tunnel_listen_denied, exit 3); each
                      connection made to it there is carried back here, and this command
                      connects to HOST:PORT from here. The port is closed when this command
                      ends, or when the link stays down past NODE's sessions.grace.
  --once              carry one connection, then exit (with 3 when it was refused)
  --allow-unknown     open to a node the node list has not heard of
  --socket PATH       this node's API socket (default <dataDir>/outpost.sock)
  --json              {"listening":{"port"}} (-R: {"listening":{"remotePort"}}) and one
                      {"closed"} or {"error"} per connection

  Runs until interrupted (Ctrl-C: exit 0).

${GLOBAL_HELP}`

export async function tunnel(io: Io, args: string[], signal?: AbortSignal): Promise<number> {
  const { values, positionals } = parse(args, { once: { type: 'boolean' }, 'allow-unknown': { type: 'boolean' }, socket: { type: 'string' }, remote: { type: 'string', short: 'R' } }, true)
  if (values.help) return print(io, HELP)
  const [node, spec, ...extra] = positionals
  if (values.remote !== undefined) {
    const r = parseReverse(values.remote)
    if (node === undefined || r === undefined || spec !== undefined) throw reverseUsage()
    const loaded = load(io, values, false)
    const file = values.socket !== undefined ? path.resolve(io.cwd, values.socket) : socketPath(loaded.config)
    return reverseTunnel(io, { node, ...r, file, json: values.json === true, once: values.once === true, allowUnknown: values['allow-unknown'] === true }, signal)
  }
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
    bridge(file, { toNode: node, method: 'tunnel.open', methodArgs: ['--', target], ...(values['allow-unknown'] === true ? { allowUnknown: true } : {}) }, local, (r) => {
      if ('code' in r) {
        if (json) say({ closed: { target } }, '')
      } else {
        last = exitCodeFor(r.error.code)
        say({ error: r.error.toJSON() }, `${r.error.message} [${r.error.code}]`)
      }
      if (--open === 0 && once) finish(last)
    })
  })

  // No agent here, or a node central has never heard of: say so now (agent_not_running, exit
  // 2; node_unknown, exit 2), not at the first connection.
  let refused: { code: ErrorCode; message: string } | undefined
  await askAgent(io, loaded, values.socket, { op: 'check', toNodes: [node], ...(values['allow-unknown'] === true ? { allowUnknown: true } : {}) }, (obj) => {
    if (obj.error !== undefined) refused = obj.error as typeof refused
    return true
  }, signal)
  if (refused !== undefined) throw new OutpostError(refused.code, refused.message)
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
