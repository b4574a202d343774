import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import cliNamed from '../../methods/cli-named'
import { defaultConfig } from '../../src/config'
import type { MethodContext } from '../../src/method'
import { BIN, Cluster, sendVia } from '../fixtures/cluster'
import { configure } from '../fixtures/configure'
import { rejectsCode } from '../helpers'

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-named-'))
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }))

function ctx(args: string[]): MethodContext {
  const config = defaultConfig()
  config.dataDir = tmp
  config.methods.commands = { hello: 'echo hello from $0', both: 'echo out; echo err >&2; exit 4' }
  return { node: 'ship1', env: { id: '01J0000000000000000000000A', toNode: 'ship1', fromNode: 'central', method: 'cli.named', methodArgs: args, createdAt: Date.now() }, args, config, dataDir: tmp, signal: new AbortController().signal, log: () => {} }
}

const text = (v: Uint8Array | string | undefined): string => (v === undefined ? '' : typeof v === 'string' ? v : Buffer.from(v).toString('utf8'))

test('cli.named - runs a configured command through methods.shell, with stdout, stderr and exit code', async () => {
  const r = await cliNamed.run(ctx(['hello']))
  assert.is(text(r.data), 'hello from /bin/sh\n')
  assert.is(r.exitCode, 0)
  const b = await cliNamed.run(ctx(['both']))
  assert.equal([text(b.data), text(b.stderr), b.exitCode], ['out\n', 'err\n', 4])
})

test('cli.named - an unknown name, extra arguments and no name are refused, and nothing runs', async () => {
  const marker = path.join(tmp, 'ran')
  await rejectsCode(cliNamed.run(ctx([`touch ${marker}`])), 'command_unknown', 'hello', 'both')
  await rejectsCode(cliNamed.run(ctx(['hello', `; touch ${marker}`])), 'method_args')
  await rejectsCode(cliNamed.run(ctx([])), 'method_args')
  await rejectsCode(cliNamed.run(ctx(['toString'])), 'command_unknown')
  assert.not.ok(fs.existsSync(marker))
})


test('cli.named - an allowlist-only node: cli.named runs, cli.run is method_disabled and `outpost send` exits 3', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    configure(c, 'ship1', { methods: { enabled: ['cli.named', 'info.*', 'node.ping'], commands: { up: 'echo up and running' } } })
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const ok = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.named', methodArgs: ['up'] }])
    assert.is(ok.replies[0]!.data, 'up and running\n')
    const info = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'info.kernel' }])
    assert.ok(String(info.replies[0]!.data).includes(os.release()))
    const raw = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo should not run'] }])
    assert.is((raw.replies[0]!.error as { code: string }).code, 'method_disabled')
    const cli = spawnSync(process.execPath, [BIN, 'send', '--config', c.node('central').config, '--to', 'ship1', 'cli.run', '--', 'echo no'], { encoding: 'utf8' })
    assert.is(cli.status, 3, cli.stderr)
    assert.match(cli.stderr, /method_disabled/)
    assert.is(cli.stdout, '')
    const unknown = spawnSync(process.execPath, [BIN, 'send', '--config', c.node('central').config, '--to', 'ship1', 'cli.named', '--', 'rm-everything'], { encoding: 'utf8' })
    assert.is(unknown.status, 3, unknown.stderr)
    assert.match(unknown.stderr, /command_unknown/)
    // ship1's own requests still get their replies handled (reply.file.append is not in its list).
    const mine = await sendVia(c.node('ship1').socket, [{ toNode: 'ship1', method: 'node.ping' }])
    const replyFile = path.join(c.node('ship1').dataDir, 'replies', 'ship1', `${mine.accepted[0]!.id}.log`)
    for (let i = 0; i < 100 && !fs.existsSync(replyFile); i++) await new Promise((r) => setTimeout(r, 50))
    assert.match(fs.readFileSync(replyFile, 'utf8'), /pong ship1/, fs.readFileSync(replyFile, 'utf8'))
  } finally {
    await c.destroy()
  }
})

test("cli.run - BasicAgent's {method: sync.bash, cmd, timeout} on the local socket runs and replies", async () => {
  const c = await Cluster.create([])
  try {
    await c.startHub()
    await c.start('central')
    const lines = await new Promise<Record<string, unknown>[]>((resolve, reject) => {
      const s = net.connect(c.node('central').socket)
      let buf = ''
      s.setEncoding('utf8')
      s.on('connect', () => s.write(JSON.stringify({ method: 'sync.bash', cmd: 'echo $GREETING from basic', timeout: 5, env: { GREETING: 'hi' } }) + '\n'))
      s.on('data', (d: string) => { buf += d; if (buf.includes('"done"')) { s.destroy(); resolve(buf.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)) } })
      s.on('error', reject)
      setTimeout(() => reject(new Error(`no done: ${buf}`)), 20_000).unref()
    })
    const reply = lines.find((l) => l.reply)?.reply as { data: string; exitCode: number; fromNode: string }
    assert.is(reply.data, 'hi from basic\n')
    assert.is(reply.exitCode, 0)
    assert.is(reply.fromNode, 'central')
  } finally {
    await c.destroy()
  }
})

test.run()
