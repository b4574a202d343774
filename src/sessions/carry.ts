/**
 * A TCP socket carried by a session's live channel, on the node that runs it: what tunnel.open
 * (a connection it made) and tunnel.listen (a connection it accepted) share.
 *
 *   socket data ─▶ data frames (the socket pauses while the window is full) · end ─▶ eof
 *   data frames ─▶ socket (credited once written) · eof ─▶ half-close · both closed ─▶ exit 0
 */
import type net from 'node:net'
import { OutpostError } from '../errors'
import type { MethodContext } from '../method'
import { SOCKET_BUFFER } from './channel'
import type { Hosted } from './host'

/** Wire `sock` to the session's channel; the session ends when the socket closes or fails. */
export function carry(ctx: MethodContext, session: Hosted, sock: net.Socket, what: string): void {
  const { ch } = session
  ch.handler = {
    frame(f) {
      if (f.type === 'data' && f.data !== undefined) {
        const n = f.data.length
        sock.write(f.data)
        if (sock.writableLength < SOCKET_BUFFER) ch.consumed(n)
        else sock.once('drain', () => ch.consumed(n))
      } else if (f.type === 'eof') {
        sock.end()
      }
    },
    drain: () => sock.resume(),
    end: (error) => session.end({ error: error ?? new OutpostError('session_closed', `${ctx.env.fromNode} closed the tunnel`) }),
  }
  sock.on('data', (d: Buffer) => { if (!ch.write('data', d)) sock.pause() })
  sock.on('end', () => ch.write('eof'))
  sock.on('error', (err: NodeJS.ErrnoException) => session.end({ error: new OutpostError('method_failed', `${ctx.env.method}: the connection ${what} failed: ${err.code ?? err.message}`) }))
  sock.on('close', () => {
    ch.write('exit', undefined, [], 0)
    void ch.flushed(ctx.live!.settings().grace * 1000).then(() => session.end({ exitCode: 0 }))
  })
}
