/**
 * The HTTP API (api.http): the socket API's requests over HTTP/1.1 with a bearer token, for
 * tools that cannot reach a unix socket. JSON in, JSON out; replies live as server-sent events.
 *
 *   request ─ token (constant time) ─▶ route ─▶ POST   /v1/messages       submit (submit.ts), ?wait=1 holds for replies
 *                 └ 401, nothing else          GET    /v1/messages/:id   recent record / outbox / reply file
 *                                              GET    /v1/nodes | /v1/status
 *                                              GET    /v1/events         every reply arriving here, as SSE
 *                                              GET    /v1/errors | /v1/requests  (views.ts)
 *   the console (src/console/): /, /console/* public; its session cookie stands for the token,
 *   with a CSRF token on every request that changes something
 *                                              GET    /v1/transfers      file transfers; POST starts one (outpost cp)
 *                                              POST   /v1/transfers/ID/cancel  cancels one at both ends (outpost cp --cancel)
 *                                              POST   /v1/sessions       a shell, followed over SSE (http-sessions.ts)
 *                                              POST   /v1/withdraw       take back messages never sent ({"ids"}: withdrawn | in_flight | reply | unknown)
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import type { Envelope, MessageDraft } from '../wire/envelope'
import { OutpostError, isOutpostError, type ErrorCode } from '../errors'
import type { LogFn } from '../log'
import type { OutpostNode } from '../node'
import { isUlid } from '../wire/ulid'
import { RecentRequests, type RecentRequest } from './recent'
import { checkCopyReceivers, checkReceivers, envelopeJson, parseMessageList, prepareSigned, sendAndWatch, withdrawIds } from '../submit'
import { jobEventFrame, jobRoute } from '../jobs/http-routes'
import type { JobRunner } from '../jobs/runner'
import { parseMessage } from '../wire/envelope'
import { ConsoleRoutes, securityHeaders } from '../console/serve'
import { checkSameOrigin } from '../console/sessions'
import { filterNodes, limitParam, readErrorLog } from './views'
import { parseCopy, transferId } from '../files/api'
import { HttpSessions } from './http-sessions'
import { lingerOnClose, readBody } from './http-body'

export { MAX_BODY_BYTES, readBody } from './http-body'

/** `?wait=1` holds the answer at most this long by default (`&timeout=S` changes it). */
export const DEFAULT_WAIT_S = 60
export const MAX_WAIT_S = 3600
/** An SSE client this far behind is disconnected rather than buffered for. */
const MAX_SSE_BACKLOG = 4 * 1024 * 1024
const SSE_PING_MS = 15_000
/** Reply data a `?wait=1` answer holds; later replies are only counted (repliesDropped). */
const MAX_WAIT_REPLY_BYTES = 16 * 1024 * 1024
/** How often the headers and request timeouts are checked (Node's default, 30 s, let a 10 s limit run to 40). */
const TIMEOUT_CHECK_MS = 1000

export interface HttpApiOptions {
  /** host:port, or a bare port (bound to 127.0.0.1). */
  listen: string
  token: string
  log: LogFn
  now?: () => number
  /** Central's jobs: /v1/jobs, and `event: job` on /v1/events. */
  jobs?: JobRunner
  /** The record of recent requests, shared with the socket API (what the CLI sends is recorded as accepted too). */
  recent?: RecentRequests
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  api_bad_request: 400, envelope_invalid: 400, fan_out_too_large: 400, node_unknown: 400, selector_invalid: 400, selector_no_match: 400, message_too_large: 413, api_too_large: 413,
  api_unauthorized: 401, api_forbidden: 403, api_not_found: 404, job_unknown: 404, file_transfer_unknown: 404, file_transfer_ended: 409, api_method_not_allowed: 405, outbox_full: 503, outbox_closed: 503,
}

/** host and port from "host:port", "[v6]:port" or "port" (loopback). */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^\s:]+):)?(\d{1,5})$/.exec(listen.trim())
  if (!m) throw new OutpostError('config_invalid', `config: ${JSON.stringify(listen)} must be host:port or a port, such as 127.0.0.1:8080`)
  return { host: (m[1] ?? '127.0.0.1').replace(/^\[|\]$/g, ''), port: Number(m[2]) }
}

export class HttpApi {
  private readonly server: http.Server
  private readonly node: OutpostNode
  private readonly o: HttpApiOptions
  private readonly tokenHash: Buffer
  private readonly recent: RecentRequests
  private readonly stopWatching: () => void
  private readonly events = new Set<http.ServerResponse>()
  private readonly waits = new Set<() => void>()
  private closing: Promise<void> | undefined
  private readonly console: ConsoleRoutes
  private readonly shells: HttpSessions
  address = ''

  private constructor(node: OutpostNode, o: HttpApiOptions) {
    this.node = node
    this.o = o
    this.recent = o.recent ?? new RecentRequests()
    this.tokenHash = sha256(o.token)
    this.shells = new HttpSessions(node, o.log)
    this.console = new ConsoleRoutes({ tokenMatches: (t) => timingSafeEqual(sha256(t), this.tokenHash), readBody, signedOut: (id) => this.shells.endOwner(`console ${id}`) })
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      this.handle(req, res).catch((err: unknown) => this.fail(res, err))
    }
    this.server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: TIMEOUT_CHECK_MS }, onRequest)
    // Expect: goes through the token check like any request. Node would otherwise answer
    // `100 Continue` or `417` before the handler runs, to anyone; readBody sends the 100.
    this.server.on('checkContinue', onRequest)
    this.server.on('checkExpectation', onRequest)
    this.server.maxConnections = 512
    const stopReplies = node.watchReplies((env) => {
      this.recent.reply(env)
      this.publish(env)
    })
    const stopJobs = o.jobs?.watch((ev) => {
      // A job's messages are requests this node sent: /v1/requests lists them with their method.
      if (ev.node !== undefined && ev.node.sentAt !== undefined) this.recent.known(ev.node.id, ev.node.name, ev.job.message.method, ev.node.sentAt)
      this.publishFrame(jobEventFrame(ev), undefined)
    }) ?? (() => {})
    this.stopWatching = () => { stopReplies(); stopJobs() }
  }

  static async start(node: OutpostNode, o: HttpApiOptions): Promise<HttpApi> {
    if (o.token === '') throw new OutpostError('config_invalid', 'config: api.token must be set when api.http is (the HTTP API always requires a bearer token)')
    const { host, port } = parseListen(o.listen)
    const api = new HttpApi(node, o)
    await new Promise<void>((resolve, reject) => {
      api.server.once('error', (err) => { api.stopWatching(); reject(new OutpostError('io', `api: cannot listen on ${o.listen} for HTTP: ${err.message}`, { cause: err })) })
      api.server.listen(port, host, () => resolve())
    })
    const a = api.server.address()
    api.address = typeof a === 'object' && a !== null ? `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` : o.listen
    o.log('info', `api: HTTP API listening on http://${api.address}`)
    return api
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    securityHeaders(req, res)
    const method = req.method ?? 'GET'
    let parsed: { url: URL; route: string } | undefined
    try {
      // A path is a path: `//host/x` read against a base would name a host, and `/x` another route.
      const target = req.url ?? '/'
      const url = target.startsWith('/') ? new URL(`http://outpost${target}`) : new URL(target, 'http://outpost')
      parsed = { url, route: decodeURIComponent(url.pathname).replace(/\/+$/, '') }
    } catch { /* answered below, after the token */ }
    if (parsed !== undefined && this.console.owns(parsed.route)) return this.console.handle(req, res, parsed.route)
    // The bearer token (tools), else the console's session cookie (a browser signed in).
    const bearer = this.authorized(req.headers.authorization)
    const session = bearer ? undefined : this.console.sessions.lookup(req)
    if (!bearer && session === undefined) {
      // The same answer whatever was wrong: no hint for a guesser.
      lingerOnClose(res)
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="outpost"', connection: 'close' })
      res.end(JSON.stringify({ error: { code: 'api_unauthorized', message: 'unauthorized' } }))
      return
    }
    // A browser's cookie rides along on any request to this origin: a change must prove it is the page's.
    if (session !== undefined && method !== 'GET' && method !== 'HEAD') checkSameOrigin(req, session)
    if (parsed === undefined) throw new OutpostError('api_bad_request', 'api: the request path is not a valid URL path')
    const { url, route } = parsed
    const only = (allowed: string): void => {
      if (method === allowed) return
      res.setHeader('allow', allowed)
      throw new OutpostError('api_method_not_allowed', `api: ${route} takes ${allowed}, not ${method}`)
    }
    if (route === '/v1/messages') { only('POST'); return this.post(req, res, url) }
    const m = /^\/v1\/messages\/([^/]+)$/.exec(route)
    if (m) { only('GET'); return this.message(res, m[1]!) }
    if (route === '/v1/nodes') { only('GET'); return json(res, 200, { nodes: filterNodes(this.node.nodes(), url.searchParams.get('selector')) }) }
    if (route === '/v1/errors') { only('GET'); return json(res, 200, { errors: readErrorLog(this.node.dataDir, limitParam(url.searchParams.get('limit'), 200), url.searchParams.get('node')) }) }
    if (route === '/v1/requests') {
      only('GET')
      const toNode = url.searchParams.get('toNode')
      if (toNode === null || toNode === '') throw new OutpostError('api_bad_request', 'api: GET /v1/requests needs ?toNode=NAME (the node the requests went to)')
      return json(res, 200, { requests: this.recent.latest(toNode, limitParam(url.searchParams.get('limit'), 50)) })
    }
    if (route === '/v1/status') { only('GET'); return json(res, 200, this.node.status()) }
    if (route === '/v1/events') { only('GET'); return this.subscribe(req, res, url) }
    if (route === '/v1/jobs' || route.startsWith('/v1/jobs/')) {
      const onlyOf = (...allowed: string[]): void => { if (!allowed.includes(method)) only(allowed.join(', ')) }
      return jobRoute(this.o.jobs, route, req, res, { readBody, json, only: onlyOf })
    }
    if (route === '/v1/withdraw') { only('POST'); return json(res, 200, { withdraw: Object.fromEntries(await this.node.delivery.withdraw(withdrawIds(jsonBody(await readBody(req, res)).ids))) }) }
    if (route === '/v1/transfers' && method === 'GET') return json(res, 200, { transfers: this.node.files.list() })
    if (route === '/v1/transfers') { only('POST'); return this.copy(req, res) }
    const tc = /^\/v1\/transfers\/([^/]+)\/cancel$/.exec(route)
    if (tc) { only('POST'); return json(res, 200, { transfer: await this.node.files.cancel(transferId(tc[1]), 'the HTTP API') }) }
    if (route === '/v1/sessions' || route.startsWith('/v1/sessions/')) {
      return this.shells.route(req, res, route, session === undefined ? 'bearer' : `console ${session.id}`, { readBody, json, only: (...a) => { if (!a.includes(method)) only(a.join(', ')) } })
    }
    throw new OutpostError('api_not_found', `api: no route ${method} ${url.pathname} (POST /v1/messages, GET /v1/messages/ID, /v1/nodes, /v1/status, /v1/events, /v1/jobs, /v1/errors, /v1/requests, POST /v1/withdraw, GET|POST /v1/transfers, POST /v1/transfers/ID/cancel, POST /v1/sessions)`)
  }

  /** Bearer token compared in constant time (hashes of equal length, whatever was sent). */
  private authorized(header: string | undefined): boolean {
    const m = /^Bearer +(\S+) *$/i.exec(header ?? '')
    const given = sha256(m?.[1] ?? '')
    return timingSafeEqual(given, this.tokenHash) && m !== null
  }

  /**
   * POST /v1/messages: one message, an array (steward's format too) or {"messages": […]};
   * `"allowUnknown": true` in the last form, or `?allowUnknown=1`, takes receivers the node list
   * has not heard of.
   */
  /** POST /v1/transfers {src, dst, mode?, owner?, mkdir?, rate?}: start a copy; 202 with the transfer (GET /v1/transfers follows it). */
  private async copy(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let value: unknown
    try {
      value = JSON.parse(await readBody(req, res))
    } catch (err) {
      if (isOutpostError(err)) throw err
      throw new OutpostError('api_bad_request', `api: the request body is not JSON (${(err as Error).message})`)
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new OutpostError('api_bad_request', 'api: POST /v1/transfers takes a JSON object {src, dst, mode?, owner?, mkdir?, rate?}')
    const copy = parseCopy(value as Record<string, unknown>)
    checkCopyReceivers(this.node, [copy.src, copy.dst], (value as { allowUnknown?: unknown }).allowUnknown === true)
    const { id } = await this.node.files.copy(copy)
    json(res, 202, { transfer: this.node.files.info(id) ?? { id, state: 'opening' } })
  }

  private async post(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const body = await readBody(req, res)
    let value: unknown
    try {
      value = JSON.parse(body)
    } catch (err) {
      throw new OutpostError('api_bad_request', `api: the request body is not JSON (${(err as Error).message})`)
    }
    let drafts: MessageDraft[]
    let allowUnknown = ['1', 'true', 'yes'].includes(url.searchParams.get('allowUnknown') ?? '')
    if (Array.isArray(value)) drafts = parseMessageList(value)
    else if (typeof value === 'object' && value !== null && 'messages' in value) {
      const req = value as { messages: unknown; allowUnknown?: unknown }
      drafts = parseMessageList(req.messages)
      if (req.allowUnknown !== undefined && typeof req.allowUnknown !== 'boolean') throw new OutpostError('api_bad_request', 'api: allowUnknown must be true or false')
      if (req.allowUnknown === true) allowUnknown = true
    } else drafts = [parseMessage(value)]
    checkReceivers(this.node, drafts, allowUnknown)
    const wait = ['1', 'true', 'yes'].includes(url.searchParams.get('wait') ?? '')
    const seconds = waitSeconds(url.searchParams.get('timeout'))
    const { envs, sign } = prepareSigned(this.node, drafts)
    const accepted = envs.map((e) => ({ id: e.id, toNode: e.toNode }))
    const replies: Record<string, unknown>[] = []
    let replyBytes = 0
    let repliesDropped = 0
    let answered = false
    let timer: NodeJS.Timeout | undefined
    let stop = (): void => {}
    const finish = (): void => {
      answered = true
      if (timer) clearTimeout(timer)
      stop()
      this.waits.delete(cancel)
    }
    // The client went away: stop watching; the messages stay accepted.
    if (wait) res.on('close', () => { if (!answered) finish() })
    const answer = (done: boolean): void => {
      if (answered) return
      finish()
      const pending = done ? [] : accepted.filter((a) => !replies.some((r) => r.inReplyTo === a.id && (r.final === true || r.error !== undefined))).map((a) => a.id)
      json(res, done ? 200 : 202, { accepted, replies, done, ...(done ? {} : { pending }), ...(repliesDropped > 0 ? { repliesDropped } : {}) })
    }
    const cancel = (): void => answer(false)
    stop = await sendAndWatch(this.node, envs, wait, {
      accepted: (list) => {
        this.recent.add(list, (this.o.now ?? Date.now)())
        this.o.log('debug', `api: HTTP accepted ${list.length} message(s)`)
      },
      reply: (env) => {
        const final = env.final === true || env.error !== undefined
        const size = (env.data?.length ?? 0) + (env.stderr?.length ?? 0)
        // A long stream's output is not held without bound; its final reply always is.
        if (replyBytes + size > MAX_WAIT_REPLY_BYTES && !final) { repliesDropped++; return }
        replyBytes += size
        replies.push(envelopeJson(env))
      },
      done: () => answer(true),
    }, sign)
    if (!wait) {
      json(res, 202, { accepted })
      return
    }
    if (answered) { stop(); return }
    this.waits.add(cancel)
    timer = setTimeout(cancel, seconds * 1000)
  }

  /** GET /v1/messages/:id: what this node knows about a message it sent. */
  private message(res: http.ServerResponse, id: string): void {
    if (!isUlid(id)) throw new OutpostError('api_bad_request', `api: ${JSON.stringify(id.slice(0, 40))} is not a message id (a ULID)`)
    const rec = this.recent.get(id)
    if (rec?.final) return json(res, 200, recordJson(rec, rec.error ? 'failed' : 'replied'))
    const known = this.node.lookup(id)
    if (known?.state === 'queued') return json(res, 200, { ...known, replies: [], source: 'outbox' })
    if (rec !== undefined) return json(res, 200, recordJson(rec, 'delivered'))
    if (known !== undefined) return json(res, 200, { ...known, source: 'replyFile' })
    throw new OutpostError('api_not_found', `api: no record of message ${id} on ${this.node.name} (not in the outbox, not among the last requests, no reply file replies/*/${id}.log)`)
  }

  /** GET /v1/events: every reply that arrives here from now on (`?inReplyTo=ID` for one request). */
  private subscribe(req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    const only = url.searchParams.get('inReplyTo')
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' })
    res.write(': outpost events\n\n')
    const r = res as http.ServerResponse & { outpostFilter?: string }
    if (only !== null) r.outpostFilter = only
    this.events.add(res)
    const ping = setInterval(() => res.write(': ping\n\n'), SSE_PING_MS)
    ping.unref()
    req.socket.setTimeout(0)
    res.on('close', () => { clearInterval(ping); this.events.delete(res) })
  }

  private publish(env: Envelope): void {
    if (this.events.size === 0) return
    this.publishFrame(`id: ${env.id}\nevent: reply\ndata: ${JSON.stringify(envelopeJson(env))}\n\n`, env.inReplyTo)
  }

  /** A frame to every event stream (those that follow one request: only when `inReplyTo` is theirs). */
  private publishFrame(frame: string, inReplyTo: string | undefined): void {
    for (const res of this.events) {
      const filter = (res as { outpostFilter?: string }).outpostFilter
      if (filter !== undefined && filter !== inReplyTo) continue
      if (res.writableLength > MAX_SSE_BACKLOG) {
        this.o.log('warn', 'api: an event stream client fell too far behind; disconnected')
        res.destroy()
        continue
      }
      res.write(frame)
    }
  }

  private fail(res: http.ServerResponse, err: unknown): void {
    const e = isOutpostError(err) ? err : new OutpostError('io', `api: ${(err as Error)?.message ?? String(err)}`, { cause: err })
    const status = STATUS[e.code] ?? 500
    if (status === 500) this.o.log('error', `api: HTTP request failed: ${e.code}: ${e.message}`)
    if (res.headersSent) { res.destroy(); return }
    if (status === 413) { res.setHeader('connection', 'close'); lingerOnClose(res) }
    json(res, status, { error: e.toJSON() })
  }

  /** Stop listening; waiting requests answer with what they have, event streams end. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopWatching()
      this.shells.close()
      for (const cancel of [...this.waits]) cancel()
      for (const res of this.events) res.end()
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve())
        this.server.closeAllConnections()
      })
    })()
    return this.closing
  }
}

function recordJson(r: RecentRequest, state: 'delivered' | 'replied' | 'failed'): Record<string, unknown> {
  return {
    id: r.id, state, toNode: r.toNode, ...(r.method !== '' ? { method: r.method } : {}), ...(r.acceptedAt !== undefined ? { acceptedAt: r.acceptedAt } : {}),
    replies: r.replies, ...(r.repliesDropped > 0 ? { repliesDropped: r.repliesDropped } : {}), ...(r.error ? { error: r.error } : {}), source: 'memory',
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

function json(res: http.ServerResponse, status: number, obj: unknown): void {
  const body = JSON.stringify(obj)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

function waitSeconds(v: string | null): number {
  if (v === null || v === '') return DEFAULT_WAIT_S
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0 || n > MAX_WAIT_S) throw new OutpostError('api_bad_request', `api: timeout must be seconds between 1 and ${MAX_WAIT_S}, got ${JSON.stringify(v)}`)
  return n
}

/** A request body that must be a JSON object (api_bad_request if it is not). */
function jsonBody(body: string): Record<string, unknown> {
  let v: unknown
  try { v = JSON.parse(body) } catch (err) { throw new OutpostError('api_bad_request', `api: the request body is not JSON (${(err as Error).message})`) }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new OutpostError('api_bad_request', 'api: the request body must be a JSON object')
  return v as Record<string, unknown>
}
