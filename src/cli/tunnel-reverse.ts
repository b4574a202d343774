/**
 * `outpost tunnel NODE -R REMOTEPORT:HOST:PORT`: NODE listens on its 127.0.0.1:REMOTEPORT
 * (tunnel.listen; tunnels.listen must list the port); each connection accepted there is carried
 * back here, and this process connects to HOST:PORT for it.
 *
 *   control session tunnel.listen [--once=1] -- REMOTEPORT ─▶ {"ready"}: listening there
 *     {"out"} lines "ID\n": a connection NODE accepted ─▶ connect to HOST:PORT here + a session
 *     tunnel.listen --accept=ID, bytes both ways (tunnel-bridge.ts), one window per connection
 *   Ctrl-C, or --once's connection ended ─▶ {"eof"} on the control session: NODE closes the
 *     port and answers exit, then this process exits (the port is closed by then). Without an
 *     answer within STOP_WAIT_MS (the link is down) it exits anyway: NODE closes the port when
 *     the agent's channel ends, or at the latest after sessions.grace.
 */
import net from 'node:net'
import { exitCodeFor, OutpostError } from '../errors'
import { EXIT, type Io } from './common'
import { openStream } from './session-stream'
import { bridge } from './tunnel-bridge'

const STOP_WAIT_MS = 5000

export interface ReverseOptions {
  node: string
  remotePort: number
  host: string
  port: number
  /** The agent's API socket. */
  file: string
  json: boolean
  once: boolean
  allowUnknown: boolean
}

/** REMOTEPORT:HOST:PORT (an IPv6 HOST in brackets), or undefined. */
export function parseReverse(spec: string): { remotePort: number; host: string; port: number } | undefined {
  const m = /^(\d{1,5}):(\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(spec)
  if (m === null) return undefined
  const remotePort = Number(m[1])
  const port = Number(m[5])
  if (remotePort < 1 || remotePort > 65535 || port < 1 || port > 65535) return undefined
  return { remotePort, host: m[3] ?? m[4]!, port }
}

export async function reverseTunnel(io: Io, o: ReverseOptions, signal?: AbortSignal): Promise<number> {
  const target = `${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`
  const where = `${o.node}'s 127.0.0.1:${o.remotePort}`
  const say = (obj: Record<string, unknown>, text: string): void => { if (o.json) io.stdout.write(JSON.stringify(obj) + '\n'); else io.stderr.write(`outpost: ${text}\n`) }
  const unknown = o.allowUnknown ? { allowUnknown: true } : {}
  let last: number = EXIT.ok
  let open = 0
  let stopping = false
  let controlOver = false
  let stopTimer: NodeJS.Timeout | undefined
  let finish!: (code: number) => void
  const done = new Promise<number>((resolve) => { finish = resolve })
  let pending = ''

  const accept = (id: string): void => {
    open++
    const local = net.connect({ host: o.host, port: o.port, allowHalfOpen: true })
    bridge(o.file, { toNode: o.node, method: 'tunnel.listen', methodArgs: [`--accept=${id}`], ...unknown }, local, (r) => {
      if ('code' in r) {
        if (o.json) say({ closed: { target } }, '')
      } else {
        last = exitCodeFor(r.error.code)
        say({ error: r.error.toJSON() }, `${r.error.message} [${r.error.code}]`)
      }
      if (--open === 0 && o.once) stop(last)
    })
  }

  const control = openStream(o.file, { toNode: o.node, method: 'tunnel.listen', methodArgs: [...(o.once ? ['--once=1'] : []), '--', String(o.remotePort)], ...unknown }, {
    notice: (n) => say({ notice: n }, `${n.message} [${n.code}]`),
    ready: () => say({ listening: { node: o.node, remotePort: o.remotePort, target } }, `tunnel listening on ${where} → ${target} here${o.once ? ' (one connection)' : ''}; Ctrl-C ends it`),
    out: (bytes) => {
      pending += bytes.toString('utf8')
      let nl: number
      while ((nl = pending.indexOf('\n')) >= 0) {
        const id = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        if (id !== '' && !stopping) accept(id)
      }
    },
    end: (r) => {
      controlOver = true
      if (stopTimer !== undefined) clearTimeout(stopTimer)
      if ('error' in r && !stopping) {
        say({ error: r.error.toJSON() }, `${r.error.message} [${r.error.code}]`)
        finish(exitCodeFor(r.error.code))
      } else {
        finish(stopping ? last : EXIT.ok)
      }
    },
  })

  /** Ask NODE to close the port, and exit once it says it did (or after STOP_WAIT_MS). */
  function stop(code: number): void {
    if (stopping) return
    stopping = true
    last = code
    if (controlOver) { finish(code); return }
    control.send({ eof: true })
    stopTimer = setTimeout(() => { control.close(); finish(code) }, STOP_WAIT_MS)
  }

  const interrupt = (): void => stop(EXIT.ok)
  const unlisten = signal !== undefined ? (signal.addEventListener('abort', interrupt), () => signal.removeEventListener('abort', interrupt)) : (process.once('SIGINT', interrupt), process.once('SIGTERM', interrupt), () => { process.off('SIGINT', interrupt); process.off('SIGTERM', interrupt) })
  try {
    return await done
  } finally {
    unlisten()
    if (stopTimer !== undefined) clearTimeout(stopTimer)
    control.close()
  }
}

/** The error for a -R spec that does not parse. */
export function reverseUsage(): OutpostError {
  return new OutpostError('usage', 'usage: outpost tunnel NODE -R REMOTEPORT:HOST:PORT, e.g. outpost tunnel ship1 -R 9000:127.0.0.1:3000')
}
