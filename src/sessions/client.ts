/**
 * The asking side of a session, on the node the CLI talks to: the socket API's streaming mode.
 *
 *   {"op":"session","toNode":N,"method":"session.open"|"tunnel.open"|"tunnel.listen","methodArgs":[…]}
 *     ─▶ channel SID (waits for the peer) + the request through the outbox (durable, ACKed,
 *        methods.allow on the receiver; ttl sessions.grace: an absent node is an error, not a
 *        shell that opens hours later)
 *   answers:  {"accepted":{id,toNode}} {"ready":{pid?}} {"out":B64}… {"eof":true}
 *             then {"exit":{"code":N}} or {"error":{code,message}}, and the connection closes
 *   the client's lines: {"in":B64} {"resize":[ROWS,COLS]} {"eof":true}; closing the connection
 *   ends the session (the remote side kills its process group)
 *
 * Flow control: the socket is paused while the channel's window is full; received data is
 * credited to the peer only once the socket took it (its write buffer drained).
 */
import { OutpostError } from '../errors'
import type { OutpostNode } from '../node'
import { checkReceivers, prepareSigned, sendAndWatch } from '../submit'
import { isValidNodeName, type MessageDraft } from '../wire/envelope'
import { Live } from './live'
import { WINDOW } from './channel'

/**
 * While the window is full the connection is not read, so a client that leaves is not seen
 * (its end comes after what it had sent). It is read again once every PROBE_MS, as long as
 * input stays within PROBE_ROOM past the window: what a client that left had sent and the
 * kernel still holds (a few hundred KiB) is read through to its end, and the session ends.
 */
const PROBE_MS = 1000
const PROBE_ROOM = 512 * 1024

/** What a session needs of its API connection. */
export interface SessionConn {
  /** One JSON line to the client; false when its buffer is full (wait for drained()). */
  write(obj: unknown): boolean
  drained(): Promise<void>
  pause(): void
  resume(): void
  /** Nothing more will be written: close once written. */
  end(): void
}

export const SESSION_METHODS = new Set(['session.open', 'tunnel.open', 'tunnel.listen'])

export interface ClientSession {
  /** A line from the client. */
  line(text: string): void
  /** The client went away. */
  close(): void
}

export async function openSession(node: OutpostNode, req: Record<string, unknown>, conn: SessionConn): Promise<ClientSession> {
  const { toNode, method, methodArgs, allowUnknown } = req
  if (typeof toNode !== 'string' || !isValidNodeName(toNode)) throw new OutpostError('api_bad_request', 'api: session needs "toNode", a node name')
  if (typeof method !== 'string' || !SESSION_METHODS.has(method)) throw new OutpostError('api_bad_request', `api: session "method" is session.open, tunnel.open or tunnel.listen, got ${JSON.stringify(method)}`)
  if (methodArgs !== undefined && (!Array.isArray(methodArgs) || methodArgs.some((a) => typeof a !== 'string'))) throw new OutpostError('api_bad_request', 'api: session "methodArgs" must be an array of strings')
  const s = node.config.sessions
  const sid = Live.newId()
  const draft: MessageDraft = {
    toNode, method, methodArgs: [sid, ...((methodArgs as string[] | undefined) ?? [])],
    ttl: s.grace, methodTimeout: s.maxDuration + s.grace + 60, directory: 'sessions', fileName: 'sessions.log',
  }
  checkReceivers(node, [draft], allowUnknown === true, method === 'session.open' ? 'shell' : 'tunnel')
  const ch = node.live.open(sid, toNode, { waitPeer: true, idle: false })
  let over = false
  let probe: NodeJS.Timeout | undefined
  const holdInput = (): void => {
    conn.pause()
    probe ??= setInterval(() => { if (ch.unconsumed < WINDOW + PROBE_ROOM) conn.resume() }, PROBE_MS)
  }
  const releaseInput = (): void => {
    if (probe !== undefined) clearInterval(probe)
    probe = undefined
    conn.resume()
  }
  const finish = (last?: unknown): void => {
    if (over) return
    over = true
    if (probe !== undefined) clearInterval(probe)
    if (last !== undefined) conn.write(last)
    stopWatch()
    conn.end()
  }
  const failWith = (e: { code: string; message: string }): void => { finish({ error: e }); ch.end() }
  ch.handler = {
    frame(f) {
      switch (f.type) {
        case 'ready': conn.write({ ready: f.args[0] !== undefined ? { pid: Number(f.args[0]) } : {} }); break
        case 'data': {
          const n = f.data?.length ?? 0
          const d = f.data ?? new Uint8Array(0)
          if (conn.write({ out: Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64') })) ch.consumed(n)
          else void conn.drained().then(() => ch.consumed(n))
          break
        }
        case 'eof': conn.write({ eof: true }); break
        case 'exit': finish({ exit: { code: f.exitCode ?? 0 } }); ch.end(); break
        default: break
      }
    },
    drain: releaseInput,
    end: (error) => finish(error !== undefined ? { error: error.toJSON() } : { error: { code: 'session_closed', message: `${toNode} ended the session` } }),
  }
  let stopWatch: () => void = () => {}
  try {
    // Signed with api.signingKey like any request the APIs take (the frames after it are bound to its session).
    const { envs, sign } = prepareSigned(node, [draft])
    stopWatch = await sendAndWatch(node, envs, true, {
      notice: (n) => conn.write({ notice: n }),
      accepted: (envs) => conn.write({ accepted: { id: envs[0]!.id, toNode } }),
      // The request's outcome: an error (refused, not delivered, failed) ends the session here;
      // a normal end came already as the exit frame.
      reply: (r) => { if (r.error !== undefined && !ch.isEnded) failWith(r.error) },
      done: () => {},
    }, sign)
  } catch (err) {
    ch.end()
    throw err
  }
  if (over) stopWatch()
  return {
    line(text) {
      if (over) return
      let m: { in?: unknown; resize?: unknown; eof?: unknown }
      try {
        m = JSON.parse(text) as typeof m
      } catch {
        failWith({ code: 'api_bad_request', message: 'api: a session line is not JSON' })
        return
      }
      if (typeof m.in === 'string') {
        if (!ch.write('data', Buffer.from(m.in, 'base64'))) holdInput()
      } else if (Array.isArray(m.resize) && m.resize.length === 2) {
        ch.write('resize', undefined, m.resize.map((n) => String(Math.trunc(Number(n)))))
      } else if (m.eof === true) {
        ch.write('eof')
      }
    },
    close() {
      if (over) return
      over = true
      if (probe !== undefined) clearInterval(probe)
      stopWatch()
      ch.end(new OutpostError('session_closed', `the client of the session on ${node.name} went away`))
    },
  }
}
