/**
 * Prometheus metrics (api.metrics) end to end: a real hub, central and ship1 with metrics on,
 * ship2 without; counters are read from GET /metrics as Prometheus would.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, freePort, sendVia, type Proc } from './fixtures/cluster'
import { configure } from './fixtures/configure'

let c: Cluster
let hub: Proc
const url: Record<string, string> = {}

async function scrape(name: string): Promise<string> {
  const res = await fetch(url[name]!)
  assert.is(res.status, 200)
  assert.ok(String(res.headers.get('content-type')).startsWith('text/plain'))
  return res.text()
}

/** The value of one sample, e.g. value(text, 'outpost_messages_accepted_total', { method: 'cli.run' }); undefined when absent. */
function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4])
  }
  return undefined
}

async function until(what: string, fn: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

test.before(async () => {
  c = await Cluster.create(['ship1', 'ship2'])
  for (const name of ['central', 'ship1']) {
    const port = await freePort()
    url[name] = `http://127.0.0.1:${port}/metrics`
    configure(c, name, { api: { metrics: `127.0.0.1:${port}` } })
  }
  hub = await c.startHub()
  await c.start('central')
  await c.start('ship1')
  await c.start('ship2')
})

test.after(async () => {
  await c.destroy()
})

test('metrics - a command central → ship1 counts accepted/acked at central and delivered/ran at ship1', async () => {
  const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo metrics'] }])
  assert.is(r.replies.length, 1)
  let central = ''
  // The client gets the reply before central has run its reply method: wait for both counts.
  await until('the ACK and the reply method counted', async () => {
    central = await scrape('central')
    return (value(central, 'outpost_messages_acked_total', { method: 'cli.run' }) ?? 0) >= 1 &&
      (value(central, 'outpost_method_duration_seconds_count', { method: 'reply.file.append', result: 'ok' }) ?? 0) >= 1
  })
  assert.ok(value(central, 'outpost_messages_accepted_total', { method: 'cli.run' })! >= 1, central)
  // The reply arrived at central and ran its reply method there.
  assert.ok(value(central, 'outpost_messages_delivered_total', { method: 'reply.file.append' })! >= 1, central)
  assert.ok(value(central, 'outpost_method_duration_seconds_count', { method: 'reply.file.append', result: 'ok' })! >= 1, central)
  assert.is(value(central, 'outpost_transport_connected', { transport: 'tcp' }), 1)
  assert.is(value(central, 'outpost_info', { node: 'central' }), 1)
  assert.ok(value(central, 'process_resident_memory_bytes')! > 10_000_000)
  assert.ok(value(central, 'outpost_outbox_max_bytes')! > 0)

  const ship1 = await scrape('ship1')
  assert.ok(value(ship1, 'outpost_messages_delivered_total', { method: 'cli.run' })! >= 1, ship1)
  assert.ok(value(ship1, 'outpost_method_duration_seconds_count', { method: 'cli.run', result: 'ok' })! >= 1, ship1)
  assert.ok(value(ship1, 'outpost_messages_accepted_total', { method: 'reply.file.append' })! >= 1, ship1)
  assert.ok(value(ship1, 'outpost_method_duration_seconds_bucket', { method: 'cli.run', result: 'ok', le: '+Inf' })! >= 1, ship1)
})

test('metrics - outbox gauges show a waiting message; it expires with reason ttl_expired', async () => {
  await sendVia(c.node('central').socket, [{ toNode: 'nowhere', method: 'cli.run', methodArgs: ['true'], ttl: 2 }], { wait: false, allowUnknown: true })
  const text = await scrape('central')
  assert.ok(value(text, 'outpost_outbox_messages')! >= 1, text)
  assert.ok(value(text, 'outpost_outbox_bytes')! > 0, text)
  await until('the ttl expiry counted', async () => (value(await scrape('central'), 'outpost_messages_expired_total', { method: 'cli.run', reason: 'ttl_expired' }) ?? 0) >= 1)
})

test('metrics - a call methods.allow refuses is counted as denied at the receiver', async () => {
  const r = await sendVia(c.node('ship2').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['true'] }])
  assert.is((r.replies[0]!.error as { code: string }).code, 'denied')
  assert.ok(value(await scrape('ship1'), 'outpost_messages_denied_total', { method: 'cli.run' })! >= 1)
})

test('metrics - method names like Object.prototype members are labels like any other (counted, and the scrape still answers)', async () => {
  const names = ['constructor', 'toString', 'hasOwnProperty', 'valueOf']
  const r = await sendVia(c.node('central').socket, names.map((method) => ({ toNode: 'ship1', method })))
  assert.equal(r.replies.map((x) => (x.error as { code: string }).code), names.map(() => 'method_unknown'))
  const ship1 = await scrape('ship1')
  for (const method of names) {
    assert.is(value(ship1, 'outpost_messages_delivered_total', { method }), 1, `${method} at ship1`)
    assert.is(value(await scrape('central'), 'outpost_messages_accepted_total', { method }), 1, `${method} at central`)
  }
})

test('metrics - the transport state drops to 0 while the hub is away and a reconnect is counted', async () => {
  await hub.stop('SIGKILL')
  await until('connected 0', async () => value(await scrape('central'), 'outpost_transport_connected', { transport: 'tcp' }) === 0)
  hub = await c.startHub()
  await until('connected 1 again', async () => value(await scrape('central'), 'outpost_transport_connected', { transport: 'tcp' }) === 1, 30_000)
  assert.ok(value(await scrape('central'), 'outpost_transport_reconnects_total')! >= 1)
})

test('metrics - only GET /metrics is served', async () => {
  const other = await fetch(url.central!.replace('/metrics', '/v1/nodes'))
  assert.is(other.status, 404)
  assert.is(((await other.json()) as { error: { code: string } }).error.code, 'api_not_found')
  const post = await fetch(url.central!, { method: 'POST' })
  assert.is(post.status, 405)
})

test.run()
