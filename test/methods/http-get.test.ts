import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import httpGet from '../../methods/http-get'
import { defaultConfig } from '../../src/config'
import type { MethodContext } from '../../src/method'
import { Cluster, freePort, sendVia } from '../fixtures/cluster'
import { rejectsCode } from '../helpers'

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-http-'))
let server: http.Server
let base = ''

test.before(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/ok') { res.setHeader('x-outpost-test', 'yes'); res.end('hello') }
    else if (req.url === '/big') { res.end('x'.repeat(10_000)) }
    else if (req.url === '/slow') { res.writeHead(200); res.write('partial') /* never ends */ }
    else { res.statusCode = 404; res.end('nope') }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
})

test.after(() => {
  server.closeAllConnections()
  server.close()
  fs.rmSync(tmp, { recursive: true, force: true })
})

function ctx(args: string[], o: { cap?: number; signal?: AbortSignal } = {}): MethodContext {
  const config = defaultConfig()
  config.dataDir = tmp
  if (o.cap !== undefined) config.methods.outputCap = o.cap
  return { node: 'ship1', env: { id: '01J0000000000000000000000A', toNode: 'ship1', fromNode: 'central', method: 'http.get', methodArgs: args, createdAt: Date.now() }, args, config, dataDir: tmp, signal: o.signal ?? new AbortController().signal, log: () => {} }
}

interface Got { status: number; headers: Record<string, string>; body: string; bodyBytes: number; truncated: boolean }
const parse = (r: { data?: Uint8Array | string }): Got => JSON.parse(String(r.data)) as Got

test('http.get - status, headers and body of a real local server', async () => {
  const r = await httpGet.run(ctx([`${base}/ok`]))
  const g = parse(r)
  assert.is(g.status, 200)
  assert.is(g.headers['x-outpost-test'], 'yes')
  assert.is(g.body, 'hello')
  assert.is(g.truncated, false)
  assert.is(r.exitCode, 0)
})

test('http.get - a 404 is a result with exit status 1', async () => {
  const r = await httpGet.run(ctx([`${base}/missing`]))
  assert.is(parse(r).status, 404)
  assert.is(parse(r).body, 'nope')
  assert.is(r.exitCode, 1)
})

test('http.get - the body is cut at methods.outputCap with the truncation mark', async () => {
  const g = parse(await httpGet.run(ctx([`${base}/big`], { cap: 100 })))
  assert.ok(g.truncated)
  assert.is(g.bodyBytes, 10_000)
  assert.ok(g.body.startsWith('x'.repeat(100) + '\n[outpost: output truncated at 100 bytes]'), g.body.slice(0, 160))
})

test('http.get - bad URL, refused port, unknown host and a timeout are error codes', async () => {
  await rejectsCode(httpGet.run(ctx(['not a url'])), 'url_invalid')
  await rejectsCode(httpGet.run(ctx(['ftp://127.0.0.1/x'])), 'url_invalid', 'ftp:')
  await rejectsCode(httpGet.run(ctx([])), 'method_args')
  const closed = await freePort()
  await rejectsCode(httpGet.run(ctx([`http://127.0.0.1:${closed}/`])), 'connection_refused', `127.0.0.1:${closed}`)
  await rejectsCode(httpGet.run(ctx(['http://no-such-host.invalid/'])), 'dns_failed', 'no-such-host.invalid')
  const abort = new AbortController()
  const p = httpGet.run(ctx([`${base}/slow`], { signal: abort.signal }))
  setTimeout(() => abort.abort(), 300)
  await rejectsCode(p, 'method_timeout')
})

test('http.get - an https server whose certificate the node does not trust is http_failed', async () => {
  const tlsDir = path.join(__dirname, '..', 'fixtures', 'tls')
  const server = https.createServer({ cert: fs.readFileSync(path.join(tlsDir, 'server.pem')), key: fs.readFileSync(path.join(tlsDir, 'server.key')) }, (_req, res) => res.end('secure'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const url = `https://127.0.0.1:${(server.address() as net.AddressInfo).port}/`
    await rejectsCode(httpGet.run(ctx([url])), 'http_failed', url)
  } finally {
    server.closeAllConnections()
    server.close()
  }
})

test('http.get - round trip through a cluster with the REQHttpGet alias; methodTimeout gives method_timeout', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'REQHttpGet', methodArgs: [`${base}/ok`] }])
    const g = JSON.parse(String(r.replies[0]!.data)) as Got
    assert.is(g.status, 200)
    assert.is(g.body, 'hello')
    const slow = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'http.get', methodArgs: [`${base}/slow`], methodTimeout: 1 }])
    assert.is((slow.replies[0]!.error as { code: string }).code, 'method_timeout')
  } finally {
    await c.destroy()
  }
})

test.run()
