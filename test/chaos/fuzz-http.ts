/**
 * Hostile input for the HTTP API, generated: raw bytes on a TCP socket, so malformed HTTP is as
 * easy to send as a good request. Random bytes; requests with random and mutated methods, paths
 * and headers; missing, wrong and almost-right bearer tokens; POST /v1/messages with mutated,
 * random, deeply nested and huge JSON; framing tricks (Content-Length and Transfer-Encoding
 * together, bad chunk sizes, several GB declared); requests cut short. Seeded like fuzz.ts.
 *
 *   httpCase(rnd) ─▶ { bytes, expect, auth } ─ hitHttp (http-raw.ts) ─▶ raw responses ─ verdict ─▶ ok | why not
 */
import http from 'node:http'
import { PROTO_NAMES, int, randomValue, type Rnd } from './fuzz'

const pick = <T>(rnd: Rnd, xs: readonly T[]): T => xs[int(rnd, xs.length)]!

/** What the server must do with a case. */
export type Auth =
  /** Well formed, every request without the right token: exactly one 401, the fixed body, closed. */
  | 'unauthorized'
  /** No right token anywhere in the bytes: only the parser's refusals (400, 408, 413, 431) or 401. */
  | 'noise'
  /** Carries the right token (maybe mangled): any answer of the API's, never a 500. */
  | 'authorized'

export interface HttpCase {
  kind: string
  bytes: Buffer
  auth: Auth
  /** Requests in it, complete by construction: wait for this many answers (or a close). */
  expect: number
  /** The bytes end mid-request: half-close at once, the server must answer or close. */
  cut?: boolean
  /**
   * Whole requests (or enough of one to be refused): wait for the answers however slow the
   * server is. Otherwise (a mutation may have left a request unfinished) half-close after a
   * moment without a byte.
   */
  whole?: boolean
  /** Requests whose answer has no body (HEAD), by position. */
  head?: boolean[]
}

/** The message an unauthenticated peer tries to send: it would leave a file on ship1 and a line in the audit log. */
export const UNAUTH_MARK = 'unauth-http'
const UNAUTH_BODY = JSON.stringify({ toNode: 'ship1', method: 'reply.file.append', directory: UNAUTH_MARK, fileName: 'x.log', data: `${UNAUTH_MARK}\n` })
/** What authorized fuzz sends when it is valid: a ping to the node itself (answered by its own pong). */
const PING = { toNode: 'central', method: 'node.ping', replyMethod: 'node.pong', ttl: 60 }

const ROUTES = [
  '/v1/status', '/v1/nodes', '/v1/messages', '/v1/messages/01ARYZ6S41TSV4RRFFQ69G5FAV', '/v1/messages/not-an-id', '/v1/messages/',
  '/', '/v1', '/v2/status', '/metrics', '/v1/status/', '/v1//nodes', '/v1/messages/%', '/v1/messages/%E0%A4%A', '/v1/messages/..%2F..%2Fetc',
  '/%00', '/v1/status?x=%zz&&=', '*', 'http://outpost/v1/status', '//evil/v1/nodes', '/v1/nodes#frag', '/v1/status;x', '/V1/STATUS',
  '/v1/messages/01ARYZ6S41TSV4RRFFQ69G5FAV/x', '/v1/events/x', '/v1/messages?wait=0', '/v1/status?inReplyTo=x',
  '/index.html', '/console/app.js', '/console/app.css', '/console/session', '/console/nope', '/v1/jobs', '/v1/jobs/01ARYZ6S41TSV4RRFFQ69G5FAV',
  '/v1/jobs/x/cancel', '/v1/transfers', '/v1/transfers/01ARYZ6S41TSV4RRFFQ69G5FAV/cancel', '/v1/transfers/x/cancel', '/v1/transfers//cancel', '/v1/errors?limit=x', '/v1/requests?toNode=', '/v1/nodes?selector=%28',
]
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'PROPFIND', 'BREW', 'M-SEARCH', 'PURGE']
/** Methods the HTTP parser knows (others are its 400, before any token is looked at). */
const KNOWN = METHODS.filter((m) => http.METHODS.includes(m))
const HEADER_NAMES = ['x-a', 'accept', 'content-type', 'user-agent', 'cookie', 'x-forwarded-for', 'connection', 'expect', 'upgrade', 'te', 'range', 'if-none-match', 'last-event-id', 'origin', 'x-' + 'h'.repeat(200)]
const HEADER_VALUES = ['', 'x', '*/*', 'application/json', 'keep-alive', 'close', 'websocket', 'trailers', 'bytes=0-1', '\u00ff\u00fe', 'a'.repeat(4000), '100-continue', 'chunked', '0']

function garbage(rnd: Rnd, n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = int(rnd, 256)
  return b
}

/** A path: one of the routes, sometimes with a random tail or percent-escapes. */
function route(rnd: Rnd): string {
  const r = pick(rnd, ROUTES)
  switch (int(rnd, 6)) {
    case 0: return r + '/' + encodeURIComponent(garbage(rnd, int(rnd, 20)).toString('latin1'))
    case 1: return r + '?' + pick(rnd, ['timeout=x', 'wait=', 'a=b&a=c', '%%%', 'x='.repeat(int(rnd, 500))])
    case 2: return '/' + 'a/'.repeat(int(rnd, 3000))
    case 3: return pick(rnd, ['/v1/', '/v1/messages/', '/']) + encodeURIComponent(pick(rnd, PROTO_NAMES))
    default: return r
  }
}

/** The console's public routes (its page and files, its sign-in): answered without the token. */
function isPublic(r: string): boolean {
  // As the API reads a path: percent-decoded (one that does not decode is no route), trailing slashes dropped.
  let p: string
  try {
    p = decodeURIComponent(r.split(/[?#]/)[0]!).replace(/\/+$/, '')
  } catch {
    return false
  }
  return p === '' || p === '/index.html' || p.startsWith('/console/')
}

/** A route that needs the token. */
function privateRoute(rnd: Rnd): string {
  for (;;) {
    const r = route(rnd)
    if (!isPublic(r)) return r
  }
}

/** Token headers that must all be refused. */
function wrongAuth(rnd: Rnd, token: string): [string, string][] {
  const almost = (): string => {
    const at = int(rnd, token.length)
    switch (int(rnd, 5)) {
      case 0: return token.slice(0, at) + String.fromCharCode(token.charCodeAt(at) ^ 1) + token.slice(at + 1)
      case 1: return token.slice(0, at)
      case 2: return token + pick(rnd, ['x', '0', '=', '\u00e9'])
      case 3: return token.toUpperCase() === token ? token.toLowerCase() : token.toUpperCase()
      default: return ' ' + token.slice(1)
    }
  }
  switch (int(rnd, 12)) {
    case 0: return []
    case 1: return [['authorization', `Bearer guess-${int(rnd, 1e9)}`]]
    case 2: return [['authorization', `Bearer ${almost()}`]]
    case 3: return [['authorization', `Basic ${Buffer.from(`x:${token}`).toString('base64')}`]]
    case 4: return [['authorization', token]]
    case 5: return [['authorization', `Bearer\t${token}`]]
    case 6: return [['authorization', `Bearer ${token} extra`]]
    case 7: return [['authorization', 'Bearer']]
    case 8: return [['x-token', token], ['authorization', '']]
    case 9: return [['authorization', `Bearer ${almost()}`], ['authorization', `Bearer ${token}`]] // the first one counts
    case 10: return [['proxy-authorization', `Bearer ${token}`]]
    default: return [['authorization', `Token ${token}`]]
  }
}

/** The right token, in the spellings the API takes. */
function rightAuth(rnd: Rnd, token: string): [string, string][] {
  return [[pick(rnd, ['authorization', 'Authorization', 'AUTHORIZATION']), `${pick(rnd, ['Bearer', 'bearer', 'BEARER'])}${pick(rnd, [' ', ' ', '  '])}${token}`]]
}

function randomHeaders(rnd: Rnd): [string, string][] {
  return Array.from({ length: int(rnd, 4) }, () => [pick(rnd, HEADER_NAMES), pick(rnd, HEADER_VALUES)] as [string, string])
    // Framing and connection headers have cases of their own; here they would make the answer count unknowable.
    .filter(([k]) => !['connection', 'upgrade', 'expect', 'te'].includes(k))
}

/** One request's bytes; a body gets its Content-Length unless the headers say otherwise. */
export function request(method: string, target: string, headers: [string, string][], body?: string | Buffer, version = 'HTTP/1.1'): Buffer {
  const all: [string, string][] = [['host', 'outpost'], ...headers]
  if (body !== undefined && !all.some(([k]) => /^(content-length|transfer-encoding)$/i.test(k))) all.push(['content-length', String(Buffer.byteLength(body))])
  const head = `${method} ${target} ${version}\r\n${all.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`
  return Buffer.concat([Buffer.from(head, 'latin1'), body === undefined ? Buffer.alloc(0) : Buffer.from(body)])
}

const deepArray = (n: number): string => '['.repeat(n) + ']'.repeat(n)
const deepObject = (n: number): string => '{"a":'.repeat(n) + '1' + '}'.repeat(n)

/** A POST /v1/messages body: valid pings, mutated, random, deeply nested, wrong types, huge. */
export function messageBody(rnd: Rnd): string {
  switch (int(rnd, 12)) {
    case 0: return JSON.stringify(rnd() < 0.3 ? { ...PING, [pick(rnd, ['method', 'replyMethod', 'directory'])]: pick(rnd, PROTO_NAMES) } : PING)
    case 1: return JSON.stringify(randomValue(rnd))
    case 2: {
      const m: Record<string, unknown> = { ...PING }
      m[pick(rnd, ['toNode', 'method', 'ttl', 'data', 'id', 'methodArgs', 'toNodes', 'ackTimeout', 'fromNode', 'operation', 'error', 'seq', 'final', 'cmd', '__proto__', 'constructor'])] = randomValue(rnd)
      return JSON.stringify(rnd() < 0.5 ? m : { messages: [m] })
    }
    case 3: { const s = JSON.stringify({ messages: [PING, PING] }); const at = int(rnd, s.length); return s.slice(0, at) + String.fromCharCode(int(rnd, 256)) + s.slice(at + 1) }
    case 4: { const s = JSON.stringify(PING); return s.slice(0, int(rnd, s.length)) }
    case 5: {
      // Deeply nested, balanced (valid JSON): as the body, as messages, and where a field takes any value.
      const d = 1000 + int(rnd, 60_000)
      return pick(rnd, [
        deepArray(d), `{"messages":${deepArray(d)}}`, deepObject(d),
        `{"toNode":"central","method":"node.ping","operation":{"opCmd":"x","opArg":${deepArray(d)}}}`,
        `{"toNode":"central","method":"node.ping","data":${deepObject(d)}}`,
        `[${Array.from({ length: 1 + int(rnd, 4) }, () => deepArray(d >> 2)).join(',')}]`,
      ])
    }
    case 6: return JSON.stringify({ messages: Array.from({ length: int(rnd, 4) }, () => randomValue(rnd)) })
    case 7: return JSON.stringify([{ ...PING, methodArgs: [randomValue(rnd)] }, { ...PING, toNodes: randomValue(rnd) }])
    case 8: return pick(rnd, ['', 'null', 'true', '0', '""', '[]', '{}', '{"messages":null}', '{"messages":{}}', '[null]', '1e999', '"\\ud800"', '{"__proto__":{"method":"node.ping"}}'])
    case 9: return garbage(rnd, int(rnd, 300)).toString('latin1')
    case 10: return JSON.stringify({ ...PING, operation: { opCmd: 'x', opArg: randomValue(rnd) } })
    // Huge strings, rarely (they are journaled when valid): under and over the 1 MiB body limit.
    default: return rnd() < 0.04 ? JSON.stringify({ ...PING, data: 'x'.repeat(int(rnd, 1_300_000)) }) : JSON.stringify({ ...PING, data: 'x'.repeat(int(rnd, 20_000)) })
  }
}

function mutate(rnd: Rnd, b: Buffer): { bytes: Buffer; cut: boolean } {
  const out = Buffer.from(b)
  for (let i = 1 + int(rnd, 4); i > 0; i--) {
    const at = int(rnd, out.length)
    const how = int(rnd, 4)
    if (how === 0) out[at] = int(rnd, 256)
    else if (how === 1) out[at] = out[at]! ^ (1 << int(rnd, 8))
    else if (how === 2) out[at] = pick(rnd, [0x0d, 0x0a, 0x20, 0x3a, 0x00])
    else return { bytes: out.subarray(0, at), cut: true }
  }
  return { bytes: out, cut: false }
}

/**
 * One hostile connection's bytes for the HTTP API. `token` is the right one; `kind` names the
 * family (for the report). Requests that would be held open on purpose (GET /v1/events,
 * ?wait=1 without a short timeout) are left to the tests that hold them.
 */
export function httpCase(rnd: Rnd, token: string): HttpCase {
  // Pipelined requests on one connection: keep-alive, and fewer connections for the same cases.
  const n = 1 + int(rnd, 3)
  const many = 1 + int(rnd, 8)
  switch (int(rnd, 15)) {
    case 0: return { kind: 'random bytes', bytes: garbage(rnd, 1 + int(rnd, 400)), auth: 'noise', expect: 1, cut: true }
    case 1: {
      // Well formed, without the right token: pipelined, with a body that would be accepted.
      const reqs = Array.from({ length: n }, () => {
        const post = rnd() < 0.5
        const extra: [string, string][] = rnd() < 0.2 ? [['expect', pick(rnd, ['100-continue', 'nonsense'])]] : []
        return request(post ? 'POST' : pick(rnd, KNOWN), post ? '/v1/messages' : privateRoute(rnd), [...wrongAuth(rnd, token), ...extra, ...randomHeaders(rnd)], post ? UNAUTH_BODY : undefined)
      })
      // A head past Node's 16 KiB header limit (a long route and long headers together) is refused
      // by the parser (431) before any handler: still nothing but a refusal, so it counts as noise.
      const tooLong = reqs.some((r) => r.indexOf('\r\n\r\n') > 16 * 1024 - 1024)
      return { kind: 'wrong or missing token', bytes: Buffer.concat(reqs), auth: tooLong ? 'noise' : 'unauthorized', expect: 1, whole: true }
    }
    case 2: {
      // No right token and a body of several GB declared (only its start sent), or a chunked body without end.
      const chunked = rnd() < 0.5
      const head: [string, string][] = chunked ? [['transfer-encoding', 'chunked']] : [['content-length', String(2 ** 32 + int(rnd, 2 ** 40))]]
      const start = chunked ? '4000\r\n' + 'x'.repeat(0x4000) + '\r\n' : 'x'.repeat(int(rnd, 10_000))
      return { kind: 'wrong token, huge body', bytes: request('POST', '/v1/messages', [...wrongAuth(rnd, token), ...head], start), auth: 'unauthorized', expect: 1, whole: true }
    }
    case 3: {
      // The right token and random paths, methods and headers, pipelined on one connection.
      const methods = Array.from({ length: many }, () => pick(rnd, rnd() < 0.1 ? ['HEAD'] : METHODS.filter((m) => m !== 'POST' || rnd() < 0.3)))
      const reqs = methods.map((m) => request(m, route(rnd), [...rightAuth(rnd, token), ...randomHeaders(rnd)]))
      return { kind: 'random routes', bytes: Buffer.concat(reqs), auth: 'authorized', expect: many, head: methods.map((m) => m === 'HEAD'), whole: true }
    }
    case 13: {
      // The console's public routes without the token: its files, or a refusal; never the API's data.
      const methods = Array.from({ length: many }, () => pick(rnd, rnd() < 0.1 ? ['HEAD'] : METHODS))
      const pub = ['/', '/index.html', '/console/app.js', '/console/app.css', '/console/session', '/console/nope', '/console/../v1/status', '/?a=b']
      const reqs = methods.map((m) => request(m, pick(rnd, pub), [...(rnd() < 0.5 ? wrongAuth(rnd, token) : []), ...randomHeaders(rnd)]))
      return { kind: 'console routes without the token', bytes: Buffer.concat(reqs), auth: 'authorized', expect: many, head: methods.map((m) => m === 'HEAD'), whole: true }
    }
    case 4:
    case 5:
    case 6: {
      // Mutated JSON for POST /v1/messages, pipelined; now and then held for its reply (briefly).
      const reqs = Array.from({ length: many }, () => {
        const q = rnd() < 0.1 ? `?wait=1&timeout=${pick(rnd, ['0.5', '1', '2'])}` : pick(rnd, ['', '', '?wait=0', '?timeout=abc', '?wait=1&timeout=0', '?wait=1&timeout=99999'])
        return request('POST', '/v1/messages' + q, [...rightAuth(rnd, token), ['content-type', pick(rnd, ['application/json', 'text/plain', 'multipart/form-data'])]], messageBody(rnd))
      })
      return { kind: 'mutated JSON', bytes: Buffer.concat(reqs), auth: 'authorized', expect: many, whole: true }
    }
    case 7: {
      // A valid request with its bytes mutated: the token may survive or not.
      const base = rnd() < 0.5 ? request('GET', pick(rnd, ['/v1/status', '/v1/nodes']), rightAuth(rnd, token)) : request('POST', '/v1/messages', rightAuth(rnd, token), JSON.stringify(PING))
      const m = mutate(rnd, base)
      return { kind: 'mutated request', bytes: m.bytes, auth: 'authorized', expect: 1, cut: m.cut }
    }
    case 8: {
      // A plainly wrong token: a mutation must not be able to turn it into the right one.
      const m = mutate(rnd, request('POST', '/v1/messages', rnd() < 0.5 ? [] : [['authorization', `Bearer guess-${int(rnd, 1e9)}`]], UNAUTH_BODY))
      return { kind: 'mutated request, wrong token', bytes: m.bytes, auth: 'noise', expect: 1, cut: m.cut }
    }
    case 9: {
      // HTTP framing tricks, with or without the token.
      const auth = rnd() < 0.5 ? rightAuth(rnd, token) : wrongAuth(rnd, token)
      const body = JSON.stringify(PING)
      const trick = pick(rnd, [
        () => request('POST', '/v1/messages', [...auth, ['content-length', String(body.length)], ['transfer-encoding', 'chunked']], body),
        () => request('POST', '/v1/messages', [...auth, ['content-length', String(body.length)], ['content-length', '1']], body),
        () => request('POST', '/v1/messages', [...auth, ['content-length', pick(rnd, ['-1', 'abc', '1e3', '0x10', ' 5', '99999999999999999999999'])]], body),
        () => request('POST', '/v1/messages', [...auth, ['transfer-encoding', 'chunked']], pick(rnd, ['zz\r\nabc\r\n0\r\n\r\n', 'ffffffffffffffffff\r\n', '5;' + 'e'.repeat(20_000) + '\r\nhello\r\n0\r\n\r\n', '-1\r\n'])),
        () => request('POST', '/v1/messages', [...auth, ['transfer-encoding', pick(rnd, ['gzip', 'chunked, gzip', 'identity', 'x'])]], body),
        () => request('GET', '/v1/status', [...auth, ['x-long', 'a'.repeat(20_000 + int(rnd, 50_000))]]),
        () => request('GET', '/v1/status', [...auth, ...Array.from({ length: 2000 + int(rnd, 2000) }, (_, i) => [`x-${i}`, 'y'] as [string, string])]),
        () => request('GET', '/v1/status', auth, undefined, pick(rnd, ['HTTP/2.0', 'HTTP/0.9', 'HTTP/1.2', 'HTTP/9.9', 'HTTP/1', 'http/1.1', 'ICE/1.0'])),
        () => request(pick(rnd, ['get', 'G ET', '', 'GET\u0000', 'CONNECT']), '/v1/status', auth),
        () => Buffer.from(request('GET', '/v1/status', auth).toString('latin1').replace(/\r\n/g, '\n'), 'latin1'),
        () => request('GET', '/v1/status', [...auth, ['x-fold', 'a\r\n b']]),
        () => request('GET', '/v1/st atus', auth),
        () => request('GET', '/v1/status', [...auth, ['bad header', 'x'], ['x-nul', 'a\u0000b']]),
      ])()
      // Whatever the trick, the parser answers it or it waits for bytes that will never come.
      return { kind: 'framing tricks', bytes: trick, auth: auth.some(([, v]) => v.includes(token) && /^bearer +\S+$/i.test(v)) ? 'authorized' : 'noise', expect: 1, cut: true }
    }
    case 10: {
      // The right token and a body cut short: nothing is accepted from half a body.
      const b = request('POST', '/v1/messages', rightAuth(rnd, token), JSON.stringify(PING) + ' '.repeat(int(rnd, 4000)))
      return { kind: 'body cut short', bytes: b.subarray(0, b.length - 1 - int(rnd, 200)), auth: 'authorized', expect: 1, cut: true }
    }
    case 11: {
      // The right token and a body of several GB declared, or chunked without end: 413 at once.
      const chunked = rnd() < 0.5
      const head: [string, string][] = chunked ? [['transfer-encoding', 'chunked']] : [['content-length', String(2 ** 31 + int(rnd, 2 ** 42))]]
      const start = chunked ? ('4000\r\n' + 'x'.repeat(0x4000) + '\r\n').repeat(70) : 'x'.repeat(int(rnd, 10_000))
      return { kind: 'huge body', bytes: request('POST', '/v1/messages', [...rightAuth(rnd, token), ...head], start), auth: 'authorized', expect: 1, whole: true }
    }
    case 12: return { kind: 'random request line', bytes: Buffer.from(`${pick(rnd, METHODS)} ${garbage(rnd, int(rnd, 80)).toString('latin1')} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\n\r\n`, 'latin1'), auth: 'authorized', expect: 1, cut: true }
    default: {
      // Random header names and values, the token right or not.
      const right = rnd() < 0.5
      const h: [string, string][] = Array.from({ length: int(rnd, 6) }, () => [garbage(rnd, 1 + int(rnd, 20)).toString('latin1'), garbage(rnd, int(rnd, 40)).toString('latin1')])
      return { kind: 'random headers', bytes: request('GET', '/v1/status', [...(right ? rightAuth(rnd, token) : wrongAuth(rnd, token)), ...h]), auth: right ? 'authorized' : 'noise', expect: 1, cut: true }
    }
  }
}
