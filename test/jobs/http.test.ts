/**
 * Jobs through the HTTP API: POST /v1/jobs makes one, GET /v1/jobs[/ID] shows them, POST
 * /v1/jobs/ID/cancel cancels one, and GET /v1/events carries `event: job` as it goes. A real hub,
 * central with the API on, two labelled nodes.
 */
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, editYaml, freePort, section } from '../fixtures/cluster'
import { configure } from '../fixtures/configure'
import { untilLabels } from './fleet-helpers'

const TOKEN = 'test-token-jobs-0123456789'
let c: Cluster
let base = ''

async function call(method: string, route: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(base + route, { method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

interface Job { id: string; status: string; total: number; counts: Record<string, number>; nodes: { name: string; state: string; selector?: string }[] }

test.before(async () => {
  c = await Cluster.create(['ship1', 'ship2'])
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  configure(c, 'central', { api: { http: `127.0.0.1:${port}`, token: TOKEN }, jobs: { keep: 2 } })
  editYaml(c.node('ship1').config, (d) => { section(d, 'node').labels = { role: 'db' } })
  editYaml(c.node('ship2').config, (d) => { section(d, 'node').labels = { role: 'web' } })
  await c.startHub()
  for (const n of ['central', 'ship1', 'ship2']) await c.start(n)
  await untilLabels(c, (l) => l.find((n) => n.name === 'ship1')?.labels?.role === 'db' && l.find((n) => n.name === 'ship2')?.labels?.role === 'web')
})

test.after(async () => {
  await c.destroy()
})

test('jobs-http - POST /v1/jobs makes a job of a selector; GET shows it; events say how it goes', async () => {
  const frames: string[] = []
  const req = http.get(`${base}/v1/events`, { headers: { authorization: `Bearer ${TOKEN}` } })
  const res = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve))
  res.setEncoding('utf8')
  res.on('data', (d: string) => frames.push(d))
  try {
    const made = await call('POST', '/v1/jobs', { message: { toNodes: ['role in (db,web)'], method: 'cli.run', methodArgs: ['echo hi'] }, options: { batch: '50%', maxErrors: 1 } })
    assert.is(made.status, 201, JSON.stringify(made.body))
    const job = made.body.job as Job
    assert.is(job.total, 2)
    assert.equal(job.nodes.map((n) => [n.name, n.selector]), [['ship1', 'role in (db,web)'], ['ship2', 'role in (db,web)']])
    let got: Job | undefined
    for (const end = Date.now() + 20_000; ; await new Promise((r) => setTimeout(r, 100))) {
      got = (await call('GET', `/v1/jobs/${job.id}`)).body.job as Job
      if (got.status !== 'running') break
      assert.ok(Date.now() < end, JSON.stringify(got))
    }
    assert.is(got.status, 'done')
    assert.is(got.counts.ok, 2)
    // Each node's message is a request central sent: listed with its method (it was "", known from its reply only).
    for (const name of ['ship1', 'ship2']) {
      const rows = (await call('GET', `/v1/requests?toNode=${name}`)).body.requests as { method: string; final: boolean }[]
      assert.equal(rows.map((r) => [r.method, r.final]), [['cli.run', true]], name)
    }
    const list = await call('GET', '/v1/jobs')
    assert.is(list.status, 200)
    assert.equal((list.body.jobs as Job[]).map((j) => j.id), [job.id])
    // The stream told each node's end and the job's.
    const text = frames.join('')
    assert.match(text, new RegExp(`event: job\\ndata: \\{"id":"${job.id}","status":"running".*"node":\\{"name":"ship1","state":"ok"\\}`))
    assert.match(text, new RegExp(`event: job\\ndata: \\{"id":"${job.id}","status":"done"`))
  } finally {
    req.destroy()
  }
})

test('jobs-http - POST /v1/messages takes a selector in toNodes: only the matching node answers', async () => {
  const a = await call('POST', '/v1/messages?wait=1&timeout=30', { toNodes: ['role=db'], method: 'cli.run', methodArgs: ['echo from-db'] })
  assert.is(a.status, 200, JSON.stringify(a.body))
  assert.equal((a.body.accepted as { toNode: string }[]).map((x) => x.toNode), ['ship1'])
  const replies = a.body.replies as { fromNode: string; data?: string }[]
  assert.equal(replies.map((r) => [r.fromNode, r.data]), [['ship1', 'from-db\n']])
  const none = await call('POST', '/v1/messages', { toNodes: ['role=nothing'], method: 'node.ping' })
  assert.is(none.status, 400)
  assert.is((none.body.error as { code: string }).code, 'selector_no_match')
})

test('jobs-http - refusals: a bad option, an unknown job, a selector that matches nothing', async () => {
  const bad = await call('POST', '/v1/jobs', { message: { toNodes: ['role=db'], method: 'node.ping' }, options: { batch: '0' } })
  assert.is(bad.status, 400)
  assert.match(JSON.stringify(bad.body), /batch must be a number of nodes/)
  const none = await call('POST', '/v1/jobs', { message: { toNodes: ['role=nothing'], method: 'node.ping' } })
  assert.is(none.status, 400)
  assert.is((none.body.error as { code: string }).code, 'selector_no_match')
  const unknown = await call('GET', '/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV')
  assert.is(unknown.status, 404)
  assert.is((unknown.body.error as { code: string }).code, 'job_unknown')
  const cancel = await call('POST', '/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/cancel')
  assert.is(cancel.status, 404)
  const wrong = await call('DELETE', '/v1/jobs')
  assert.is(wrong.status, 405)
})

test('jobs-http - central keeps the newest jobs.keep ended jobs and removes older ones with their marks and replies', async () => {
  const before = (await call('GET', '/v1/jobs')).body.jobs as Job[]
  const made: string[] = []
  for (let i = 0; i < 3; i++) {
    const r = await call('POST', '/v1/jobs', { message: { toNodes: ['ship1', 'ship2'], method: 'cli.run', methodArgs: [`echo ${i}`] } })
    assert.is(r.status, 201, JSON.stringify(r.body))
    const id = (r.body.job as Job).id
    made.push(id)
    for (const end = Date.now() + 20_000; ((await call('GET', `/v1/jobs/${id}`)).body.job as Job).status === 'running'; await new Promise((res) => setTimeout(res, 100))) assert.ok(Date.now() < end)
  }
  await new Promise((r) => setTimeout(r, 100))
  const after = (await call('GET', '/v1/jobs')).body.jobs as Job[]
  assert.equal(after.map((j) => j.id), [made[2], made[1]])
  assert.is((await call('GET', `/v1/jobs/${made[0]}`)).status, 404)
  for (const j of before) assert.is((await call('GET', `/v1/jobs/${j.id}`)).status, 404)
  const files = fs.readdirSync(path.join(c.node('central').dataDir, 'jobs')).sort()
  assert.equal(files, [made[1], made[2]].flatMap((id) => [`${id}.json`, `${id}.replies`, `${id}.sent`]).sort())
})

test.run()
