/**
 * http.get: GET one URL within methodTimeout; the reply's data is JSON with the status, the
 * headers and the body (cut at methods.outputCap bytes with the truncation mark of cli.run).
 *
 *   args[0] URL ─ http:// or https:// only ─▶ node:http(s).get with ctx.signal
 *   response ─▶ { url, status, statusText, headers, body, bodyBytes, truncated }   (any status is a result)
 *   no response ─▶ url_invalid | dns_failed | connection_refused | method_timeout | http_failed
 *
 * node:http rather than fetch: fetch hides DNS and refusal behind one "fetch failed" and
 * buffers redirects; an operator asked for one GET and wants to see what that server said.
 */
import http from 'node:http'
import https from 'node:https'
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'
import { truncationMark } from './cli-run'

export interface HttpGetResult {
  url: string
  status: number
  statusText: string
  headers: Record<string, string | string[]>
  /** The body as UTF-8 text, cut at the cap with the truncation mark. */
  body: string
  /** Bytes the server sent (also those dropped past the cap). */
  bodyBytes: number
  truncated: boolean
}

function parseUrl(raw: string | undefined): URL {
  if (raw === undefined || raw === '') throw new OutpostError('method_args', 'http.get: give the URL as the first methodArgs entry, e.g. http.get -- https://example.net/health')
  let url: URL
  try {
    url = new URL(raw)
  } catch (err) {
    throw new OutpostError('url_invalid', `http.get: ${JSON.stringify(raw)} is not a URL`, { cause: err })
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OutpostError('url_invalid', `http.get: only http:// and https:// URLs, got ${url.protocol}`)
  return url
}

function networkError(url: URL, err: NodeJS.ErrnoException): OutpostError {
  const where = `${url.hostname}${url.port ? ':' + url.port : ''}`
  switch (err.code) {
    case 'ENOTFOUND': case 'EAI_AGAIN': case 'EAI_NONAME': case 'EAI_FAIL':
      return new OutpostError('dns_failed', `http.get: cannot resolve ${url.hostname} (${err.code})`, { cause: err })
    case 'ECONNREFUSED':
      return new OutpostError('connection_refused', `http.get: ${where} refused the connection`, { cause: err })
    default:
      return new OutpostError('http_failed', `http.get: GET ${url.href} failed: ${err.code ?? err.message}`, { cause: err })
  }
}

export function httpGet(raw: string | undefined, opts: { cap: number; signal: AbortSignal }): Promise<HttpGetResult> {
  const url = parseUrl(raw)
  const { cap, signal } = opts
  if (signal.aborted) return Promise.reject(new OutpostError('method_timeout', `http.get: stopped before GET ${url.href} started`))
  return new Promise((resolve, reject) => {
    let settled = false
    const done = (f: () => void): void => { if (!settled) { settled = true; signal.removeEventListener('abort', onAbort); f() } }
    const get = url.protocol === 'https:' ? https.get : http.get
    const req = get(url, { headers: { 'user-agent': 'outpost http.get', accept: '*/*' } }, (res) => {
      const chunks: Buffer[] = []
      let kept = 0
      let total = 0
      res.on('data', (c: Buffer) => {
        total += c.length
        const room = cap - kept
        if (room <= 0) return
        chunks.push(c.length <= room ? c : Buffer.from(c.subarray(0, room)))
        kept += Math.min(c.length, room)
      })
      res.on('end', () => done(() => {
        const truncated = total > kept
        const headers: Record<string, string | string[]> = {}
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = v
        resolve({
          url: url.href, status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers,
          body: Buffer.concat(chunks).toString('utf8') + (truncated ? truncationMark(cap) : ''), bodyBytes: total, truncated,
        })
      }))
      res.on('error', (err) => done(() => reject(networkError(url, err))))
    })
    const onAbort = (): void => {
      req.destroy()
      done(() => reject(new OutpostError('method_timeout', `http.get: GET ${url.href} was stopped (methodTimeout or cancel)`)))
    }
    signal.addEventListener('abort', onAbort, { once: true })
    req.on('error', (err: NodeJS.ErrnoException) => done(() => reject(networkError(url, err))))
  })
}

export default {
  name: 'http.get',
  aliases: ['REQHttpGet'],
  kind: 'unary',
  summary: 'GET a URL within methodTimeout; status, headers and the body (capped at methods.outputCap) as JSON.',
  async run(ctx: MethodContext): Promise<MethodResult> {
    if (ctx.args.length > 1) throw new OutpostError('method_args', `http.get takes one URL, got ${ctx.args.length} arguments`)
    const r = await httpGet(ctx.args[0], { cap: ctx.config.methods.outputCap, signal: ctx.signal })
    // A 4xx/5xx answer is a result, but the sender's CLI should be able to tell: exit status 1.
    return { data: JSON.stringify(r, null, 2) + '\n', exitCode: r.status >= 400 ? 1 : 0 }
  },
} satisfies UnaryMethod
