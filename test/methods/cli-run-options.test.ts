import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import cliRun from '../../methods/cli-run'
import { runArgs, splitRunArgs } from '../../methods/run-options'
import { defaultConfig } from '../../src/config'
import { parseMessage } from '../../src/wire/envelope'
import type { MethodContext } from '../../src/method'
import { BIN } from '../fixtures/cluster'
import { rejectsCode, throwsCode } from '../helpers'

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-run-opts-'))
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }))

function ctx(args: string[]): MethodContext {
  const config = defaultConfig()
  config.dataDir = tmp
  return { node: 'ship1', env: { id: '01J0000000000000000000000A', toNode: 'ship1', fromNode: 'central', method: 'cli.run', methodArgs: args, createdAt: Date.now() }, args, config, dataDir: tmp, signal: new AbortController().signal, log: () => {} }
}
const text = (v: Uint8Array | string | undefined): string => (v === undefined ? '' : typeof v === 'string' ? v : Buffer.from(v).toString('utf8'))
const isRoot = process.getuid?.() === 0

test('cli.run options - only a leading --option starts the option form; a command with -- in it is unchanged', () => {
  assert.equal(splitRunArgs(['git', 'log', '--', 'file']), { options: { env: [] }, command: ['git', 'log', '--', 'file'] })
  assert.equal(splitRunArgs(['--cwd=/tmp', '--env=A=1', '--env', 'B=2', '--', 'ls', '--', 'x']), { options: { env: ['A=1', 'B=2'], cwd: '/tmp' }, command: ['ls', '--', 'x'] })
  throwsCode(() => splitRunArgs(['--cwd=/tmp', 'ls']), 'method_args', 'no --')
  throwsCode(() => splitRunArgs(['--shell=/bin/bash', '--', 'ls']), 'method_args', 'shell')
  assert.equal(runArgs({ user: 'nobody', env: { A: '1' } }, ['id']), ['--user=nobody', '--env=A=1', '--', 'id'])
  assert.equal(runArgs({}, ['id']), ['id'])
})

test('cli.run - --env adds to the environment and --cwd sets the directory', async () => {
  const r = await cliRun.run(ctx(['--env=OUTPOST_T=forty two', `--cwd=${tmp}`, '--', 'echo "$OUTPOST_T"; pwd']))
  assert.is(text(r.data), `forty two\n${fs.realpathSync(tmp)}\n`)
  assert.is(r.exitCode, 0)
})

test('cli.run - --env names like Object.prototype members (__proto__, constructor) are variables like any other', async () => {
  const r = await cliRun.run(ctx(['--env=__proto__=proto-value', '--env=constructor=ctor-value', '--', 'env']))
  const vars = text(r.data).split('\n')
  assert.ok(vars.includes('__proto__=proto-value'), 'the variable __proto__ reaches the command')
  assert.ok(vars.includes('constructor=ctor-value'))
})

test('cli.run - a --cwd that is not a directory and a malformed --env are method_args', async () => {
  await rejectsCode(cliRun.run(ctx([`--cwd=${tmp}/nope`, '--', 'pwd'])), 'method_args', 'nope')
  await rejectsCode(cliRun.run(ctx(['--env=NOEQUALS', '--', 'true'])), 'method_args', 'KEY=VALUE')
})

test('cli.run - --user/--group run the command as that account (as root), unknown accounts are not_found', async () => {
  if (!isRoot) {
    await rejectsCode(cliRun.run(ctx(['--user=nobody', '--', 'id -u'])), 'not_permitted', 'root')
    return
  }
  const r = await cliRun.run(ctx(['--user=nobody', '--', 'id -u; id -g; echo $HOME']))
  const nobody = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'))!.split(':')
  assert.is(text(r.data), `${nobody[2]}\n${nobody[3]}\n${nobody[5]}\n`)
  const g = await cliRun.run(ctx(['--user=nobody', '--group=root', '--', 'id -g']))
  assert.is(text(g.data), '0\n')
  await rejectsCode(cliRun.run(ctx(['--user=no-such-user-x', '--', 'id'])), 'not_found', 'no-such-user-x')
  await rejectsCode(cliRun.run(ctx(['--group=no-such-group-x', '--', 'id'])), 'not_found', 'no-such-group-x')
})

test('cli.run - --user from a node not running as root is refused with not_permitted (a real unprivileged outpost)', () => {
  // As root the test starts outpost as nobody; otherwise it already runs unprivileged.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-nonroot-'))
  fs.chmodSync(dir, 0o777)
  const config = path.join(dir, 'c.yaml')
  fs.writeFileSync(config, `node: { name: here }\ndataDir: ${dir}/data\n`, { mode: 0o644 })
  try {
    const r = spawnSync(process.execPath, [BIN, 'call', '--config', config, 'cli.run', '--', '--user=root', '--', 'id -u'], {
      encoding: 'utf8', cwd: dir, ...(isRoot ? { uid: 65534, gid: 65534 } : {}),
    })
    assert.is(r.status, 1, r.stderr + r.stdout)
    assert.match(r.stderr, /not_permitted/)
    assert.match(r.stderr, /root/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test("envelope - BasicAgent's sync.bash with cmd and timeout becomes cli.run with methodTimeout", () => {
  assert.equal(parseMessage({ method: 'sync.bash', cmd: 'uptime', timeout: 7, toNode: 'a' }), { method: 'cli.run', methodArgs: ['uptime'], methodTimeout: 7, toNode: 'a' })
  assert.equal(parseMessage({ method: 'sync.bash', cmd: 'id', user: 'www-data', cwd: '/srv', toNode: 'a' }).methodArgs, ['--user=www-data', '--cwd=/srv', '--', 'id'])
  throwsCode(() => parseMessage({ method: 'sync.bash', cmd: 3, toNode: 'a' }), 'envelope_invalid', 'cmd')
  throwsCode(() => parseMessage({ method: 'sync.bash', cmd: 'x', timeout: -1, toNode: 'a' }), 'envelope_invalid', 'methodTimeout')
})

test.run()
