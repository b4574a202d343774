import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, sendVia, type SendResult } from '../fixtures/cluster'
import { forker, killGroups, survivors, untilMembers, waitForPid } from '../fixtures/procs'

const groups = new Set<number>()
let c: Cluster

// node.ping is switched off in the config: op.start must not switch it on.
const ENABLED = ['cli.run', 'cli.stream', 'op.list', 'op.start', 'op.stop', 'op.cancel', 'reply.file', 'reply.file.append', 'reply.console', 'error.log', 'node.hello', 'node.pong']

test.before(async () => {
  c = await Cluster.create(['ship1'], { methods: { killGrace: 1, enabled: ENABLED } })
  await c.startHub()
  await c.start('central')
  await c.start('ship1')
})

test.after(async () => {
  killGroups(groups)
  await c.destroy()
})

const send = (msg: Record<string, unknown>, ms?: number): Promise<SendResult> =>
  sendVia(c.node('central').socket, [{ toNode: 'ship1', ...msg }], ms === undefined ? {} : { ms })

/** The single reply of a unary call, parsed: its JSON data or its error. */
async function call(method: string, methodArgs: string[] = [], extra: Record<string, unknown> = {}): Promise<{ data: Record<string, unknown>; error: { code: string; message: string } | undefined }> {
  const r = await send({ method, methodArgs, ...extra })
  assert.is(r.replies.length, 1, JSON.stringify(r.replies))
  const reply = r.replies[0]!
  const error = reply.error as { code: string; message: string } | undefined
  return { data: error ? {} : JSON.parse(String(reply.data)) as Record<string, unknown>, error }
}

interface Job { id: string; method: string; from: string; started: number }

test('op.list - lists every handler with its state, and the jobs running now', async () => {
  const pidFile = path.join(c.dir, 'pid-list')
  const running = send({ method: 'cli.stream', methodArgs: [`echo $$ > ${pidFile}; sleep 100`], methodTimeout: 60 }, 60_000)
  groups.add(await waitForPid(pidFile))
  const { data } = await call('op.list')
  const handlers = data.handlers as { name: string; kind: string; enabled: boolean }[]
  assert.equal(handlers.find((h) => h.name === 'cli.stream'), { ...handlers.find((h) => h.name === 'cli.stream')!, kind: 'stream', enabled: true })
  assert.is(handlers.find((h) => h.name === 'cli.run')?.kind, 'unary')
  assert.is(handlers.find((h) => h.name === 'node.ping')?.enabled, false, 'switched off in the config')
  const jobs = data.jobs as Job[]
  assert.is(jobs.length, 1, JSON.stringify(jobs))
  assert.is(jobs[0]!.method, 'cli.stream')
  assert.is(jobs[0]!.from, 'central')
  assert.ok(Math.abs(jobs[0]!.started - Date.now()) < 60_000)
  // steward's REQOpCommand ps is the same list.
  const ps = await call('REQOpCommand', [], { operation: { opCmd: 'ps' } })
  assert.equal((ps.data.jobs as Job[]).map((j) => j.id), [jobs[0]!.id])
  // Clean up through op.cancel.
  assert.is((await call('op.cancel', [jobs[0]!.id])).error, undefined)
  await running
})

test('op.cancel - stops a running stream: its group is killed and its final reply says cancelled', async () => {
  const pidFile = path.join(c.dir, 'pid-cancel')
  const running = send({ method: 'cli.stream', methodArgs: [forker(pidFile)], methodTimeout: 60 }, 60_000)
  const pgid = await waitForPid(pidFile)
  groups.add(pgid)
  const before = await untilMembers(pgid, 4)
  assert.ok(before.length >= 4, before.join('\n'))
  const id = ((await call('op.list')).data.jobs as Job[])[0]!.id
  const t0 = Date.now()
  const cancelled = await call('op.cancel', [id])
  assert.is(cancelled.error, undefined)
  assert.is(cancelled.data.cancelled, id)
  const r = await running
  assert.ok(Date.now() - t0 < 30_000)
  const last = r.replies[r.replies.length - 1]!
  assert.is(last.final, true)
  assert.is((last.error as { code: string }).code, 'cancelled')
  assert.match((last.error as { message: string }).message, /cancelled by central/)
  assert.ok(r.replies.map((x) => String(x.data ?? '')).join('').includes('started'))
  const left = await survivors(pgid)
  assert.equal(left, [], `processes of group ${pgid} survived op.cancel:\n${left.join('\n')}`)
  assert.equal((await call('op.list')).data.jobs, [])
})

test('op.cancel - stops a running cli.run too; an unknown id is method_failed', async () => {
  const pidFile = path.join(c.dir, 'pid-cancel-run')
  const running = send({ method: 'cli.run', methodArgs: [`echo $$ > ${pidFile}; sleep 100`], methodTimeout: 60 }, 60_000)
  groups.add(await waitForPid(pidFile))
  const id = ((await call('op.list')).data.jobs as Job[])[0]!.id
  assert.is((await call('op.cancel', [id])).error, undefined)
  const r = await running
  assert.is((r.replies[0]!.error as { code: string }).code, 'cancelled')
  const unknown = await call('op.cancel', ['01J00000000000000000000000'])
  assert.is(unknown.error?.code, 'method_failed')
  assert.match(unknown.error!.message, /no job/)
})

test('op.stop / op.start - switch a handler off and on at run time; op.* and config-disabled methods are guarded', async () => {
  assert.equal((await call('op.stop', ['cli.run'])).data, { node: 'ship1', method: 'cli.run', enabled: false })
  const refused = await send({ method: 'cli.run', methodArgs: ['echo hi'] })
  assert.is((refused.replies[0]!.error as { code: string }).code, 'method_disabled')
  assert.is(((await call('op.list')).data.handlers as { name: string; enabled: boolean }[]).find((h) => h.name === 'cli.run')?.enabled, false)
  // steward's form, with an alias name.
  assert.is((await call('REQOpCommand', [], { operation: { opCmd: 'startProc', opArg: { method: 'REQCliCommand' } } })).error, undefined)
  const ok = await send({ method: 'cli.run', methodArgs: ['echo hi'] })
  assert.is(ok.replies[0]!.data, 'hi\n')
  // What the config switched off stays off; op.* cannot be switched off; unknown names are named.
  assert.is((await call('op.start', ['node.ping'])).error?.code, 'method_disabled')
  assert.is((await call('op.stop', ['op.start'])).error?.code, 'method_failed')
  assert.is((await call('op.stop', ['no.such'])).error?.code, 'method_unknown')
  assert.is((await call('op.stop', [])).error?.code, 'method_failed')
})

test.run()
