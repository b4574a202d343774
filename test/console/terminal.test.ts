/**
 * The console's terminal (#/shell/NODE) and the HTTP sessions under it (/v1/sessions), against
 * a real cluster of processes (a hub, central with api.http, ship1): in a real Chromium, typed
 * commands, a resize that `stty size` follows, an exit status, no CSP violation, and leaving the
 * view killing the shell; over plain fetch, who may open one, a bearer-token client's session
 * end to end, and a session nobody follows being ended.
 */
import fs from 'node:fs'
import http from 'node:http'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Page } from 'playwright-core'
import { Cluster, freePort, tmpDir } from '../fixtures/cluster'
import { launchChromium, processesWith, shotPath, type Chromium } from '../fixtures/chromium'
import { configure } from '../fixtures/configure'
import { eventually } from '../helpers'

const TOKEN = `console-token-${Math.random().toString(36).slice(2)}`
const bearer = { authorization: `Bearer ${TOKEN}` }
let c: Cluster
let base = ''
let chrome: Chromium
let page: Page
const pageErrors: string[] = []
const work = tmpDir()

test.before(async () => {
  c = await Cluster.create(['ship1'])
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  configure(c, 'central', { api: { http: `127.0.0.1:${port}`, token: TOKEN } })
  await c.startHub()
  await Promise.all([c.start('central'), c.start('ship1')])
  chrome = await launchChromium()
  const context = await chrome.browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' })
  page = await context.newPage()
  page.setDefaultTimeout(15_000)
  // A CSP violation (xterm.js's <style> elements, if they got through) or a script error.
  page.on('console', (m) => { if (m.type() === 'error' || /Content.Security.Policy/i.test(m.text())) pageErrors.push(m.text()) })
  page.on('pageerror', (e) => pageErrors.push(e.message))
})

test.after(async () => {
  await chrome?.close()
  await c?.destroy()
  fs.rmSync(work, { recursive: true, force: true })
})

async function call(method: string, route: string, headers: Record<string, string> = {}, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(base + route, { method, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
  const text = await res.text()
  let parsed: Record<string, unknown> = {}
  try { parsed = JSON.parse(text) as Record<string, unknown> } catch { /* not JSON */ }
  return { status: res.status, body: parsed }
}

async function signIn(): Promise<{ cookie: string; csrf: string }> {
  const res = await fetch(`${base}/console/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: TOKEN }) })
  assert.is(res.status, 200)
  return { cookie: (res.headers.get('set-cookie') ?? '').split(';')[0]!, csrf: ((await res.json()) as { csrf: string }).csrf }
}

/** A process whose command line holds `marker` is running (a shell's child, here on the same machine). */
const running = (marker: string): boolean => processesWith(marker).length > 0

/** The terminal's screen as text, one line a row. */
async function screen(): Promise<string> {
  return page.locator('.term-box .xterm-rows').innerText()
}

async function typeLine(text: string): Promise<void> {
  await page.locator('.term-box').click()
  await page.keyboard.type(text)
  await page.keyboard.press('Enter')
}

async function waitScreen(re: RegExp): Promise<RegExpMatchArray> {
  const end = Date.now() + 15_000
  for (;;) {
    const m = re.exec(await screen())
    if (m) return m
    if (Date.now() > end) throw new Error(`the terminal never showed ${re}; it shows:\n${await screen()}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

test('terminal - without a sign-in, or without the CSRF token or from another origin, no shell is opened', async () => {
  const made = `${work}/opened`
  const open = { toNode: 'ship1', command: `touch ${made}` }
  assert.is((await call('POST', '/v1/sessions', {}, open)).status, 401)
  assert.is((await call('POST', '/v1/sessions', { authorization: 'Bearer wrong' }, open)).status, 401)
  const { cookie, csrf } = await signIn()
  const noCsrf = await call('POST', '/v1/sessions', { cookie }, open)
  assert.is(noCsrf.status, 403)
  assert.is((noCsrf.body.error as { code: string }).code, 'api_forbidden')
  assert.is((await call('POST', '/v1/sessions', { cookie, 'x-outpost-csrf': 'x'.repeat(csrf.length) }, open)).status, 403)
  assert.is((await call('POST', '/v1/sessions', { cookie, 'x-outpost-csrf': csrf, origin: 'http://evil.example' }, open)).status, 403)
  await new Promise((r) => setTimeout(r, 2500))
  assert.not.ok(fs.existsSync(made), 'a refused request opened a session')
  // The same request with its token does open one (the refusals above were the checks, not the request).
  const ok = await call('POST', '/v1/sessions', { cookie, 'x-outpost-csrf': csrf }, open)
  assert.is(ok.status, 201)
  const id = (ok.body.session as { id: string }).id
  // Another sign-in (or a bearer client) cannot follow it or type into it.
  const other = await signIn()
  assert.is((await call('GET', `/v1/sessions/${id}/events`, { cookie: other.cookie })).status, 404)
  assert.is((await call('POST', `/v1/sessions/${id}/input`, { cookie: other.cookie, 'x-outpost-csrf': other.csrf }, { seq: 0, lines: [{ in: 'aGkK' }] })).status, 404)
  assert.is((await call('GET', `/v1/sessions/${id}/events`, bearer)).status, 404)
  assert.is((await call('DELETE', `/v1/sessions/${id}`, { cookie, 'x-outpost-csrf': csrf })).status, 204)
})

test('terminal - signing out ends the shells that sign-in opened', async () => {
  const { cookie, csrf } = await signIn()
  const marker = `sleep ${4000 + Math.floor(Math.random() * 5000)}`
  const open = await call('POST', '/v1/sessions', { cookie, 'x-outpost-csrf': csrf }, { toNode: 'ship1', command: marker })
  const id = (open.body.session as { id: string }).id
  const res = await fetch(`${base}/v1/sessions/${id}/events`, { headers: { cookie }, signal: AbortSignal.timeout(15_000) })
  await eventually('the shell\'s command running', () => running(marker) || undefined)
  assert.is((await call('DELETE', '/console/session', { cookie, 'x-outpost-csrf': csrf })).status, 204)
  const text = await res.text()
  assert.match(text, /event: error\ndata: \{"code":"session_closed"/)
  await eventually('the shell killed after sign-out', () => !running(marker) || undefined)
})

test('terminal - a bearer-token client: events over SSE, input in order of seq (a batch sent early waits for the one before), the exit status', async () => {
  const open = await call('POST', '/v1/sessions', bearer, { toNode: 'ship1', command: 'read a; read b; echo "got $a $b"; exit 4' })
  assert.is(open.status, 201)
  const id = (open.body.session as { id: string }).id
  const res = await fetch(`${base}/v1/sessions/${id}/events`, { headers: bearer })
  assert.is(res.headers.get('content-type'), 'text/event-stream')
  // Batch 1 first: it is held until batch 0 comes; a repeat of batch 0 is not typed twice.
  const late = call('POST', `/v1/sessions/${id}/input`, bearer, { seq: 1, lines: [{ in: Buffer.from('second\r').toString('base64') }] })
  assert.is((await call('POST', `/v1/sessions/${id}/input`, bearer, { seq: 0, lines: [{ in: Buffer.from('first\r').toString('base64') }] })).status, 200)
  assert.is((await late).status, 200)
  let text = ''
  const events: string[] = []
  const decoder = new TextDecoder()
  for await (const chunk of res.body!) text += decoder.decode(chunk as Uint8Array)
  let out = ''
  for (const block of text.split('\n\n')) {
    const ev = /^event: (\w+)$/m.exec(block)?.[1]
    const data = /^data: (.*)$/m.exec(block)?.[1] ?? ''
    if (ev === undefined) continue
    events.push(ev)
    if (ev === 'out') out += Buffer.from(data, 'base64').toString()
    if (ev === 'exit') assert.equal(JSON.parse(data), { code: 4 })
  }
  assert.match(out, /got first second/)
  assert.is(events.at(-1), 'exit')
  assert.ok(events.includes('ready'))
})

test('terminal - flow control: output the client does not read holds the remote program back, central does not buffer it; then all of it comes', async () => {
  const total = 60 * 1024 * 1024
  const marker = `head -c ${total} /dev/zero`
  // (`sleep 1`: the program does not exit while its last output waits in a paused pty, which
  // node-pty would drop 200 ms after the exit; that is outpost shell's too, not this test's.)
  const open = await call('POST', '/v1/sessions', bearer, { toNode: 'ship1', command: `stty raw -echo; ${marker} | tr '\\0' x; sleep 1` })
  const id = (open.body.session as { id: string }).id
  const central = c.node('central').proc!.child.pid!
  const rssMb = (): number => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${central}/status`, 'utf8'))![1]) / 1024
  const before = rssMb()
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(`${base}/v1/sessions/${id}/events`, { headers: bearer }, resolve).on('error', reject))
  res.pause()
  await eventually('the command running', () => running(marker) || undefined)
  await new Promise((r) => setTimeout(r, 4000))
  // Not read: the program waits (a pty that nobody drains), and central holds about a window, not 60 MiB.
  assert.ok(running(marker), 'the remote program finished while its output was not read')
  assert.ok(rssMb() - before < 40, `central grew ${(rssMb() - before).toFixed(0)} MB`)
  let xs = 0
  let rest = ''
  let exit = ''
  res.setEncoding('utf8')
  res.on('data', (d: string) => {
    const blocks = (rest + d).split('\n\n')
    rest = blocks.pop()!
    for (const b of blocks) {
      const out = /^event: out\ndata: (.*)$/m.exec(b)
      if (out) { const t = Buffer.from(out[1]!, 'base64').toString('latin1'); for (let i = 0; i < t.length; i++) if (t.charCodeAt(i) === 120) xs++ }
      const e = /^event: exit\ndata: (.*)$/m.exec(b)
      if (e) exit = e[1]!
    }
  })
  res.resume()
  await new Promise((r) => res.on('end', r))
  assert.is(exit, '{"code":0}')
  assert.is(xs, total)
})

test('terminal - a session whose event stream never comes is ended, its process killed', async () => {
  const marker = `sleep ${4000 + Math.floor(Math.random() * 5000)}`
  const open = await call('POST', '/v1/sessions', bearer, { toNode: 'ship1', command: marker })
  assert.is(open.status, 201)
  await eventually('the shell\'s command running', () => running(marker) || undefined)
  // STREAM_WAIT_MS (10 s) later it is gone.
  await eventually('the unfollowed session ended', () => !running(marker) || undefined, 20_000)
  assert.is((await call('GET', `/v1/sessions/${(open.body.session as { id: string }).id}/events`, bearer)).status, 404)
})

test('terminal - the console: typed commands, a resize stty follows, an exit status, no CSP violation', async () => {
  await page.goto(`${base}/`)
  await page.fill('#token', TOKEN)
  await page.click('button[type=submit]')
  await page.locator('tr[data-node="ship1"] .badge').filter({ hasText: 'online' }).waitFor()
  // (Before sign-in the page's look for a session was answered 401, as it should be.)
  pageErrors.length = 0
  await page.goto(`${base}/#/node/ship1`)
  // xterm.js comes only with the terminal view (/console/term.js), not with every page.
  assert.is(await page.evaluate('typeof globalThis.outpostXterm'), 'undefined')
  await page.click('[data-shell]')
  await page.locator('[data-status=open]').waitFor()
  await waitScreen(/[#$] *$/m)
  // The tab names the shell's node, not the fleet.
  assert.is(await page.title(), 'shell on ship1 - outpost console')
  await typeLine('echo hello-$((6*7))')
  await waitScreen(/^hello-42$/m)
  await typeLine("stty size | sed 's/^/size1=/'")
  const big = await waitScreen(/^size1=(\d+) (\d+)$/m)
  await page.setViewportSize({ width: 760, height: 560 })
  await typeLine("stty size | sed 's/^/size2=/'")
  const small = await waitScreen(/^size2=(\d+) (\d+)$/m)
  // The pty took the smaller size, and it is the size the page draws.
  assert.ok(Number(small[1]) < Number(big[1]) && Number(small[2]) < Number(big[2]), `stty size ${small[0]} after ${big[0]}`)
  assert.is(await page.locator('.term-box .xterm-rows > div').count(), Number(small[1]))
  // A 24-bit colour: xterm.js styles that cell with a style attribute, which must reach it under the CSP.
  await typeLine("printf '\\033[38;2;255;0;0mRED-%s\\033[0m\\n' ok")
  await waitScreen(/^RED-ok$/m)
  assert.is(await page.locator('.term-box .xterm-rows span', { hasText: 'RED-ok' }).evaluate((el) => (globalThis as unknown as { getComputedStyle(e: unknown): { color: string } }).getComputedStyle(el).color), 'rgb(255, 0, 0)')
  await page.screenshot({ path: shotPath('terminal') })
  await typeLine('exit 3')
  await page.locator('[data-exit="3"]').waitFor()
  await waitScreen(/\[exited with status 3\]/)
  assert.equal(pageErrors, [])
})

test('terminal - leaving the view ends the session: the shell\'s process group is killed', async () => {
  await page.setViewportSize({ width: 900, height: 520 })
  await page.getByRole('button', { name: 'New session' }).click()
  await page.locator('[data-status=open]').waitFor()
  const marker = `sleep ${4000 + Math.floor(Math.random() * 5000)}`
  // (sh -c: its command line holds the marker with its space; sleep's own has a NUL there.)
  await typeLine(`uname -s; sh -c '${marker}; :'`)
  await eventually('the typed command running', () => running(marker) || undefined)
  await page.goto(`${base}/#/fleet`)
  await eventually('the shell killed after the view closed', () => !running(marker) || undefined)
  assert.equal(pageErrors, [])
})

// Last: after it ship1 spins and stops answering (a bug of the sessions layer, `outpost shell`
// too: a client that leaves while the remote pty's input is full; reported, not fixed here).
test('terminal - flow control: input a remote program does not read holds the next input batch\'s answer back', async () => {
  const open = await call('POST', '/v1/sessions', bearer, { toNode: 'ship1', command: 'stty raw -echo; echo raw-now; sleep 1000' })
  const id = (open.body.session as { id: string }).id
  const res = await fetch(`${base}/v1/sessions/${id}/events`, { headers: bearer })
  const reader = res.body!.getReader()
  let seen = ''
  while (!seen.includes(Buffer.from('raw-now').toString('base64').slice(0, 8))) seen += new TextDecoder().decode((await reader.read()).value)
  const batch = [{ in: Buffer.alloc(48 * 1024, 'k').toString('base64') }]
  let sent = 0
  let held = false
  for (let seq = 0; seq < 500 && !held; seq++) {
    const answer = call('POST', `/v1/sessions/${id}/input`, bearer, { seq, lines: batch })
    held = await Promise.race([answer.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 2000))])
    sent += 48 * 1024
  }
  // Held after about the channel's window (1 MiB) and the pty's buffer, long before 24 MiB.
  assert.ok(held, `all ${sent} bytes were taken though nothing reads them`)
  assert.ok(sent < 8 * 1024 * 1024, `${sent} bytes taken before the answer waited`)
  await reader.cancel()
})

test.run()
