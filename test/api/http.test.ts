/**
 * The HTTP API (api.http) end to end: a real hub, central with the API on, ship1 running the
 * methods. Requests go through fetch / node:http like any client's.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parseListen } from '../../src/api/http'
import { parseConfig } from '../../src/config'
import { ulid } from '../../src/wire/ulid'
import { BIN, Cluster, freePort } from '../fixtures/cluster'
import { configure } from '../fixtures/configure'
import { throwsCode } from '../helpers'

const TOKEN = 'test-token-0123456789abcdef'
let c: Cluster
let base = ''
let port = 0

interface Answer { status: number; body: Record<string, unknown>; text: string; headers: Headers }

async function call(method: string, route: string, opts: { body?: string; token?: string | null; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers }
  const token = opts.token === undefined ? TOKEN : opts.token
  if (token !== null) headers.authorization = `Bearer ${token}`
  if (opts.body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(base + route, { method, headers, ...(opts.body !== undefined ? { body: opts.body } : {}) })
  const text = await res.text()
  let body: Record<string, unknown> = {}
  try { body = JSON.parse(text) as Record<string, unknown> } catch { /* not JSON */ }
  return { status: res.status, body, text, headers: res.headers }
}

const code = (a: Answer): unknown => (a.body.error as { code?: string } | undefined)?.code

test.before(async () => {
  c = await Cluster.create(['ship1'])
  port = await freePort()
  base = `http://127.0.0.1:${port}`
  configure(c, 'central', { api: { http: `127.0.0.1:${port}`, token: TOKEN } })
  await c.startHub()
  await c.start('central')
  await c.start('ship1')
})

test.after(async () => {
  await c.destroy()
})

test('api-http - POST /v1/messages?wait=1 runs cli.run on another node and answers with its reply', async () => {
  const a = await call('POST', '/v1/messages?wait=1&timeout=30', { body: JSON.stringify({ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo hello-$((40+2))'] }) })
  assert.is(a.status, 200, a.text)
  assert.is(a.body.done, true)
  const accepted = a.body.accepted as { id: string; toNode: string }[]
  assert.is(accepted.length, 1)
  assert.is(accepted[0]!.toNode, 'ship1')
  const replies = a.body.replies as Record<string, unknown>[]
  assert.is(replies.length, 1, a.text)
  assert.is(replies[0]!.inReplyTo, accepted[0]!.id)
  assert.is(replies[0]!.data, 'hello-42\n')
  assert.is(replies[0]!.exitCode, 0)
  assert.is(replies[0]!.fromNode, 'ship1')

  // GET /v1/messages/:id: the outcome is remembered.
  const m = await call('GET', `/v1/messages/${accepted[0]!.id}`)
  assert.is(m.status, 200, m.text)
  assert.is(m.body.state, 'replied')
  assert.is(m.body.toNode, 'ship1')
  assert.is(m.body.method, 'cli.run')
  assert.is((m.body.replies as Record<string, unknown>[])[0]!.data, 'hello-42\n')
})

test('api-http - the same JSON as the socket: an array, {messages: […]}, fan-out; without wait 202 and the ids', async () => {
  const arr = await call('POST', '/v1/messages', { body: JSON.stringify([{ toNode: 'ship1', method: 'node.ping' }, { toNodes: ['ship1', 'central'], method: 'info.kernel' }]) })
  assert.is(arr.status, 202, arr.text)
  assert.is((arr.body.accepted as unknown[]).length, 3)
  const obj = await call('POST', '/v1/messages?wait=true', { body: JSON.stringify({ messages: [{ toNode: 'central', method: 'cli.run', methodArgs: ['exit 3'] }] }) })
  assert.is(obj.status, 200, obj.text)
  assert.is((obj.body.replies as Record<string, unknown>[])[0]!.exitCode, 3)
  // steward's format works here as on the socket.
  const st = await call('POST', '/v1/messages?wait=1', { body: JSON.stringify([{ toNodes: ['ship1'], method: 'REQCliCommand', methodArgs: ['echo', 'steward'], ACKTimeout: 5 }]) })
  assert.is(st.status, 200, st.text)
  assert.is((st.body.replies as Record<string, unknown>[])[0]!.data, 'steward\n')
})

test('api-http - GET /v1/messages/:id says queued while the receiver is away, failed after ttl, 404 when unknown', async () => {
  // 'nowhere' never connects: central has not heard of it (allowUnknown).
  const q = await call('POST', '/v1/messages?allowUnknown=1', { body: JSON.stringify({ toNode: 'nowhere', method: 'cli.run', methodArgs: ['true'], ttl: 2 }) })
  assert.is(q.status, 202, q.text)
  const id = (q.body.accepted as { id: string }[])[0]!.id
  const queued = await call('GET', `/v1/messages/${id}`)
  assert.is(queued.body.state, 'queued', queued.text)
  assert.is(queued.body.toNode, 'nowhere')
  let state = ''
  for (let i = 0; i < 100 && state !== 'failed'; i++) {
    await new Promise((r) => setTimeout(r, 100))
    state = String((await call('GET', `/v1/messages/${id}`)).body.state)
  }
  const failed = await call('GET', `/v1/messages/${id}`)
  assert.is(failed.body.state, 'failed', failed.text)
  assert.is((failed.body.error as { code: string }).code, 'ttl_expired')

  const none = await call('GET', `/v1/messages/${ulid()}`)
  assert.is(none.status, 404)
  assert.is(code(none), 'api_not_found')
  const bad = await call('GET', '/v1/messages/not-an-id')
  assert.is(bad.status, 400)
  assert.is(code(bad), 'api_bad_request')
})

test('api-http - GET /v1/events streams replies as they arrive (server-sent events)', async () => {
  const events: Record<string, unknown>[] = []
  let got: () => void = () => {}
  const arrived = new Promise<void>((resolve) => { got = resolve })
  const req = http.get(`${base}/v1/events`, { headers: { authorization: `Bearer ${TOKEN}` } })
  const res = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve))
  assert.is(res.statusCode, 200)
  assert.ok(String(res.headers['content-type']).startsWith('text/event-stream'))
  let buf = ''
  let want = ''
  res.setEncoding('utf8')
  res.on('data', (d: string) => {
    buf += d
    let end: number
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end)
      buf = buf.slice(end + 2)
      const data = block.split('\n').find((l) => l.startsWith('data: '))
      if (!block.includes('event: reply') || data === undefined) continue
      const env = JSON.parse(data.slice(6)) as Record<string, unknown>
      events.push(env)
      if (env.inReplyTo === want && env.final === true) got()
    }
  })
  const p = await call('POST', '/v1/messages', { body: JSON.stringify({ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo via-sse'] }) })
  want = (p.body.accepted as { id: string }[])[0]!.id
  await Promise.race([arrived, new Promise((_, reject) => setTimeout(() => reject(new Error(`no event for ${want}: ${JSON.stringify(events)}`)), 15_000))])
  const mine = events.find((e) => e.inReplyTo === want)!
  assert.is(mine.data, 'via-sse\n')
  assert.is(mine.fromNode, 'ship1')
  req.destroy()
})

test('api-http - GET /v1/nodes lists the fleet; GET /v1/status answers like the socket', async () => {
  let names: string[] = []
  for (let i = 0; i < 50 && !names.includes('ship1'); i++) {
    const n = await call('GET', '/v1/nodes')
    assert.is(n.status, 200)
    names = (n.body.nodes as { name: string }[]).map((x) => x.name)
    if (!names.includes('ship1')) await new Promise((r) => setTimeout(r, 100))
  }
  assert.ok(names.includes('ship1'), names.join(','))
  const s = await call('GET', '/v1/status')
  assert.is(s.body.node, 'central')
  assert.is(s.body.connected, true)
})

test('api-http - a missing or wrong token is 401 and nothing else: nothing is accepted', async () => {
  const id = ulid()
  const body = JSON.stringify({ id, toNode: 'ship1', method: 'cli.run', methodArgs: ['true'] })
  const answers = [
    await call('POST', '/v1/messages', { body, token: null }),
    await call('POST', '/v1/messages', { body, token: 'wrong' }),
    await call('POST', '/v1/messages', { body, token: TOKEN + 'x' }),
    await call('POST', '/v1/messages', { body, token: null, headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } }),
    await call('GET', '/v1/nodes', { token: '' }),
    await call('GET', '/no/such/route', { token: 'wrong' }),
  ]
  for (const a of answers) {
    assert.is(a.status, 401)
    assert.equal(a.body, { error: { code: 'api_unauthorized', message: 'unauthorized' } })
    assert.is(a.headers.get('www-authenticate'), 'Bearer realm="outpost"')
  }
  await new Promise((r) => setTimeout(r, 300))
  const m = await call('GET', `/v1/messages/${id}`)
  assert.is(m.status, 404, m.text)
  assert.ok(!fs.existsSync(path.join(c.node('central').dataDir, 'replies', 'ship1', `${id}.log`)))
})

test('api-http - bad requests: bad JSON 400 api_bad_request, bad message 400 envelope_invalid, 404, 405, 413', async () => {
  const bad = await call('POST', '/v1/messages', { body: '{"toNode": "ship1", ' })
  assert.is(bad.status, 400)
  assert.is(code(bad), 'api_bad_request')
  const inv = await call('POST', '/v1/messages', { body: JSON.stringify({ toNode: 'ship1' }) })
  assert.is(inv.status, 400)
  assert.is(code(inv), 'envelope_invalid')
  const empty = await call('POST', '/v1/messages', { body: JSON.stringify({ messages: [] }) })
  assert.is(code(empty), 'api_bad_request')
  const wait = await call('POST', '/v1/messages?wait=1&timeout=-1', { body: JSON.stringify({ toNode: 'ship1', method: 'node.ping' }) })
  assert.is(code(wait), 'api_bad_request')
  const nf = await call('GET', '/v2/anything')
  assert.is(nf.status, 404)
  assert.is(code(nf), 'api_not_found')
  const na = await call('GET', '/v1/messages')
  assert.is(na.status, 405)
  assert.is(code(na), 'api_method_not_allowed')
  assert.is(na.headers.get('allow'), 'POST')
  const big = await call('POST', '/v1/messages', { body: JSON.stringify({ toNode: 'ship1', method: 'cli.run', data: 'x'.repeat(2 * 1024 * 1024) }) })
  assert.is(big.status, 413)
  assert.is(code(big), 'api_too_large')
  // The API still answers afterwards.
  assert.is((await call('GET', '/v1/status')).status, 200)
})

/**
 * Raw bytes to the API: `head` first, then `body` in pieces until an answer comes (as curl
 * does), then wait for the close. Resolves with everything the server sent.
 */
function raw(head: string, body: Buffer[] = [], pauseForContinue = false): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1')
    let got = ''
    const limit = setTimeout(() => sock.destroy(), 20_000)
    sock.setEncoding('latin1')
    const pump = (): void => {
      while (body.length > 0 && !/^HTTP\/1\.1 [2-5]/m.test(got) && !sock.destroyed) {
        if (!sock.write(body.shift()!)) { sock.once('drain', pump); return }
      }
    }
    sock.on('data', (d: string) => { got += d; if (pauseForContinue && got.startsWith('HTTP/1.1 100')) pump() })
    sock.on('close', () => { clearTimeout(limit); resolve(got) })
    sock.on('error', () => {})
    sock.on('connect', () => {
      sock.write(head)
      if (!pauseForContinue) pump() // else the body goes only after a 100 Continue
    })
  })
}

const statuses = (text: string): number[] => [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]))

test('api-http - a path starting with // is a path, not a host: //evil/v1/nodes is no route, //x without the token is 401', async () => {
  // Read against a base URL, `//evil/v1/nodes` named the host evil and the route /v1/nodes (served),
  // and `//x` the route / (the console's page, so a POST there got 405 without the token).
  const hosty = await raw(`GET //evil/v1/nodes HTTP/1.1\r\nhost: outpost\r\nauthorization: Bearer ${TOKEN}\r\nconnection: close\r\n\r\n`)
  assert.equal(statuses(hosty), [404], hosty)
  assert.match(hosty, /api_not_found/)
  const noToken = await raw('POST //x HTTP/1.1\r\nhost: outpost\r\ncontent-length: 0\r\n\r\n')
  assert.equal(statuses(noToken), [401], noToken)
})

test('api-http - a receiver central never heard of is 400 node_unknown and nothing is accepted; allowUnknown takes it; more than delivery.maxFanOut is 400 fan_out_too_large', async () => {
  const id = ulid()
  const unknown = await call('POST', '/v1/messages', { body: JSON.stringify({ id, toNodes: ['ship1', 'ship-typo'], method: 'node.ping', ttl: 1 }) })
  assert.is(unknown.status, 400, unknown.text)
  assert.is(code(unknown), 'node_unknown')
  assert.match(String((unknown.body.error as { message: string }).message), /ship-typo is not a node central has heard of/)
  assert.is((await call('GET', `/v1/messages/${id}`)).status, 404, 'nothing was accepted, not even the message to ship1')
  assert.not.ok(fs.existsSync(path.join(c.node('central').dataDir, 'replies', 'ship-typo')), 'no reply directory')
  const notBool = await call('POST', '/v1/messages', { body: JSON.stringify({ messages: [{ toNode: 'ship-typo', method: 'node.ping' }], allowUnknown: 'yes' }) })
  assert.is(notBool.status, 400, notBool.text)
  assert.is(code(notBool), 'api_bad_request')
  const wide = await call('POST', '/v1/messages?allowUnknown=1', { body: JSON.stringify({ toNodes: Array.from({ length: 10_001 }, (_, i) => `n${i}`), method: 'node.ping' }) })
  assert.is(wide.status, 400, wide.text.slice(0, 300))
  assert.is(code(wide), 'fan_out_too_large')

  const field = await call('POST', '/v1/messages', { body: JSON.stringify({ messages: [{ toNode: 'ship-typo', method: 'node.ping', ttl: 1 }], allowUnknown: true }) })
  assert.is(field.status, 202, field.text)
  const query = await call('POST', '/v1/messages?allowUnknown=1', { body: JSON.stringify({ toNode: 'ship-typo2', method: 'node.ping', ttl: 1 }) })
  assert.is(query.status, 202, query.text)
  assert.equal((query.body.accepted as { toNode: string }[]).map((a) => a.toNode), ['ship-typo2'])
})

test('api-http - POST /v1/withdraw takes back a message never sent (its outcome: withdrawn); a bad body is 400', async () => {
  const sent = await call('POST', '/v1/messages?allowUnknown=1', { body: JSON.stringify({ toNode: 'ghost', method: 'node.ping' }) })
  assert.is(sent.status, 202, sent.text)
  const id = (sent.body.accepted as { id: string }[])[0]!.id
  // In flight until the hub refuses it (ghost is away); then it waits here, never sent.
  let w: Answer
  for (const end = Date.now() + 20_000; ; await new Promise((r) => setTimeout(r, 50))) {
    w = await call('POST', '/v1/withdraw', { body: JSON.stringify({ ids: [id] }) })
    assert.is(w.status, 200, w.text)
    if ((w.body.withdraw as Record<string, string>)[id] !== 'in_flight') break
    assert.ok(Date.now() < end, 'the hub never refused the message to ghost')
  }
  assert.equal(w.body, { withdraw: { [id]: 'withdrawn' } })
  assert.equal((await call('POST', '/v1/withdraw', { body: JSON.stringify({ ids: [id] }) })).body, { withdraw: { [id]: 'unknown' } })
  for (const end = Date.now() + 10_000; ; await new Promise((r) => setTimeout(r, 50))) {
    const m = await call('GET', `/v1/messages/${id}`)
    if (m.body.state === 'failed') { assert.is((m.body.error as { code: string }).code, 'withdrawn', m.text); break }
    assert.ok(Date.now() < end, m.text)
  }
  for (const body of ['nope', '[]', '{"ids":[]}', '{"ids":[1]}']) {
    const bad = await call('POST', '/v1/withdraw', { body })
    assert.is(bad.status, 400, body)
    assert.is(code(bad), 'api_bad_request', body)
  }
  assert.is((await call('GET', '/v1/withdraw')).status, 405)
})

test('api-http - Expect: without the token gets the 401 and nothing else (no 100 Continue, no 417)', async () => {
  const body = JSON.stringify({ toNode: 'ship1', method: 'node.ping' })
  for (const expect of ['100-continue', 'something-else']) {
    const got = await raw(`POST /v1/messages HTTP/1.1\r\nhost: x\r\nauthorization: Bearer wrong\r\nexpect: ${expect}\r\ncontent-length: ${body.length}\r\n\r\n`, [Buffer.from(body)], true)
    assert.equal(statuses(got), [401], got)
    assert.ok(got.includes('{"error":{"code":"api_unauthorized","message":"unauthorized"}}'), got)
  }
  // With the token, 100 Continue invites the body, which is then taken.
  const ok = await raw(`POST /v1/messages HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\nexpect: 100-continue\r\nconnection: close\r\ncontent-length: ${body.length}\r\n\r\n`, [Buffer.from(body)], true)
  assert.equal(statuses(ok), [100, 202], ok)
  // An expectation the API does not know is ignored rather than refused.
  const other = await raw(`GET /v1/status HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\nexpect: something-else\r\nconnection: close\r\n\r\n`)
  assert.equal(statuses(other), [200], other)
})

test('api-http - a body over the limit is answered 413 while the client is still sending, not cut off with a reset', async () => {
  const chunk = Buffer.alloc(1 << 20, 'x')
  const declared = await raw(`POST /v1/messages HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: ${64 << 20}\r\n\r\n`, Array.from({ length: 64 }, () => chunk))
  assert.equal(statuses(declared), [413], declared.slice(0, 300))
  assert.match(declared, /"code":"api_too_large"/)
  const part = Buffer.concat([Buffer.from('100000\r\n'), chunk, Buffer.from('\r\n')])
  const chunked = await raw(`POST /v1/messages HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\ntransfer-encoding: chunked\r\n\r\n`, Array.from({ length: 64 }, () => part))
  assert.equal(statuses(chunked), [413], chunked.slice(0, 300))
  const unauthorized = await raw(`POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: ${64 << 20}\r\n\r\n`, Array.from({ length: 64 }, () => chunk))
  assert.equal(statuses(unauthorized), [401], unauthorized.slice(0, 300))
  assert.is((await call('GET', '/v1/status')).status, 200)
})

test('api-http - an operation.opArg nested too deep is 400 envelope_invalid, not a 500', async () => {
  const deep = '['.repeat(5000) + ']'.repeat(5000)
  const a = await call('POST', '/v1/messages', { body: `{"toNode":"ship1","method":"op.stop","operation":{"opCmd":"stopProc","opArg":${deep}}}` })
  assert.is(a.status, 400, a.text)
  assert.is(code(a), 'envelope_invalid')
  assert.match(String((a.body.error as { message: string }).message), /operation\.opArg/)
})

test('api-http - a wait that runs out answers 202 with the replies so far and the pending ids', async () => {
  const a = await call('POST', '/v1/messages?wait=1&timeout=1', { body: JSON.stringify({ toNode: 'ship1', method: 'cli.run', methodArgs: ['sleep 3'] }) })
  assert.is(a.status, 202, a.text)
  assert.is(a.body.done, false)
  assert.equal(a.body.pending, [(a.body.accepted as { id: string }[])[0]!.id])
})

test('api-http - api.http without api.token is a config error naming api.token; agent exits 2', () => {
  throwsCode(() => parseConfig('api:\n  http: "127.0.0.1:8080"\n', 'x.yaml'), 'config_invalid', 'api.token', 'line 2')
  throwsCode(() => parseConfig('api:\n  http: "not a port"\n  token: t\n', 'x.yaml'), 'config_invalid', 'api.http')
  parseConfig('api:\n  http: "8080"\n  token: t\n  metrics: "[::1]:9464"\n', 'x.yaml')
  assert.equal(parseListen('8080'), { host: '127.0.0.1', port: 8080 })
  assert.equal(parseListen('[::1]:9464'), { host: '::1', port: 9464 })
  assert.equal(parseListen('0.0.0.0:80'), { host: '0.0.0.0', port: 80 })
  const file = path.join(c.dir, 'notoken.yaml')
  fs.writeFileSync(file, `node: { name: lone }\ndataDir: ${path.join(c.dir, 'lone')}\napi: { http: "127.0.0.1:1" }\n`)
  const r = spawnSync(process.execPath, [BIN, 'agent', '--config', file], { encoding: 'utf8', timeout: 20_000 })
  assert.is(r.status, 2, r.stderr)
  assert.ok(r.stderr.includes('api.token'), r.stderr)
})

test('api-http - GET /v1/messages/:id after central restarts finds the reply in its reply file', async () => {
  const sent = await call('POST', '/v1/messages?wait=1&timeout=30', { body: JSON.stringify({ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo kept-$((6*7)); exit 5'] }) })
  assert.is(sent.status, 200, sent.text)
  const id = (sent.body.accepted as { id: string }[])[0]!.id
  // A restart forgets the recent requests: what is left is the reply file.
  await c.node('central').proc!.stop()
  await c.start('central')
  const m = await call('GET', `/v1/messages/${id}`)
  assert.is(m.status, 200, m.text)
  assert.is(m.body.source, 'replyFile', m.text)
  assert.is(m.body.state, 'replied')
  assert.is(m.body.toNode, 'ship1')
  assert.is(m.body.replyFile, `replies/ship1/${id}.log`)
  assert.match(String(m.body.text), /kept-42\n\[exit 5\]/)
})

test.run()
