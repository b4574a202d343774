/**
 * The console's sign-in, session cookie, CSRF and security headers, and the views it reads
 * (/v1/nodes?selector, /v1/errors, /v1/requests), against a real cluster: requests with fetch
 * as any client sends them, and a page of another origin in a real Chromium trying to make a
 * signed-in browser run a command.
 */
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, freePort, sendVia, tmpDir } from '../fixtures/cluster'
import { launchChromium, type Chromium } from '../fixtures/chromium'
import { configure } from '../fixtures/configure'

const TOKEN = `console-token-${Math.random().toString(36).slice(2)}`
let c: Cluster
let base = ''
let port = 0
const work = tmpDir()

interface Answer { status: number; body: Record<string, unknown>; headers: Headers }

async function call(method: string, route: string, headers: Record<string, string> = {}, body?: unknown): Promise<Answer> {
  const res = await fetch(base + route, { method, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
  const text = await res.text()
  let parsed: Record<string, unknown> = {}
  try { parsed = JSON.parse(text) as Record<string, unknown> } catch { /* not JSON */ }
  return { status: res.status, body: parsed, headers: res.headers }
}

const code = (a: Answer): unknown => (a.body.error as { code?: string } | undefined)?.code
const bearer = { authorization: `Bearer ${TOKEN}` }

async function signIn(extra: Record<string, string> = {}): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const a = await call('POST', '/console/session', extra, { token: TOKEN })
  assert.is(a.status, 200)
  const setCookie = a.headers.get('set-cookie') ?? ''
  return { cookie: setCookie.split(';')[0]!, csrf: a.body.csrf as string, setCookie }
}

/** A cli.run that would leave `file` behind if it ran. */
function touch(file: string): Record<string, unknown> {
  return { toNode: 'ship1', method: 'cli.run', methodArgs: [`touch ${file}`] }
}

async function neverAppears(file: string, ms = 2500): Promise<void> {
  await new Promise((r) => setTimeout(r, ms))
  assert.not.ok(fs.existsSync(file), `${file} exists: the refused request ran`)
}

test.before(async () => {
  c = await Cluster.create(['ship1', 'ship2'])
  port = await freePort()
  base = `http://127.0.0.1:${port}`
  configure(c, 'central', { api: { http: `127.0.0.1:${port}`, token: TOKEN } })
  await c.startHub()
  await Promise.all([c.start('central'), c.start('ship1'), c.start('ship2')])
})

test.after(async () => {
  await c?.destroy()
  fs.rmSync(work, { recursive: true, force: true })
})

test('console - the page is served with a strict CSP and the usual headers, and has no inline script or style', async () => {
  const res = await fetch(`${base}/`)
  assert.is(res.status, 200)
  const csp = res.headers.get('content-security-policy') ?? ''
  assert.match(csp, /default-src 'none'/)
  assert.match(csp, /script-src 'self'(;|$)/)
  assert.match(csp, /style-src 'self'(;|$)/)
  assert.match(csp, /frame-ancestors 'none'/)
  assert.not.match(csp, /unsafe-inline|unsafe-eval/)
  assert.is(res.headers.get('x-content-type-options'), 'nosniff')
  assert.is(res.headers.get('x-frame-options'), 'DENY')
  assert.is(res.headers.get('referrer-policy'), 'no-referrer')
  const html = await res.text()
  assert.not.match(html, /<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son\w+=/i)
  const js = await fetch(`${base}/console/app.js`)
  assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/)
  assert.ok((await js.text()).length > 5000, 'the bundled page script')
  // The API's answers carry the headers too; unknown paths still need the token.
  const api = await call('GET', '/v1/nodes', bearer)
  assert.is(api.headers.get('x-content-type-options'), 'nosniff')
  assert.is((await call('GET', '/no/such/route')).status, 401)
})

test('console - a wrong token gets 401 and no cookie; the right one an HttpOnly SameSite=Strict session cookie', async () => {
  const wrong = await call('POST', '/console/session', {}, { token: `${TOKEN}x` })
  assert.is(wrong.status, 401)
  assert.is(code(wrong), 'api_unauthorized')
  assert.is(wrong.headers.get('set-cookie'), null)
  // Another site may not sign a browser in, even with the right token (login CSRF).
  const fromElsewhere = await call('POST', '/console/session', { origin: 'http://evil.example' }, { token: TOKEN })
  assert.is(fromElsewhere.status, 403)
  assert.is(code(fromElsewhere), 'api_forbidden')
  assert.is(fromElsewhere.headers.get('set-cookie'), null)
  const { setCookie, cookie, csrf } = await signIn()
  assert.match(setCookie, /^outpost_session=[A-Za-z0-9_-]{40,};/)
  assert.match(setCookie, /; HttpOnly/)
  assert.match(setCookie, /; SameSite=Strict/)
  assert.not.match(setCookie, /Secure/)
  assert.ok(csrf.length >= 40)
  // The cookie stands for the token on /v1/; GET /console/session gives the page its CSRF token back.
  const nodes = await call('GET', '/v1/nodes', { cookie })
  assert.is(nodes.status, 200)
  assert.is((await call('GET', '/console/session', { cookie })).body.csrf, csrf)
  assert.is((await call('GET', '/v1/nodes', { cookie: 'outpost_session=forged' })).status, 401)
  // Behind a TLS proxy that says so, the cookie is Secure.
  assert.match((await signIn({ 'x-forwarded-proto': 'https' })).setCookie, /; Secure/)
})

test('console - CSRF: a state-changing request from the cookie without its token, or from another origin, is refused and nothing runs', async () => {
  const { cookie, csrf } = await signIn()
  const noToken = path.join(work, 'no-token')
  const a = await call('POST', '/v1/messages', { cookie }, touch(noToken))
  assert.is(a.status, 403)
  assert.is(code(a), 'api_forbidden')
  const wrongToken = await call('POST', '/v1/messages', { cookie, 'x-outpost-csrf': `${csrf.slice(0, -1)}${csrf.endsWith('A') ? 'B' : 'A'}` }, touch(noToken))
  assert.is(wrongToken.status, 403)
  const otherOrigin = await call('POST', '/v1/messages', { cookie, 'x-outpost-csrf': csrf, origin: 'http://evil.example' }, touch(noToken))
  assert.is(otherOrigin.status, 403)
  assert.match(JSON.stringify(otherOrigin.body), /another origin/)
  const otherSite = await call('POST', '/v1/messages', { cookie, 'x-outpost-csrf': csrf, 'sec-fetch-site': 'cross-site' }, touch(noToken))
  assert.is(otherSite.status, 403)
  const signOut = await call('DELETE', '/console/session', { cookie })
  assert.is(signOut.status, 403)
  await neverAppears(noToken)

  // The same request with the token, from this origin, runs: the refusals above were the check.
  const ok = path.join(work, 'with-token')
  const good = await call('POST', '/v1/messages?wait=1&timeout=20', { cookie, 'x-outpost-csrf': csrf, origin: base, 'sec-fetch-site': 'same-origin' }, touch(ok))
  assert.is(good.status, 200, JSON.stringify(good.body))
  assert.ok(fs.existsSync(ok))
  // Tools with the bearer token need no CSRF token.
  assert.is((await call('POST', '/v1/messages', bearer, { toNode: 'ship1', method: 'node.ping' })).status, 202)
  // Signing out ends the session.
  assert.is((await call('DELETE', '/console/session', { cookie, 'x-outpost-csrf': csrf })).status, 204)
  assert.is((await call('GET', '/v1/nodes', { cookie })).status, 401)
})

test('console - a page of another origin cannot make a signed-in browser run a command (fetch, form post)', async () => {
  const viaFetch = path.join(work, 'evil-fetch')
  const viaForm = path.join(work, 'evil-form')
  // The form trick: a text/plain body that is JSON: name `{"…":"` + `=` + value `"}`.
  const formName = JSON.stringify(touch(viaForm)).slice(0, -1) + ',"x":"'
  const evilJs = `fetch(${JSON.stringify(`${base}/v1/messages`)}, { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: ${JSON.stringify(JSON.stringify(touch(viaFetch)))} }).finally(function () { document.getElementById('f').submit() })`
  const evilHtml = `<!doctype html><form id="f" method="post" enctype="text/plain" action="${base}/v1/messages"><input name='${formName}' value='"}'></form><script src="/evil.js"></script>`
  const evil = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': req.url === '/evil.js' ? 'text/javascript' : 'text/html' })
    res.end(req.url === '/evil.js' ? evilJs : evilHtml)
  })
  const evilPort = await freePort()
  await new Promise<void>((r) => evil.listen(evilPort, '127.0.0.1', r))
  let chrome: Chromium | undefined
  try {
    chrome = await launchChromium()
    const page = await (await chrome.browser.newContext()).newPage()
    await page.goto(`${base}/`)
    await page.fill('#token', TOKEN)
    await page.click('button[type=submit]')
    await page.locator('tr[data-node="ship1"]').waitFor()
    // Same host, another port: the same site, so even SameSite=Strict sends the cookie along.
    const refused: number[] = []
    page.on('response', (r) => { if (r.url().startsWith(`${base}/v1/messages`)) refused.push(r.status()) })
    await page.goto(`http://127.0.0.1:${evilPort}/`)
    await page.waitForURL(`${base}/v1/messages`, { timeout: 10_000 })
    assert.match(await page.content(), /api_forbidden/)
    await neverAppears(viaFetch)
    assert.not.ok(fs.existsSync(viaForm))
  } finally {
    await chrome?.close()
    evil.close()
  }
})

test('console - views: nodes by selector, central\'s error log newest first, recent requests to a node', async () => {
  const sel = await call('GET', `/v1/nodes?selector=${encodeURIComponent('ship*')}`, bearer)
  assert.equal((sel.body.nodes as { name: string }[]).map((n) => n.name).sort(), ['ship1', 'ship2'])
  const bad = await call('GET', `/v1/nodes?selector=${encodeURIComponent('role in (')}`, bearer)
  assert.is(bad.status, 400)
  assert.is(code(bad), 'selector_invalid')
  // error.log is never replied to: sendVia returns once ship1 has it stored, so wait for central to log it before the next.
  const reported = async (message: string): Promise<void> => {
    const end = Date.now() + 20_000
    while (!((await call('GET', '/v1/errors', bearer)).body.errors as { message: string }[]).some((e) => e.message === message)) {
      if (Date.now() > end) throw new Error(`central's error log never showed ${JSON.stringify(message)}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  await sendVia(c.node('ship1').socket, [{ toNode: 'central', method: 'error.log', data: 'first report' }])
  await reported('first report')
  await sendVia(c.node('ship2').socket, [{ toNode: 'central', method: 'error.log', data: 'second report\nwith two lines' }])
  await reported('second report\nwith two lines')
  const errors = (await call('GET', '/v1/errors', bearer)).body.errors as { node: string; code: string; message: string; time: string }[]
  assert.equal(errors.slice(0, 2).map((e) => [e.node, e.message]), [['ship2', 'second report\nwith two lines'], ['ship1', 'first report']])
  assert.match(errors[0]!.time, /^\d{4}-\d\d-\d\dT/)
  assert.is(((await call('GET', '/v1/errors?limit=1', bearer)).body.errors as unknown[]).length, 1)
  const ofShip1 = (await call('GET', '/v1/errors?node=ship1', bearer)).body.errors as { node: string; message: string }[]
  assert.equal(ofShip1.map((e) => [e.node, e.message]), [['ship1', 'first report']])
  assert.is(code(await call('GET', '/v1/errors?limit=0', bearer)), 'api_bad_request')
  const sent = await call('POST', '/v1/messages?wait=1&timeout=20', bearer, { toNode: 'ship2', method: 'cli.run', methodArgs: ['exit 3'] })
  const id = (sent.body.accepted as { id: string }[])[0]!.id
  const recent = (await call('GET', '/v1/requests?toNode=ship2', bearer)).body.requests as { id: string; method: string; final: boolean; exitCode?: number; acceptedAt?: number }[]
  assert.equal(recent[0], { id, method: 'cli.run', acceptedAt: recent[0]!.acceptedAt, final: true, exitCode: 3 })
  assert.ok(recent.every((r) => r.id !== undefined))
  assert.equal((await call('GET', '/v1/requests?toNode=nobody', bearer)).body.requests, [])
  // Without toNode it is a mistake, said as such (it was an empty list, as if nothing had been sent).
  const bare = await call('GET', '/v1/requests', bearer)
  assert.is(bare.status, 400)
  assert.is((bare.body.error as { code: string }).code, 'api_bad_request')
})

test.run()
