/**
 * The fleet console's own routes on the HTTP API's port (api.http), beside /v1/:
 *
 *   GET  /  /console/app.js  /console/app.css   the page (public: it holds no data)
 *   GET  /console/session                       {csrf} while signed in, else 401
 *   POST /console/session {token}               sign in: a session cookie and {csrf}
 *   DELETE /console/session                     sign out (CSRF token required)
 *
 * Every answer of the port carries the security headers below; the page's data comes from
 * /v1/ with the session cookie (http.ts checks it, and the CSRF token, there).
 */
import type http from 'node:http'
import { OutpostError } from '../errors'
import { consoleAssets } from './assets'
import { checkSameOrigin, overTls, sessionCookie, Sessions } from './sessions'

/** No inline script or style, nothing from elsewhere, never framed. */
export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
  + "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

export function securityHeaders(req: http.IncomingMessage, res: http.ServerResponse): void {
  res.setHeader('content-security-policy', CSP)
  res.setHeader('x-content-type-options', 'nosniff')
  res.setHeader('x-frame-options', 'DENY')
  res.setHeader('referrer-policy', 'no-referrer')
  res.setHeader('cross-origin-opener-policy', 'same-origin')
  res.setHeader('cross-origin-resource-policy', 'same-origin')
  res.setHeader('permissions-policy', 'camera=(), microphone=(), geolocation=(), usb=(), payment=()')
  if (overTls(req)) res.setHeader('strict-transport-security', 'max-age=31536000')
}

export interface ConsoleOptions {
  /** Whether a token is the API token (constant time). */
  tokenMatches: (token: string) => boolean
  readBody: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<string>
  /** A sign-in ended (sign out): what it opened (shells) ends with it. */
  signedOut?: (sessionId: string) => void
}

export class ConsoleRoutes {
  readonly sessions = new Sessions()
  constructor(private readonly o: ConsoleOptions) {}

  /** Whether `route` is the console's (public: served without a token). */
  owns(route: string): boolean {
    return route === '' || route === '/index.html' || route.startsWith('/console/')
  }

  async handle(req: http.IncomingMessage, res: http.ServerResponse, route: string): Promise<void> {
    const method = req.method ?? 'GET'
    if (route === '/console/session') return this.session(req, res, method)
    const path = route === '' ? '/index.html' : route
    const files = consoleAssets()
    if (files === null) throw new OutpostError('api_not_found', 'console: this build has no console (run the bundle: node packaging/build.mjs, then bin/outpost.cjs)')
    const file = files.get(path)
    if (file === undefined) throw new OutpostError('api_not_found', `console: no file ${path.slice(0, 80)}`)
    if (method !== 'GET' && method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      throw new OutpostError('api_method_not_allowed', `console: ${path} takes GET, not ${method}`)
    }
    const fresh = req.headers['if-none-match'] === file.etag
    res.writeHead(fresh ? 304 : 200, {
      'content-type': file.type, etag: file.etag,
      // The page is looked at again each time (a new version after an upgrade); it is tiny.
      'cache-control': 'no-cache',
      ...(fresh ? {} : { 'content-length': file.body.length }),
    })
    res.end(fresh || method === 'HEAD' ? undefined : file.body)
  }

  private async session(req: http.IncomingMessage, res: http.ServerResponse, method: string): Promise<void> {
    res.setHeader('cache-control', 'no-store')
    const s = this.sessions.lookup(req)
    if (method === 'GET') {
      if (s === undefined) return json(res, 401, { error: { code: 'api_unauthorized', message: 'unauthorized' } })
      return json(res, 200, { csrf: s.csrf })
    }
    if (method === 'POST') {
      // Login CSRF: another site must not sign a browser in with its own token.
      checkSameOrigin(req, undefined)
      const body = await this.o.readBody(req, res)
      let token: unknown
      try {
        token = (JSON.parse(body) as { token?: unknown }).token
      } catch {
        throw new OutpostError('api_bad_request', 'console: sign in with a JSON body {"token": "…"}')
      }
      if (typeof token !== 'string' || !this.o.tokenMatches(token)) {
        return json(res, 401, { error: { code: 'api_unauthorized', message: 'unauthorized' } })
      }
      const created = this.sessions.create()
      res.setHeader('set-cookie', sessionCookie(created, overTls(req)))
      return json(res, 200, { csrf: created.csrf })
    }
    if (method === 'DELETE') {
      if (s === undefined) return json(res, 401, { error: { code: 'api_unauthorized', message: 'unauthorized' } })
      checkSameOrigin(req, s)
      this.sessions.end(s)
      this.o.signedOut?.(s.id)
      res.setHeader('set-cookie', sessionCookie(undefined, overTls(req)))
      res.writeHead(204)
      res.end()
      return
    }
    res.setHeader('allow', 'GET, POST, DELETE')
    throw new OutpostError('api_method_not_allowed', `console: /console/session takes GET, POST or DELETE, not ${method}`)
  }
}

function json(res: http.ServerResponse, status: number, obj: unknown): void {
  const body = JSON.stringify(obj)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}
