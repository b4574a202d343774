/**
 * The CLI end of the socket API's session mode (src/sessions/client.ts): one connection per
 * session, JSON lines both ways, bytes as base64. Flow control rides on the socket: the caller
 * pauses what it reads while send() says false, and pause() stops reading the node's output.
 */
import net from 'node:net'
import { ERROR_CODES, OutpostError, type ErrorCode } from '../errors'
import { Lines } from '../lib/lines'
import { SOCKET_BUFFER } from '../sessions/channel'

export interface StreamEvents {
  accepted?(a: { id: string; toNode: string }): void
  notice?(n: { code: string; message: string }): void
  ready?(): void
  /** Output bytes; return false to stop reading until resume(). */
  out(bytes: Buffer): boolean | void
  eof?(): void
  /** The end: the remote exit status, or the error the session ended with. */
  end(r: { code: number } | { error: OutpostError }): void
}

export interface SessionStream {
  send(obj: unknown): boolean
  /** Resolves when what was sent left the buffer. */
  drained(): Promise<void>
  pause(): void
  resume(): void
  close(): void
}

export function openStream(file: string, request: Record<string, unknown>, ev: StreamEvents): SessionStream {
  const sock = net.connect(file)
  let over = false
  const end = (r: { code: number } | { error: OutpostError }): void => {
    if (over) return
    over = true
    sock.destroy()
    ev.end(r)
  }
  const lines = new Lines()
  sock.setEncoding('utf8')
  // Written now, before anything send() queues: the request is the connection's first line.
  sock.write(JSON.stringify({ op: 'session', ...request }) + '\n')
  sock.on('data', (d: string) => {
    for (const line of lines.push(d)) {
      if (over) return
      // Output lines, nearly all of the bytes, the way the agent writes them: no JSON parse.
      if (line.startsWith('{"out":"') && line.endsWith('"}') && line.indexOf('"', 8) === line.length - 2) {
        if (ev.out(Buffer.from(line.slice(8, -2), 'base64')) === false) sock.pause()
        continue
      }
      const m = JSON.parse(line) as Record<string, unknown>
      if (typeof m.out === 'string') {
        if (ev.out(Buffer.from(m.out, 'base64')) === false) sock.pause()
      } else if (m.accepted !== undefined) ev.accepted?.(m.accepted as { id: string; toNode: string })
      else if (m.ready !== undefined) ev.ready?.()
      else if (m.notice !== undefined) ev.notice?.(m.notice as { code: string; message: string })
      else if (m.eof === true) ev.eof?.()
      else if (m.exit !== undefined) end({ code: (m.exit as { code: number }).code })
      else if (m.error !== undefined) {
        const e = m.error as { code: string; message: string }
        end({ error: new OutpostError(Object.hasOwn(ERROR_CODES, e.code) ? (e.code as ErrorCode) : 'method_failed', e.message) })
      }
    }
  })
  sock.on('error', (err: NodeJS.ErrnoException) => {
    const missing = err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
    end({ error: missing ? new OutpostError('agent_not_running', `no outpost agent answers on ${file}; start one with \`outpost agent\``, { cause: err }) : new OutpostError('io', `the connection to the agent at ${file} failed: ${err.message}`, { cause: err }) })
  })
  sock.on('close', () => end({ error: new OutpostError('session_closed', 'the local agent closed the session without an exit status (it stopped?)') }))
  return {
    send: (obj) => { if (!over) sock.write(JSON.stringify(obj) + '\n'); return sock.writableLength < SOCKET_BUFFER },
    drained: () => new Promise((resolve) => { if (over || sock.writableLength < SOCKET_BUFFER) resolve(); else sock.once('drain', () => resolve()) }),
    pause: () => sock.pause(),
    resume: () => sock.resume(),
    close: () => { over = true; sock.destroy() },
  }
}
