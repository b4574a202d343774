/**
 * Shells over plain HTTP: the socket API's `{"op":"session"}` (src/sessions/client.ts) for the
 * console's terminal and for bearer-token tools, with no WebSocket. One session is three routes:
 *
 *   POST /v1/sessions {toNode, rows?, cols?, term?, command?}   openSession ─▶ 201 {session:{id,toNode,accepted}}
 *   GET  /v1/sessions/ID/events   SSE: ready · out (base64) · eof · then exit {code} or error {code,message}
 *   POST /v1/sessions/ID/input {seq, lines:[{in}|{resize}|{eof}]}   in order of seq: 200 {next}
 *   DELETE /v1/sessions/ID        end it now
 *
 * The session ends (the remote process group killed) when its event stream closes, or when no
 * stream comes within STREAM_WAIT_MS of the open. Only whoever opened it (the same console
 * sign-in, or the bearer token) can follow or type into it; the routes' CSRF and token checks
 * are http.ts's, as for every /v1/ route.
 *
 * Flow control is openSession's: output waits in the stream's buffer (or, before the stream
 * comes, here) and is credited to the remote side only once taken; while the remote side's
 * window is full, the answer to an input batch waits, so a client sending one batch at a time
 * (as the console does) is held back.
 */
import { randomBytes } from 'node:crypto'
import type http from 'node:http'
import { OutpostError } from '../errors'
import type { LogFn } from '../log'
import type { OutpostNode } from '../node'
import { SOCKET_BUFFER } from '../sessions/channel'
import { openSession, type ClientSession } from '../sessions/client'

/** An opened session without its event stream this long is ended. */
export const STREAM_WAIT_MS = 10_000
/** Input batches held while an earlier one (by seq) has not come; more is refused. */
const MAX_HELD_BATCHES = 32
/** Sessions open at once through HTTP. */
const MAX_SESSIONS = 64
const SSE_PING_MS = 15_000

export interface HttpSessionTools {
  readBody: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<string>
  json: (res: http.ServerResponse, status: number, obj: unknown) => void
  only: (...allowed: string[]) => void
}

interface Open {
  id: string
  owner: string
  toNode: string
  session?: ClientSession
  /** SSE frames written before the stream came (bytes counted for flow control). */
  queued: string[]
  queuedBytes: number
  stream?: http.ServerResponse
  over: boolean
  next: number
  held: Map<number, unknown[]>
  paused: boolean
  /** Input answers waiting for the remote side's window. */
  onResume: (() => void)[]
  onDrain: (() => void)[]
  timer?: NodeJS.Timeout
}

export class HttpSessions {
  private readonly open = new Map<string, Open>()
  constructor(private readonly node: OutpostNode, private readonly log: LogFn) {}

  /** /v1/sessions and /v1/sessions/…; `owner` names who is asking ("bearer", or the console sign-in). */
  async route(req: http.IncomingMessage, res: http.ServerResponse, route: string, owner: string, t: HttpSessionTools): Promise<void> {
    const method = req.method ?? 'GET'
    if (route === '/v1/sessions') { t.only('POST'); return this.create(req, res, owner, t) }
    const m = /^\/v1\/sessions\/([A-Za-z0-9_-]{1,64})(\/events|\/input)?$/.exec(route)
    if (m === null) throw new OutpostError('api_not_found', `api: no route ${method} ${route.slice(0, 80)} (POST /v1/sessions, GET /v1/sessions/ID/events, POST /v1/sessions/ID/input, DELETE /v1/sessions/ID)`)
    const s = this.open.get(m[1]!)
    // Someone else's session is answered as one that does not exist.
    if (s === undefined || s.owner !== owner) throw new OutpostError('api_not_found', `api: no open session ${m[1]!.slice(0, 12)}… here (it ended, or it was opened by another sign-in)`)
    if (m[2] === '/events') { t.only('GET'); return this.follow(req, res, s) }
    if (m[2] === '/input') { t.only('POST'); return this.input(req, res, s, t) }
    t.only('DELETE')
    this.end(s, 'closed by its client')
    res.writeHead(204)
    res.end()
  }

  private async create(req: http.IncomingMessage, res: http.ServerResponse, owner: string, t: HttpSessionTools): Promise<void> {
    const body = parseObject(await t.readBody(req, res), 'POST /v1/sessions takes a JSON object {toNode, rows?, cols?, term?, command?}')
    if (this.open.size >= MAX_SESSIONS) throw new OutpostError('api_bad_request', `api: ${MAX_SESSIONS} sessions are open through HTTP already; close one first`)
    const args: string[] = []
    for (const k of ['rows', 'cols'] as const) {
      const v = body[k]
      if (v === undefined) continue
      if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 10000) throw new OutpostError('api_bad_request', `api: session "${k}" must be a whole number from 1 to 10000`)
      args.push(`--${k}=${v as number}`)
    }
    if (body.term !== undefined) {
      if (typeof body.term !== 'string' || !/^[A-Za-z0-9._-]{1,40}$/.test(body.term)) throw new OutpostError('api_bad_request', 'api: session "term" must be a terminal name such as xterm-256color')
      args.push(`--term=${body.term}`)
    }
    if (body.command !== undefined) {
      if (typeof body.command !== 'string' || body.command === '') throw new OutpostError('api_bad_request', 'api: session "command" must be a non-empty string (run with the node\'s methods.shell -c)')
      args.push('--', body.command)
    }
    const s: Open = { id: randomBytes(18).toString('base64url'), owner, toNode: String(body.toNode), queued: [], queuedBytes: 0, over: false, next: 0, held: new Map(), paused: false, onResume: [], onDrain: [] }
    let accepted: unknown
    s.session = await openSession(this.node, { toNode: body.toNode, method: 'session.open', methodArgs: args, allowUnknown: body.allowUnknown === true }, {
      write: (obj) => {
        const o = obj as Record<string, unknown>
        if (o.accepted !== undefined) { accepted = o.accepted; return true }
        return this.send(s, obj)
      },
      drained: () => new Promise((resolve) => { if (this.room(s)) resolve(); else s.onDrain.push(resolve) }),
      pause: () => { s.paused = true },
      resume: () => { s.paused = false; for (const f of s.onResume.splice(0)) f() },
      end: () => this.finish(s),
    })
    this.open.set(s.id, s)
    // (A session over already keeps its last frames here for the stream, as finish() set up.)
    if (!s.over) s.timer = setTimeout(() => this.end(s, `no event stream came within ${STREAM_WAIT_MS / 1000} s`), STREAM_WAIT_MS).unref()
    this.log('info', `api: a shell on ${s.toNode} opened over HTTP by ${owner === 'bearer' ? 'a bearer-token client' : 'a console sign-in'} from ${req.socket.remoteAddress ?? '?'} (session ${s.id.slice(0, 8)})`)
    t.json(res, 201, { session: { id: s.id, toNode: s.toNode, ...(accepted !== undefined ? { accepted } : {}) } })
  }

  /** The session's event stream: what waited for it first, then live. */
  private follow(req: http.IncomingMessage, res: http.ServerResponse, s: Open): void {
    if (s.stream !== undefined) throw new OutpostError('api_bad_request', 'api: this session has its event stream already (one per session)')
    clearTimeout(s.timer)
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' })
    // The page must not reconnect on its own: a stream that closes ends the session.
    res.write('retry: 86400000\n: outpost session\n\n')
    req.socket.setTimeout(0)
    req.socket.setNoDelay(true)
    s.stream = res
    for (const f of s.queued.splice(0)) res.write(f)
    s.queuedBytes = 0
    const ping = setInterval(() => res.write(': ping\n\n'), SSE_PING_MS)
    ping.unref()
    res.on('drain', () => this.drained(s))
    res.on('close', () => { clearInterval(ping); this.end(s, 'its event stream closed') })
    if (s.over) { this.open.delete(s.id); res.end() }
    this.drained(s)
  }

  private async input(req: http.IncomingMessage, res: http.ServerResponse, s: Open, t: HttpSessionTools): Promise<void> {
    const body = parseObject(await t.readBody(req, res), 'POST /v1/sessions/ID/input takes a JSON object {seq, lines}')
    const { seq, lines } = body
    if (!Number.isInteger(seq) || (seq as number) < 0) throw new OutpostError('api_bad_request', 'api: session input needs "seq", the batch number (0, 1, 2, …)')
    if (!Array.isArray(lines) || lines.some((l) => typeof l !== 'object' || l === null || Array.isArray(l))) throw new OutpostError('api_bad_request', 'api: session input needs "lines", an array of {"in":B64}, {"resize":[ROWS,COLS]} or {"eof":true}')
    const n = seq as number
    // Seen already (a client's retry): nothing twice. Ahead of a missing one: held until it comes.
    if (n >= s.next) {
      if (n > s.next && s.held.size >= MAX_HELD_BATCHES) throw new OutpostError('api_bad_request', `api: session input batch ${n} is too far ahead of ${s.next}, the next one expected`)
      s.held.set(n, lines)
      for (let b = s.held.get(s.next); b !== undefined; b = s.held.get(s.next)) {
        s.held.delete(s.next)
        s.next++
        for (const line of b) s.session?.line(JSON.stringify(line))
      }
    }
    if (s.paused && !s.over) await new Promise<void>((resolve) => { s.onResume.push(resolve); res.on('close', resolve) })
    t.json(res, 200, { next: s.next, ...(s.over ? { ended: true } : {}) })
  }

  /** One SSE frame for the session's stream (or held until it comes); false while the client is behind. */
  private send(s: Open, obj: unknown): boolean {
    const [event, data] = frameOf(obj)
    const frame = `event: ${event}\ndata: ${data}\n\n`
    if (s.stream !== undefined) {
      if (!s.stream.destroyed) s.stream.write(frame)
    } else {
      s.queued.push(frame)
      s.queuedBytes += frame.length
    }
    return this.room(s)
  }

  private room(s: Open): boolean {
    return s.stream === undefined ? s.queuedBytes < SOCKET_BUFFER : s.stream.destroyed || s.stream.writableLength < SOCKET_BUFFER
  }

  private drained(s: Open): void {
    if (this.room(s)) for (const f of s.onDrain.splice(0)) f()
  }

  /** openSession is done with the client: the last frame was sent. */
  private finish(s: Open): void {
    if (s.over) return
    s.over = true
    clearTimeout(s.timer)
    for (const f of s.onResume.splice(0)) f()
    if (s.stream !== undefined) {
      this.open.delete(s.id)
      s.stream.end()
    } else {
      // Ended before its stream came (refused, say): the last frames wait a while for it.
      s.timer = setTimeout(() => this.open.delete(s.id), STREAM_WAIT_MS).unref()
    }
  }

  /** The client went away or asked to stop: the remote side is told, and kills its group. */
  private end(s: Open, why: string): void {
    if (!s.over) {
      this.log('info', `api: the shell on ${s.toNode} (session ${s.id.slice(0, 8)}) ended: ${why}`)
      // Its client, if still there, is told why.
      this.send(s, { error: { code: 'session_closed', message: `the shell on ${s.toNode} ended here: ${why}` } })
    }
    s.session?.close()
    this.finish(s)
    clearTimeout(s.timer)
    this.open.delete(s.id)
  }

  /** Every session of one owner ends (its console sign-in signed out). */
  endOwner(owner: string): void {
    for (const s of [...this.open.values()]) if (s.owner === owner) this.end(s, 'its console sign-in signed out')
  }

  close(): void {
    for (const s of [...this.open.values()]) this.end(s, 'the HTTP API is closing')
  }
}

function frameOf(obj: unknown): [string, string] {
  const o = obj as Record<string, unknown>
  if (typeof o.out === 'string') return ['out', o.out]
  for (const k of ['ready', 'eof', 'exit', 'error', 'notice']) if (o[k] !== undefined) return [k, JSON.stringify(o[k])]
  return ['message', JSON.stringify(obj)]
}

function parseObject(text: string, what: string): Record<string, unknown> {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    throw new OutpostError('api_bad_request', `api: ${what}`)
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new OutpostError('api_bad_request', `api: ${what}`)
  return v as Record<string, unknown>
}
