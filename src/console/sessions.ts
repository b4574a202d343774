/**
 * Console sign-in sessions: the API token, given once on the sign-in page, becomes a random
 * session id in an HttpOnly, SameSite=Strict cookie; the page never holds the token. Each
 * session has its own CSRF token, which every state-changing request from the cookie must
 * carry in the `x-outpost-csrf` header (a page of another origin cannot read it). Sessions live
 * in memory: a restart of the node signs everyone out.
 *
 *   POST /console/session {token} ─ constant time ─▶ Set-Cookie outpost_session=<id> ─▶ {csrf}
 *   later request ─ cookie ─▶ lookup(id) ─ POST/DELETE… ─▶ csrf header + same origin, else 403
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import type http from 'node:http'
import { OutpostError } from '../errors'

export const COOKIE = 'outpost_session'
export const CSRF_HEADER = 'x-outpost-csrf'
/** A session unused this long is forgotten (signed out). */
export const IDLE_MS = 12 * 3600_000
/** …and any session this long after sign-in. */
export const MAX_AGE_MS = 7 * 24 * 3600_000
/** Sessions kept at once; the least recently used goes first. */
const MAX_SESSIONS = 1000

export interface Session {
  id: string
  csrf: string
  created: number
  used: number
}

export class Sessions {
  private readonly map = new Map<string, Session>()
  constructor(private readonly now: () => number = Date.now) {}

  create(): Session {
    const t = this.now()
    const s: Session = { id: randomBytes(32).toString('base64url'), csrf: randomBytes(32).toString('base64url'), created: t, used: t }
    this.map.set(s.id, s)
    if (this.map.size > MAX_SESSIONS) this.map.delete(this.map.keys().next().value!)
    return s
  }

  /** The live session of a request's cookie, if any (its use refreshes it). */
  lookup(req: http.IncomingMessage): Session | undefined {
    const id = cookieValue(req.headers.cookie, COOKIE)
    if (id === undefined) return undefined
    const s = this.map.get(id)
    if (s === undefined) return undefined
    const t = this.now()
    if (t - s.used > IDLE_MS || t - s.created > MAX_AGE_MS) { this.map.delete(id); return undefined }
    s.used = t
    // Map order is use order: the least recently used is evicted first.
    this.map.delete(id)
    this.map.set(id, s)
    return s
  }

  end(s: Session): void {
    this.map.delete(s.id)
  }

  get size(): number {
    return this.map.size
  }
}

/** The Set-Cookie value for a session (`undefined`: one that clears it). */
export function sessionCookie(s: Session | undefined, secure: boolean): string {
  const attrs = ['Path=/', 'HttpOnly', 'SameSite=Strict', ...(secure ? ['Secure'] : [])]
  if (s === undefined) return [`${COOKIE}=`, 'Max-Age=0', ...attrs].join('; ')
  return [`${COOKIE}=${s.id}`, `Max-Age=${Math.floor(MAX_AGE_MS / 1000)}`, ...attrs].join('; ')
}

/** Whether the request came over TLS (here, or at a TLS proxy in front that says so). */
export function overTls(req: http.IncomingMessage): boolean {
  return (req.socket as { encrypted?: boolean }).encrypted === true || /^https$/i.test(String(req.headers['x-forwarded-proto'] ?? ''))
}

/**
 * A state-changing request from a browser: it must come from this origin (Origin, and
 * Sec-Fetch-Site where the browser sends it) and, with a session, carry its CSRF token.
 * Throws api_forbidden (403) naming what was wrong.
 */
export function checkSameOrigin(req: http.IncomingMessage, s: Session | undefined): void {
  const site = req.headers['sec-fetch-site']
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw new OutpostError('api_forbidden', `console: refused a request from another site (Sec-Fetch-Site: ${String(site).slice(0, 40)})`)
  }
  const origin = req.headers.origin
  if (origin !== undefined) {
    const host = req.headers.host ?? ''
    let ok = false
    try {
      const u = new URL(origin)
      ok = u.host === host && (u.protocol === 'http:' || u.protocol === 'https:')
    } catch { /* not a URL: refused below */ }
    if (!ok) throw new OutpostError('api_forbidden', `console: refused a request from another origin (${origin.slice(0, 80)})`)
  }
  if (s === undefined) return
  const given = Buffer.from(String(req.headers[CSRF_HEADER] ?? ''))
  const want = Buffer.from(s.csrf)
  if (given.length !== want.length || !timingSafeEqual(given, want)) {
    throw new OutpostError('api_forbidden', `console: refused a state-changing request without the session's CSRF token (header ${CSRF_HEADER})`)
  }
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}
