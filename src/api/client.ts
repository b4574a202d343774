/**
 * The client side of the local socket API (src/api/socket.ts), shared by `outpost send`,
 * `outpost nodes` and the REPL: one request, JSON lines back.
 */
import net from 'node:net'
import { OutpostError } from '../errors'
import { Lines } from '../lib/lines'

/**
 * Send one request; call onLine for each JSON line until it returns true, the server closes,
 * or `signal` aborts (then the promise rejects with the signal's reason; what the node
 * accepted stays queued there).
 */
export function talk(file: string, request: string, onLine: (obj: Record<string, unknown>) => boolean | void, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    let ended = false
    const sock = net.connect(file)
    const onAbort = (): void => { ended = true; sock.destroy(); reject(signal!.reason) }
    if (signal?.aborted) { onAbort(); return }
    signal?.addEventListener('abort', onAbort, { once: true })
    const finish = (err?: unknown): void => {
      signal?.removeEventListener('abort', onAbort)
      if (err === undefined) resolve()
      else reject(err)
    }
    const lines = new Lines()
    sock.setEncoding('utf8')
    sock.on('connect', () => { sock.write(request) })
    sock.on('data', (d: string) => {
      for (const line of lines.push(d)) {
        let finished: boolean | void
        try {
          finished = onLine(JSON.parse(line) as Record<string, unknown>)
        } catch (err) {
          ended = true
          sock.destroy()
          finish(err)
          return
        }
        if (finished === true) { ended = true; sock.destroy(); finish(); return }
      }
    })
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (ended) return
      ended = true
      finish(unreachable(file, err))
    })
    sock.on('close', () => {
      if (ended) return
      ended = true
      // The agent went away (stopped, crashed) mid-answer: what it accepted is durable in its
      // outbox and goes on when it runs again, so this is no "not delivered" (exit 3 says nothing ran).
      finish(new OutpostError('agent_lost', `the agent closed its socket (${file}) before its answer was complete: it stopped or crashed. What it accepted stays in its outbox and goes on when it runs again (outpost status, outpost transfers; replies reach the reply method)`))
    })
  })
}

/**
 * Nothing answers on the socket: no agent runs for this config (ENOENT: no socket file;
 * ECONNREFUSED: a file left by an agent that is gone). The CLI says which config and data dir.
 */
function unreachable(file: string, err: NodeJS.ErrnoException): OutpostError {
  if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK') {
    const why = err.code === 'ECONNREFUSED' ? `${file} is left from an agent that is not running` : `there is no socket ${file}`
    return new OutpostError('agent_not_running', `no outpost agent is running here: ${why}`, { cause: err })
  }
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    return new OutpostError('io', `cannot open ${file} (${err.code}): the agent runs as another user (its socket is mode 0600); run this as that user`, { cause: err })
  }
  return new OutpostError('io', `cannot reach the agent at ${file} (${err.code ?? err.message})`, { cause: err })
}
