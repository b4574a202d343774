/**
 * Structured logs (text / JSON lines, levels), --debug frame traces on every transport, and
 * the audit log (<dataDir>/audit.log, size-rotated).
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { AuditLog } from '../src/audit'
import { createLogger } from '../src/log'
import { DiskGuard } from '../src/lib/disk-guard'
import { Cluster, KINDS, Proc, sendVia, status, tmpDir } from './fixtures/cluster'
import { configure } from './fixtures/configure'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const at = (): Date => new Date('2026-11-22T06:00:00.000Z')

test('log - JSON lines carry time, level, component, msg and fields; text lines the same as key=value', () => {
  const lines: string[] = []
  const root = createLogger({ level: 'info', format: 'json', file: null, write: (l) => lines.push(l), now: at })
  root.child('tcp').log('warn', 'reconnecting', { attempt: 3, server: 'tcp://hub:7430' })
  root.log('debug', 'hidden at info')
  assert.is(lines.length, 1)
  assert.equal(JSON.parse(lines[0]!), { time: '2026-11-22T06:00:00.000Z', level: 'warn', component: 'tcp', msg: 'reconnecting', attempt: 3, server: 'tcp://hub:7430' })
  const text: string[] = []
  const t = createLogger({ level: 'info', format: 'text', file: null, write: (l) => text.push(l), now: at })
  t.child('hub').log('info', 'node came online', { node: 'ship1', note: 'two words' })
  assert.is(text[0], '2026-11-22T06:00:00.000Z info  hub: node came online node=ship1 note="two words"\n')
})

test('log - setLevel reaches every child at once (config.set log.level); --debug keeps trace on', () => {
  const lines: string[] = []
  const root = createLogger({ level: 'warn', format: 'text', file: null, write: (l) => lines.push(l), now: at })
  const child = root.child('dispatch')
  child.log('info', 'one')
  root.setLevel('debug')
  child.log('debug', 'two')
  assert.is(lines.length, 1)
  assert.match(lines[0]!, /debug dispatch: two/)
  assert.is(root.trace, undefined)
  const dbg = createLogger({ level: 'error', format: 'text', file: null, debug: true, write: (l) => lines.push(l), now: at })
  dbg.setLevel('error')
  assert.ok(dbg.trace)
})

test('audit - rotates by size and keeps audit.files old files', async () => {
  const dir = tmpDir()
  try {
    const audit = new AuditLog({ dir, maxBytes: 4096, files: 2, maxDataBytes: 16, log: () => {} })
    for (let i = 0; i < 200; i++) {
      audit.record({ type: 'delivered', id: `id-${i}`, toNode: 'ship1', method: 'cli.run' })
      if (i % 20 === 0) await sleep(1) // batches
    }
    audit.record({ type: 'accepted', env: { id: 'big', toNode: 'ship1', fromNode: 'central', method: 'cli.run', methodArgs: ['x'], data: 'x'.repeat(100), createdAt: 1 } })
    audit.close()
    const files = fs.readdirSync(dir).sort()
    assert.equal(files, ['audit.log', 'audit.log.1', 'audit.log.2'])
    for (const f of files) assert.ok(fs.statSync(path.join(dir, f)).size <= 4096 + 200, f)
    const last = fs.readFileSync(path.join(dir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    const big = last.at(-1)!
    assert.is(big.event, 'accepted')
    assert.equal((big.env as Record<string, unknown>).dataBytes, 100)
    assert.is((big.env as Record<string, unknown>).data, undefined)
    assert.is(last[0]!.event, 'delivered')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

function auditLines(dataDir: string): Record<string, unknown>[] {
  const f = path.join(dataDir, 'audit.log')
  if (!fs.existsSync(f)) return []
  return fs.readFileSync(f, 'utf8').trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
}

async function until<T>(what: string, fn: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = fn()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

test('audit - accepted and delivered lines are valid JSON whatever their text holds (quotes, backslashes, control and non-ASCII characters)', () => {
  const dir = tmpDir()
  try {
    const audit = new AuditLog({ dir, maxBytes: 1024 * 1024, files: 2, maxDataBytes: 64, log: () => {}, now: at })
    const odd = 'a"b\\c\n\u0001é☃\ud800'
    const env = { id: `01J${odd}`, toNode: `n${odd}`, fromNode: 'central', method: `m.${odd}`, inReplyTo: odd, methodArgs: [odd], data: odd, error: { code: 'x', message: odd }, final: true, createdAt: 1, ttl: Number.NaN }
    audit.record({ type: 'accepted', env })
    audit.record({ type: 'delivered', id: odd, toNode: odd, method: odd })
    audit.close()
    const text = fs.readFileSync(path.join(dir, 'audit.log'), 'utf8').trim().split('\n')
    const [accepted, delivered] = text.map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.equal(accepted, { time: at().toISOString(), event: 'accepted', id: env.id, fromNode: 'central', toNode: env.toNode, method: env.method, inReplyTo: odd, env: JSON.parse(JSON.stringify(env)) })
    assert.equal(delivered, { time: at().toISOString(), event: 'delivered', id: odd, toNode: odd, method: odd })
    // Byte for byte what JSON.stringify writes for them.
    assert.equal(text, [JSON.stringify(accepted), JSON.stringify(delivered)])
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('audit - lines of plain messages, on the clock and across flushes, are the text JSON.stringify writes for them', async () => {
  const dir = tmpDir()
  try {
    const audit = new AuditLog({ dir, maxBytes: 1024 * 1024, files: 2, maxDataBytes: 4096, log: () => {} })
    const want: string[] = []
    for (let i = 0; i < 300; i++) {
      const env = { method: 'node.pong', data: 'x'.repeat(120), id: `01JAAAAAAAAAAAAAAAAAAA${String(i).padStart(4, '0')}`, toNode: 'nodeB', fromNode: 'nodeA', createdAt: 1765000000000 + i, ackTimeout: 30, retries: 3, ttl: 3600, replyMethod: 'reply.result' }
      audit.record({ type: 'accepted', env })
      audit.record({ type: 'delivered', id: env.id, toNode: env.toNode, method: env.method })
      want.push(JSON.stringify({ event: 'accepted', id: env.id, fromNode: env.fromNode, toNode: env.toNode, method: env.method, env }), JSON.stringify({ event: 'delivered', id: env.id, toNode: env.toNode, method: env.method }))
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 3))
    }
    audit.close()
    const lines = fs.readFileSync(path.join(dir, 'audit.log'), 'utf8').split('\n')
    assert.is(lines.pop(), '', 'the last line ends with a newline')
    assert.is(lines.length, want.length)
    for (const [i, l] of lines.entries()) {
      const m = /^\{"time":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)",(.*)$/.exec(l)
      assert.ok(m !== null, l)
      assert.is(`{${m![2]}`, want[i])
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('audit - a run line is the text JSON.stringify writes for it, whatever its names hold, with and without an exit code and an error', () => {
  const dir = tmpDir()
  try {
    const audit = new AuditLog({ dir, maxBytes: 1024 * 1024, files: 2, maxDataBytes: 64, log: () => {}, now: at })
    const odd = 'a"b\\c\n\u0001é☃\ud800'
    const runs = [
      { type: 'run' as const, id: '01JAAAAAAAAAAAAAAAAAAAAAAA', fromNode: 'central', method: 'node.pong', ms: 0.012 },
      { type: 'run' as const, id: `01J${odd}`, fromNode: `n${odd}`, method: `m.${odd}`, ms: 1500, exitCode: 3, error: { code: 'method_failed', message: odd } },
      { type: 'run' as const, id: 'x', fromNode: 'y', method: 'cli.run', ms: 2, exitCode: 0 },
    ]
    for (const ev of runs) audit.record(ev)
    audit.close()
    const lines = fs.readFileSync(path.join(dir, 'audit.log'), 'utf8').trim().split('\n')
    assert.equal(lines, runs.map((ev) => JSON.stringify({ time: at().toISOString(), event: 'run', id: ev.id, fromNode: ev.fromNode, method: ev.method, ms: ev.ms, exitCode: ev.exitCode, error: ev.error })))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('audit - on a nearly full disk lines are skipped, with one log line when they stop and one when they resume', async () => {
  const dir = tmpDir()
  const MIB = 1024 * 1024
  try {
    let free = 100 * MIB
    const said: string[] = []
    const log = (level: string, message: string): void => { said.push(`${level} ${message}`) }
    const disk = new DiskGuard({ dir, floor: 6 * MIB, what: 'audit.log, reply files and errors.log', log, free: () => free })
    const audit = new AuditLog({ dir, maxBytes: MIB, files: 2, maxDataBytes: 16, log, disk })
    const file = path.join(dir, 'audit.log')
    const delivered = (i: number) => ({ type: 'delivered' as const, id: `id-${i}`, toNode: 'ship1', method: 'cli.run' })
    audit.record(delivered(0))
    await sleep(5)
    const before = fs.statSync(file).size
    assert.ok(before > 0)
    // Below the floor: 50 batches skipped, one line.
    free = 5 * MIB
    for (let i = 1; i <= 50; i++) {
      audit.record(delivered(i))
      await sleep(1)
    }
    assert.is(fs.statSync(file).size, before, 'audit.log did not grow')
    assert.is(said.length, 1, said.join('\n'))
    assert.match(said[0]!, /^warn disk: 5\.0 MiB left on the disk of .*, which keeps 6\.0 MiB free for the outbox's records: audit\.log, reply files and errors\.log are not written until space is freed$/)
    // Just above the floor is not enough to resume (no line pair for each few bytes).
    free = 6.5 * MIB
    audit.record(delivered(51))
    await sleep(5)
    assert.is(fs.statSync(file).size, before)
    // Space is back: written again, one more line saying what was skipped.
    free = 50 * MIB
    audit.record(delivered(52))
    await sleep(5)
    audit.close()
    const ids = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { id: string }).id)
    assert.equal(ids, ['id-0', 'id-52'])
    assert.is(said.length, 2, said.join('\n'))
    assert.match(said[1]!, /^info disk: 50\.0 MiB free again on the disk of .*: audit\.log, reply files and errors\.log are written again \(51 writes of 0\.0 MiB were skipped meanwhile\)$/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('log - a log file stops on a nearly full disk with one line saying so, and says when it goes on', () => {
  const dir = tmpDir()
  const MIB = 1024 * 1024
  try {
    let free = 100 * MIB
    const file = path.join(dir, 'outpost.log')
    const log = createLogger({ level: 'info', format: 'text', file, diskFloor: 5 * MIB, diskFree: () => free, now: at })
    log.log('info', 'one')
    free = 4 * MIB
    for (let i = 0; i < 100; i++) log.log('info', `skipped ${i}`)
    free = 50 * MIB
    log.log('info', 'two')
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => l.replace(/^\S+ /, ''))
    assert.is(lines.length, 4, lines.join('\n'))
    assert.is(lines[0], 'info  one')
    assert.match(lines[1]!, /^warn  disk: 4\.0 MiB left on the disk of .*: log lines to .*outpost\.log are not written until space is freed$/)
    assert.match(lines[2]!, /^info  disk: 50\.0 MiB free again .*: log lines to .*outpost\.log are written again \(100 writes of 0\.0 MiB were skipped meanwhile\)$/)
    assert.is(lines[3], 'info  two')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('audit - records accepted (the whole envelope), delivered, run, denied and expired, on both ends; JSON log lines', async () => {
  const c = await Cluster.create(['ship1'], { log: { level: 'info', format: 'json' } })
  try {
    configure(c, 'ship1', { methods: { enabled: ['cli.run', 'node.*', 'reply.*'] } })
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const central = c.node('central').dataDir
    const ship1 = c.node('ship1').dataDir
    const ok = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo audited'], directory: 'd', fileName: 'f.txt' }])
    const id = ok.accepted[0]!.id
    const bad = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'http.get', methodArgs: ['http://127.0.0.1:1/'] }])
    const badId = bad.accepted[0]!.id
    const lost = await sendVia(c.node('central').socket, [{ toNode: 'ghost', method: 'node.ping', ttl: 1 }], { ms: 8000, allowUnknown: true })
    const lostId = lost.accepted[0]!.id
    assert.is((lost.replies[0]!.error as { code: string }).code, 'ttl_expired')

    const accepted = await until('accepted', () => auditLines(central).find((l) => l.event === 'accepted' && l.id === id))
    const env = accepted.env as Record<string, unknown>
    assert.equal(env.methodArgs, ['echo audited'])
    assert.is(env.toNode, 'ship1')
    assert.is(env.fromNode, 'central')
    assert.is(env.directory, 'd')
    assert.is(typeof accepted.time, 'string')
    await until('delivered', () => auditLines(central).find((l) => l.event === 'delivered' && l.id === id))
    await until('expired', () => auditLines(central).find((l) => l.event === 'expired' && l.id === lostId && l.reason === 'ttl_expired'))
    // The reply came back: accepted at ship1 (its outbox), run as a reply method at central.
    await until('reply run at central', () => auditLines(central).find((l) => l.event === 'run' && l.method === 'reply.file.append'))
    const run = await until('run at ship1', () => auditLines(ship1).find((l) => l.event === 'run' && l.id === id))
    assert.is(run.exitCode, 0)
    assert.is(run.fromNode, 'central')
    const denied = await until('denied at ship1', () => auditLines(ship1).find((l) => l.event === 'denied' && l.id === badId))
    assert.is((denied.error as { code: string }).code, 'method_disabled')
    await until('reply accepted at ship1', () => auditLines(ship1).find((l) => l.event === 'accepted' && l.inReplyTo === id))

    // Heartbeats (audit.exclude: [node.hello] by default) are left out.
    assert.not.ok(auditLines(central).some((l) => l.method === 'node.hello'))

    // The accepted line is enough to send the message again.
    const again = await sendVia(c.node('central').socket, [{ ...env, id: undefined, fromNode: undefined, createdAt: undefined }])
    assert.is(again.replies[0]!.data, 'audited\n')

    // log.format json: every line of the agent's log is a JSON object.
    const out = c.node('ship1').proc!.output.trim().split('\n')
    assert.ok(out.length > 3)
    for (const l of out) {
      const o = JSON.parse(l) as Record<string, unknown>
      assert.ok(typeof o.time === 'string' && typeof o.level === 'string' && typeof o.msg === 'string', l)
    }
    assert.ok(out.some((l) => (JSON.parse(l) as { component?: string }).component === 'tcp'))
  } finally {
    await c.destroy()
  }
})

for (const kind of KINDS) {
  test(`log - --debug traces every frame on ${kind}, payloads abbreviated to size and a hex head`, async () => {
    const c = await Cluster.create(['ship1'], {}, kind)
    try {
      await c.startServer()
      configure(c, 'ship1', { log: { level: 'warn' } })
      await c.start('central')
      const n = c.node('ship1')
      n.proc = new Proc(['agent', '--config', n.config, '--debug'])
      const end = Date.now() + 15_000
      while (!(await status(n.socket).catch(() => undefined))?.connected) {
        if (Date.now() > end) throw new Error(n.proc.output)
        await sleep(50)
      }
      const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo traced'] }])
      assert.is(r.replies[0]!.data, 'traced\n')
      await sleep(200)
      const out = n.proc.output
      // In: the request; out: its ACK and the reply. Sizes and hex, never whole payloads.
      assert.match(out, new RegExp(`${kind} ←.* \\d+ B [0-9a-f]{16,64}`), out.slice(-3000))
      assert.match(out, new RegExp(`${kind} →.* \\d+ B [0-9a-f]{16,64}`), out.slice(-3000))
      assert.not.match(out, /echo traced/)
      assert.match(out, / trace /)
    } finally {
      await c.destroy()
    }
  })
}

test.run()
