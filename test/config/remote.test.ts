/**
 * The file side of remote configuration (src/config/remote.ts, src/config/apply.ts), without
 * processes: which keys apply live, what is written, what is refused.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { defaultConfig, parseConfig, type Config } from '../../src/config'
import { applyLive, diffConfig } from '../../src/config/apply'
import { deploy, rollback, setKey } from '../../src/config/remote'
import { isOutpostError } from '../../src/errors'
import type { Control } from '../../src/config/apply'
import { tmpDir } from '../fixtures/ports'

function fixture(text: string): { dir: string; file: string; running: Config; control: Control; applied: Config[] } {
  const dir = tmpDir()
  const file = path.join(dir, 'outpost.yaml')
  fs.writeFileSync(file, text, { mode: 0o600 })
  const running = parseConfig(text, file)
  running.dataDir = path.resolve(running.dataDir)
  const applied: Config[] = []
  const control: Control = {
    configFile: file,
    apply: (next) => { applied.push(next); const d = diffConfig(running, next); applyLive(running, next, d.live); return { changed: d.changed, restartNeeded: d.restartNeeded } },
    restart: () => {},
  }
  return { dir, file, running, control, applied }
}

const BASE = '# ship1\nnode:\n  name: ship1   # keep me\ndataDir: /tmp/outpost-ship1\n'

test('config-apply - methods.*, delivery defaults, log.level, schedules apply live; transport and dataDir need a restart', () => {
  const a = defaultConfig()
  const b = structuredClone(a)
  b.methods.commands = { up: 'uptime' }
  b.delivery.retries = 3
  b.log.level = 'debug'
  b.transport.servers = ['tcp://other:7430']
  b.dataDir = '/elsewhere'
  b.schedules = [{ cron: '* * * * *', method: 'node.ping' }]
  const d = diffConfig(a, b)
  assert.equal(d.changed, ['dataDir', 'delivery.retries', 'log.level', 'methods.commands', 'schedules', 'transport.servers'])
  assert.equal(d.restartNeeded, ['dataDir', 'transport.servers'])
  applyLive(a, b, d.live)
  assert.equal(a.methods.commands, { up: 'uptime' })
  assert.is(a.delivery.retries, 3)
  assert.equal(a.transport.servers, ['tcp://127.0.0.1:7430'])
})

test('config-apply - security.nodeKeys applies live (central reads it at each hello)', () => {
  const a = defaultConfig()
  const held = a.security
  const b = structuredClone(a)
  b.security.nodeKeys = { ship1: 'ed25519:' + Buffer.alloc(32, 1).toString('base64') }
  const d = diffConfig(a, b)
  assert.equal(d.live, ['security.nodeKeys'])
  assert.equal(d.restartNeeded, [])
  applyLive(a, b, d.live)
  assert.equal(held.nodeKeys, b.security.nodeKeys)
})

test('config-remote - set keeps comments and mode, keeps .previous; a bad value or another node name writes nothing', () => {
  const f = fixture(BASE)
  try {
    const r = setKey(f.control, 'ship1', 'req1', 'methods.commands', '{disk: "df -hl"}')
    assert.equal(r.changed, ['methods.commands'])
    assert.is(r.previous, `${f.file}.previous`)
    const text = fs.readFileSync(f.file, 'utf8')
    assert.match(text, /# keep me/)
    assert.match(text, /disk: df -hl/)
    assert.is(fs.statSync(f.file).mode & 0o777, 0o600)
    assert.is(fs.readFileSync(`${f.file}.previous`, 'utf8'), BASE)
    assert.equal(f.running.methods.commands, { disk: 'df -hl' })
    for (const [key, value, code] of [['delivery.retries', 'many', 'config_invalid'], ['nope.key', '1', 'config_key'], ['node.name', 'ship9', 'config_node_mismatch']] as const) {
      try {
        setKey(f.control, 'ship1', 'req2', key, value)
        assert.unreachable(`${key} accepted`)
      } catch (err) {
        assert.ok(isOutpostError(err, code), String(err))
      }
    }
    assert.is(fs.readFileSync(f.file, 'utf8'), text)
    assert.equal(fs.readdirSync(f.dir).sort(), ['outpost.yaml', 'outpost.yaml.previous'])
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true })
  }
})

test('config-remote - deploy by id (no-op again unless forced), rollback swaps with .previous and the ids follow', () => {
  const f = fixture(BASE)
  try {
    assert.ok(isOutpostError(catchErr(() => rollback(f.control, 'ship1', f.dir)), 'not_found'))
    const v1 = `${BASE}delivery: { retries: 2 }\n`
    assert.equal(deploy(f.control, 'ship1', f.dir, 'v1', v1, false).changed, ['delivery.retries'])
    assert.equal(deploy(f.control, 'ship1', f.dir, 'v1', 'garbage: [', false).noop, true)
    const bad = catchErr(() => deploy(f.control, 'ship1', f.dir, 'v1', 'garbage: [', true))
    assert.ok(isOutpostError(bad, 'config_parse'), String(bad))
    assert.is(fs.readFileSync(f.file, 'utf8'), v1)
    const v2 = `${BASE}delivery: { retries: 4 }\n`
    deploy(f.control, 'ship1', f.dir, 'v2', v2, false)
    const back = rollback(f.control, 'ship1', f.dir)
    assert.is(back.id, 'v1')
    assert.is(fs.readFileSync(f.file, 'utf8'), v1)
    assert.is(fs.readFileSync(`${f.file}.previous`, 'utf8'), v2)
    assert.is(f.running.delivery.retries, 2)
    assert.is(rollback(f.control, 'ship1', f.dir).id, 'v2')
    assert.is(f.running.delivery.retries, 4)
    const none: Control = { ...f.control, configFile: undefined }
    assert.ok(isOutpostError(catchErr(() => deploy(none, 'ship1', f.dir, 'v3', v1, false)), 'config_readonly'))
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true })
  }
})

function catchErr(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('expected an error')
}

test.run()
