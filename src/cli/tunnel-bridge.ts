/**
 * One connection of `outpost tunnel`, on the CLI's side: a local socket (accepted here, or, for
 * -R, made here) and its session through the agent's socket API, bytes both ways.
 *
 *   local socket ─ data ─▶ {"in"} (paused while the agent's socket is full) ─ end ─▶ {"eof"}
 *   {"out"} ─▶ local socket (the session pauses while it is full) · {"eof"} ─▶ half-close
 *   {"exit"} ─▶ end · {"error"} ─▶ the connection is reset, the error reported
 *   the local socket closed before both sides said eof ─▶ the session is ended here
 */
import type net from 'node:net'
import { OutpostError } from '../errors'
import { SOCKET_BUFFER } from '../sessions/channel'
import { openStream } from './session-stream'

export type BridgeEnd = { code: number } | { error: OutpostError }

export function bridge(file: string, request: Record<string, unknown>, local: net.Socket, done: (r: BridgeEnd) => void): void {
  let over = false
  let sentEof = false
  let gotEof = false
  let localError: NodeJS.ErrnoException | undefined
  const finish = (r: BridgeEnd): void => {
    if (over) return
    over = true
    done(r)
  }
  const s = openStream(file, request, {
    out: (bytes) => {
      local.write(bytes)
      if (local.writableLength < SOCKET_BUFFER) return true
      local.once('drain', () => s.resume())
      return false
    },
    eof: () => { gotEof = true; local.end() },
    end: (r) => {
      if ('code' in r) local.end()
      else local.destroy()
      finish(r)
    },
  })
  local.on('data', (d: Buffer) => {
    if (!s.send({ in: d.toString('base64') })) { local.pause(); void s.drained().then(() => local.resume()) }
  })
  local.on('end', () => { sentEof = true; s.send({ eof: true }) })
  local.on('error', (err: NodeJS.ErrnoException) => { localError = err })
  // Closed both ways: the remote side ends it (exit); closed abruptly: the session is ended here.
  local.on('close', () => {
    if (over || (sentEof && gotEof)) return
    s.close()
    finish(localError !== undefined ? { error: new OutpostError('io', `tunnel: the local connection failed: ${localError.code ?? localError.message}`, { cause: localError }) } : { code: 0 })
  })
}
