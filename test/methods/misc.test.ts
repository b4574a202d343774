import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import errorLog from '../../methods/error-log'
import { METHODS } from '../../methods/index'
import { nodePing, nodePong } from '../../methods/node-ping'
import replyConsole, { setConsoleWriter } from '../../methods/reply-console'
import { defaultConfig } from '../../src/config'
import type { Envelope } from '../../src/wire/envelope'
import type { MethodContext } from '../../src/method'
import { nativeMethodName } from '../../methods/index'

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-methods-'))
let n = 0

test.after(() => fs.rmSync(root, { recursive: true, force: true }))

type Logged = Array<[string, string]>

function makeCtx(fields: Partial<Envelope> = {}): MethodContext & { logged: Logged } {
  const dataDir = path.join(root, String(n++))
  fs.mkdirSync(dataDir)
  const config = defaultConfig()
  config.dataDir = dataDir
  const logged: Logged = []
  const env: Envelope = { id: '01J00000000000000000000REP', toNode: 'central', fromNode: 'ship1', method: 'error.log', createdAt: Date.now(), ...fields }
  return {
    node: 'central', env, args: [], config, dataDir, signal: new AbortController().signal,
    log: (level, message) => { logged.push([level, message]) },
    logged,
  }
}

const ISO = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`

test('error.log - appends one line per call to <dataDir>/errors.log and logs a warning', async () => {
  const ctx = makeCtx()
  const base = ctx.env
  ctx.env = { ...base, error: { code: 'not_delivered', message: 'no ACK from ship9 after 10 attempts' } }
  assert.equal(await errorLog.run(ctx), {})
  ctx.env = { ...base, data: 'disk full\n' }
  await errorLog.run(ctx)
  ctx.env = { ...base, data: new TextEncoder().encode('two\nlines') }
  await errorLog.run(ctx)
  const lines = fs.readFileSync(path.join(ctx.dataDir, 'errors.log'), 'utf8').split('\n')
  assert.is(lines.length, 4)
  assert.is(lines[3], '')
  assert.match(lines[0]!, new RegExp(`^${ISO} ship1 not_delivered no ACK from ship9 after 10 attempts$`))
  assert.match(lines[1]!, new RegExp(`^${ISO} ship1 error disk full$`))
  assert.match(lines[2]!, new RegExp(`^${ISO} ship1 error two\\\\nlines$`))
  assert.is(ctx.logged.length, 3)
  assert.is(ctx.logged[0]![0], 'warn')
  assert.is(ctx.logged[0]![1], lines[0])
})

test('error.log - creates the data directory when it is missing', async () => {
  const ctx = makeCtx({ data: 'x' })
  ctx.dataDir = path.join(ctx.dataDir, 'new', 'dir')
  await errorLog.run(ctx)
  assert.ok(fs.existsSync(path.join(ctx.dataDir, 'errors.log')))
})

test('node.ping - answers pong with the node name and the time', async () => {
  const ctx = makeCtx()
  ctx.node = 'ship7'
  const r = await nodePing.run(ctx)
  assert.type(r.data, 'string')
  assert.match(r.data as string, new RegExp(`^pong ship7 ${ISO}$`))
})

test('node.pong - logs the answer and returns nothing', async () => {
  const ctx = makeCtx({ fromNode: 'ship7', data: 'pong ship7 2024-01-01T00:00:00.000Z' })
  assert.equal(await nodePong.run(ctx), {})
  assert.equal(ctx.logged, [['info', 'pong from ship7: pong ship7 2024-01-01T00:00:00.000Z']])
})

test('reply.console - prints [fromNode] and the output, error and stderr, to the installed writer', async () => {
  const out: string[] = []
  const previous = setConsoleWriter((t) => out.push(t))
  try {
    assert.equal(await replyConsole.run(makeCtx({ data: 'up 3 days\n' })), {})
    await replyConsole.run(makeCtx({ fromNode: 'ship2', data: new TextEncoder().encode('no newline'), error: { code: 'method_failed', message: 'bad' }, stderr: 'e\n' }))
    await replyConsole.run(makeCtx({ fromNode: 'ship3' }))
  } finally {
    setConsoleWriter(previous)
  }
  assert.equal(out, ['[ship1] up 3 days\n', '[ship2] no newline\n[error method_failed] bad\n[stderr]\ne\n', '[ship3] \n'])
})

test('methods - the registry lists each module under its own name; each alias names exactly one method', () => {
  assert.equal([...METHODS.keys()].sort(), ['agent.restart', 'agent.upgrade', 'cli.named', 'cli.run', 'cli.stream', 'config.deploy', 'config.get', 'config.rollback', 'config.set', 'error.log', 'file.chunk', 'file.commit', 'file.get', 'file.put', 'file.reply', 'file.tail', 'http.get', 'info.kernel', 'info.os', 'info.system', 'info.users', 'node.ping', 'node.pong', 'op.cancel', 'op.list', 'op.start', 'op.stop', 'reply.console', 'reply.file', 'reply.file.append', 'reply.job', 'reply.none', 'session.open', 'tunnel.listen', 'tunnel.open'])
  for (const [name, m] of METHODS) {
    assert.is(m.name, name)
    assert.is(m.kind, ['cli.stream', 'file.tail'].includes(name) ? 'stream' : 'unary')
    assert.ok(m.summary.length > 0)
    assert.is(nativeMethodName(name), name)
    for (const alias of m.aliases ?? []) assert.is(nativeMethodName(alias), name, alias)
  }
  const aliases = [...METHODS.values()].flatMap((m) => m.aliases ?? [])
  assert.is(new Set(aliases).size, aliases.length, 'no alias is claimed twice')
  assert.is(nativeMethodName('REQCliCommand'), 'cli.run')
  assert.is(nativeMethodName('sync.bash'), 'cli.run')
  assert.is(nativeMethodName('REQCopySrc'), 'file.get')
  assert.is(nativeMethodName('no.such'), undefined)
})

test.run()
