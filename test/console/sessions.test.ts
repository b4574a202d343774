/**
 * Console sessions on their own (src/console/sessions.ts): lookup by cookie, idle and absolute
 * expiry with an injected clock, the cookie's attributes, and the same-origin and CSRF check.
 * Requests are plain objects with the headers a browser sends: the check reads nothing else.
 */
import type http from 'node:http'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { checkSameOrigin, IDLE_MS, MAX_AGE_MS, sessionCookie, Sessions } from '../../src/console/sessions'
import { throwsCode } from '../helpers'

function req(headers: Record<string, string>): http.IncomingMessage {
  return { headers, socket: {} } as unknown as http.IncomingMessage
}

test('sessions - a session is found by its cookie among others; a forged or ended one is not', () => {
  const s = new Sessions()
  const a = s.create()
  const b = s.create()
  assert.is.not(a.id, b.id)
  assert.is.not(a.csrf, b.csrf)
  assert.is(s.lookup(req({ cookie: `theme=dark; outpost_session=${a.id}; x=1` })), a)
  assert.is(s.lookup(req({ cookie: `outpost_session=${a.id}x` })), undefined)
  assert.is(s.lookup(req({})), undefined)
  s.end(a)
  assert.is(s.lookup(req({ cookie: `outpost_session=${a.id}` })), undefined)
  assert.is(s.lookup(req({ cookie: `outpost_session=${b.id}` })), b)
})

test('sessions - forgotten after IDLE_MS unused, and MAX_AGE_MS after sign-in however used', () => {
  let now = 1_000_000
  const s = new Sessions(() => now)
  const idle = s.create()
  const busy = s.create()
  const cookie = (id: string): http.IncomingMessage => req({ cookie: `outpost_session=${id}` })
  now += IDLE_MS - 1000
  assert.ok(s.lookup(cookie(busy.id)))
  now += 2000
  assert.is(s.lookup(cookie(idle.id)), undefined, 'idle too long')
  assert.ok(s.lookup(cookie(busy.id)), 'used meanwhile')
  while (now - busy.created <= MAX_AGE_MS) { now += IDLE_MS / 2; s.lookup(cookie(busy.id)) }
  assert.is(s.lookup(cookie(busy.id)), undefined, 'too old')
  assert.is(s.size, 0)
})

test('sessions - the cookie is HttpOnly and SameSite=Strict, Secure over TLS; clearing it expires it', () => {
  const s = new Sessions().create()
  assert.is(sessionCookie(s, false), `outpost_session=${s.id}; Max-Age=${MAX_AGE_MS / 1000}; Path=/; HttpOnly; SameSite=Strict`)
  assert.match(sessionCookie(s, true), /; SameSite=Strict; Secure$/)
  assert.match(sessionCookie(undefined, false), /^outpost_session=; Max-Age=0;/)
})

test('sessions - a change needs the CSRF token and this origin; another site or origin is refused', () => {
  const s = new Sessions().create()
  const host = { host: '127.0.0.1:8080' }
  checkSameOrigin(req({ ...host, 'x-outpost-csrf': s.csrf, origin: 'http://127.0.0.1:8080', 'sec-fetch-site': 'same-origin' }), s)
  checkSameOrigin(req({ ...host, 'x-outpost-csrf': s.csrf }), s)
  throwsCode(() => checkSameOrigin(req({ ...host }), s), 'api_forbidden')
  throwsCode(() => checkSameOrigin(req({ ...host, 'x-outpost-csrf': s.csrf.slice(1) }), s), 'api_forbidden')
  throwsCode(() => checkSameOrigin(req({ ...host, 'x-outpost-csrf': s.csrf, origin: 'http://127.0.0.1:9999' }), s), 'api_forbidden')
  throwsCode(() => checkSameOrigin(req({ ...host, 'x-outpost-csrf': s.csrf, origin: 'null' }), s), 'api_forbidden')
  throwsCode(() => checkSameOrigin(req({ ...host, 'x-outpost-csrf': s.csrf, 'sec-fetch-site': 'same-site' }), s), 'api_forbidden')
  // Signing in (no session yet): only the origin is checked.
  checkSameOrigin(req({ ...host }), undefined)
  throwsCode(() => checkSameOrigin(req({ ...host, origin: 'https://evil.example' }), undefined), 'api_forbidden')
})

test.run()
