/**
 * HTTP/1.1 spoken by hand for the fuzz: a case's bytes on a fresh connection (hitHttp), the
 * answers read back without a client library that would refuse or tidy them (parseResponses),
 * and the judgement of whether they are what the HTTP API owes that case (verdict).
 */
import net from 'node:net'
import { ERROR_CODES } from '../../src/errors'
import type { HttpCase } from './fuzz-http'

export interface RawResponse { status: number; headers: Record<string, string>; body: Buffer; partial?: boolean; head?: boolean }

/** The responses in `buf`; `closed`: the connection ended (a body without length ends there). */
export function parseResponses(buf: Buffer, closed: boolean, head: readonly boolean[] = []): { responses: RawResponse[]; junk: boolean } {
  const responses: RawResponse[] = []
  let at = 0
  while (at < buf.length) {
    const end = buf.indexOf('\r\n\r\n', at)
    if (end < 0) return { responses, junk: closed }
    const lines = buf.subarray(at, end).toString('latin1').split('\r\n')
    const m = /^HTTP\/1\.[01] (\d{3}) /.exec(lines[0]! + ' ')
    if (!m) return { responses, junk: true }
    const headers: Record<string, string> = {}
    for (const l of lines.slice(1)) { const c = l.indexOf(':'); headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim() }
    const status = Number(m[1])
    let p = end + 4
    const final = responses.filter((r) => r.status >= 200).length
    if (status < 200 || head[final] === true || status === 204 || status === 304) { responses.push({ status, headers, body: Buffer.alloc(0), head: status >= 200 }); at = p; continue }
    if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = []
      for (;;) {
        const nl = buf.indexOf('\r\n', p)
        if (nl < 0) { responses.push({ status, headers, body: Buffer.concat(parts), partial: true }); return { responses, junk: false } }
        const size = parseInt(buf.subarray(p, nl).toString('latin1'), 16)
        if (!Number.isFinite(size)) return { responses, junk: true }
        if (size === 0) { p = nl + 4; break }
        parts.push(buf.subarray(nl + 2, nl + 2 + size))
        p = nl + 2 + size + 2
        if (p > buf.length) { responses.push({ status, headers, body: Buffer.concat(parts), partial: true }); return { responses, junk: false } }
      }
      responses.push({ status, headers, body: Buffer.concat(parts) })
      at = p
      continue
    }
    const len = headers['content-length'] === undefined ? undefined : Number(headers['content-length'])
    if (len === undefined) { responses.push({ status, headers, body: buf.subarray(p), ...(closed ? {} : { partial: true }) }); return { responses, junk: false } }
    if (p + len > buf.length) { responses.push({ status, headers, body: buf.subarray(p), partial: true }); return { responses, junk: false } }
    responses.push({ status, headers, body: buf.subarray(p, p + len) })
    at = p + len
  }
  return { responses, junk: false }
}

export interface HttpResult { responses: RawResponse[]; junk: boolean; closedByServer: boolean; hung: boolean; ms: number }

/**
 * Write a case on a fresh connection; resolve once `expect` answers came, the server closed, or
 * `hangMs` went by without either (then the case hung): counted from the connection for whole
 * requests, else from a half-close (at once for a cut case, else after `idleMs` without a byte).
 */
export function hitHttp(port: number, c: HttpCase, o: { idleMs: number; hangMs: number }): Promise<HttpResult> {
  return new Promise((resolve) => {
    const started = Date.now()
    const sock = net.connect(port, '127.0.0.1')
    const got: Buffer[] = []
    let idle: NodeJS.Timeout | undefined
    let hang: NodeJS.Timeout | undefined
    let finished = false
    const parse = (closed: boolean): { responses: RawResponse[]; junk: boolean } => parseResponses(Buffer.concat(got), closed, c.head)
    const done = (closedByServer: boolean, hung = false): void => {
      if (finished) return
      finished = true
      clearTimeout(idle)
      clearTimeout(hang)
      sock.destroy()
      resolve({ ...parse(closedByServer), closedByServer, hung, ms: Date.now() - started })
    }
    const halfClose = (): void => {
      if (finished || hang !== undefined) return
      sock.end()
      hang = setTimeout(() => done(false, true), o.hangMs)
    }
    const arm = (): void => { clearTimeout(idle); if (!c.cut) idle = setTimeout(halfClose, o.idleMs) }
    sock.on('connect', () => {
      sock.write(c.bytes)
      if (c.cut === true) halfClose()
      else if (c.whole === true) hang = setTimeout(() => done(false, true), o.hangMs)
      else arm()
    })
    sock.on('data', (d: Buffer) => {
      got.push(d)
      const complete = parse(false).responses.filter((r) => r.status >= 200 && r.partial !== true)
      if (complete.length >= c.expect) {
        // All answered; one that says it closes must be followed by the close.
        if (complete[complete.length - 1]!.headers.connection === 'close') { clearTimeout(idle); hang ??= setTimeout(() => done(false, true), o.hangMs) } else done(false)
      } else if (hang === undefined) arm()
    })
    sock.on('error', () => done(true))
    sock.on('close', () => done(true))
  })
}

const UNAUTHORIZED = '{"error":{"code":"api_unauthorized","message":"unauthorized"}}'
/** What the HTTP parser answers by itself: bad request, timeout, chunk extension too large, headers too large. */
const PARSER = new Set([400, 408, 413, 431])
const API: Record<number, readonly string[]> = {
  400: ['api_bad_request', 'envelope_invalid', 'node_unknown', 'fan_out_too_large', 'selector_invalid', 'selector_no_match', 'file_outside', 'file_not_found'],
  // 401 with a JSON body: the console's session route without a session cookie; 403: the console's CSRF check.
  401: ['api_unauthorized'], 403: ['api_forbidden'],
  404: ['api_not_found', 'job_unknown', 'file_transfer_unknown'], 405: ['api_method_not_allowed'], 409: ['file_transfer_ended'], 413: ['api_too_large', 'message_too_large'],
}

/** Why a case's answer is wrong, or undefined when it is right. */
export function verdict(c: HttpCase, r: HttpResult): string | undefined {
  if (r.hung) return 'not answered and not closed in time (after a half-close, or after saying it closes)'
  if (r.junk) return 'bytes that are not an HTTP response'
  const final = r.responses.filter((x) => x.status >= 200)
  const interim = r.responses.filter((x) => x.status < 200)
  const is401 = (x: RawResponse): boolean => x.status === 401 && x.body.toString() === UNAUTHORIZED && x.headers['www-authenticate'] === 'Bearer realm="outpost"'
  if (c.auth === 'unauthorized') {
    if (r.responses.length !== 1 || !is401(r.responses[0]!)) return `expected exactly one 401, got ${r.responses.map((x) => `${x.status} ${x.body.toString().slice(0, 80)}`).join(' | ') || 'nothing'}`
    if (!r.closedByServer) return 'the connection stayed open after the 401'
    return undefined
  }
  if (c.auth === 'noise') {
    if (interim.length > 0) return `an interim ${interim[0]!.status} without the token`
    const bad = final.find((x) => !(PARSER.has(x.status) && x.body.length === 0) && !is401(x))
    return bad ? `${bad.status} ${bad.body.toString().slice(0, 120)} without the token` : undefined
  }
  for (const x of final) {
    if (x.head === true) continue // the answer to a HEAD: its status says all
    if (x.status === 200 || x.status === 202) {
      // The console's files (/, /index.html, /console/*): public, and not JSON.
      if (x.status === 200 && /^text\/(html|css|javascript);/.test(String(x.headers['content-type']))) continue
      if (x.partial !== true) try { JSON.parse(x.body.toString()) } catch { return `${x.status} with a body that is not JSON` }
      continue
    }
    if (is401(x)) continue
    if (PARSER.has(x.status) && x.body.length === 0) continue
    const codes = API[x.status]
    if (codes === undefined) return `status ${x.status}: ${x.body.toString().slice(0, 200)}`
    if (x.partial === true && x.body.length === 0) continue // HEAD-like, or cut by our close
    let code: unknown
    try { code = (JSON.parse(x.body.toString()) as { error?: { code?: unknown } }).error?.code } catch { return `${x.status} with a body that is not JSON: ${x.body.toString().slice(0, 120)}` }
    if (typeof code !== 'string' || !(code in ERROR_CODES) || !codes.includes(code)) return `${x.status} with code ${String(code)}`
  }
  // Fewer answers than requests only when the server closed: a refusal that closes (401, 413),
  // or a later pipelined request the parser could not read.
  if (final.length < c.expect && !c.cut && !r.closedByServer) return `${final.length} answers to ${c.expect} requests, still open`
  return undefined
}
