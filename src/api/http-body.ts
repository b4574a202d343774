/**
 * Reading a request's body for the HTTP API (http.ts), with a cap, and closing a connection
 * after a refusal without losing the answer to a reset.
 */
import type http from 'node:http'
import type net from 'node:net'
import { OutpostError } from '../errors'

/** Largest request body read (bigger: 413 before it is buffered). Use the socket for more. */
export const MAX_BODY_BYTES = 1024 * 1024
/** After a refusal (401, 413) the connection stays half open this long, what comes meanwhile dropped unread. */
const LINGER_MS = 2000

/**
 * A refusal sent while the client may still be sending (a body not read): close our side, drop
 * what still comes for LINGER_MS, then close (RFC 9112 §9.6). Closing at once with unread bytes
 * makes the kernel send a reset, and the client loses the answer.
 */
export function lingerOnClose(res: http.ServerResponse): void {
  // req.socket: a pipelined response gets res.socket only once the ones before it are sent.
  const socket: net.Socket = res.req.socket
  // Node ends a `connection: close` response with socket.destroySoon(): end, then destroy.
  // Reading goes on as before (the request is dumped); Node pauses and resumes the socket itself.
  socket.destroySoon = (): void => {
    socket.end()
    const timer = setTimeout(() => socket.destroy(), LINGER_MS)
    timer.unref()
    socket.once('close', () => clearTimeout(timer))
  }
}

/** The body as text, refused (413) past MAX_BODY_BYTES before more is buffered. */
export function readBody(req: http.IncomingMessage, res: http.ServerResponse): Promise<string> {
  const tooLarge = (): OutpostError => new OutpostError('api_too_large', `api: the request body is larger than ${MAX_BODY_BYTES} bytes (send bigger messages through the socket API)`)
  const declared = Number(req.headers['content-length'] ?? NaN)
  if (declared > MAX_BODY_BYTES) {
    req.resume()
    return Promise.reject(tooLarge())
  }
  // The client waits for this before it sends the body (Expect: 100-continue).
  if (/100-continue/i.test(req.headers.expect ?? '')) res.writeContinue()
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let over = false
    req.on('data', (c: Buffer) => {
      if (over) return
      size += c.length
      if (size > MAX_BODY_BYTES) { over = true; chunks.length = 0; reject(tooLarge()); return }
      chunks.push(c)
    })
    req.on('end', () => { if (!over) resolve(Buffer.concat(chunks).toString('utf8')) })
    req.on('error', reject)
  })
}
