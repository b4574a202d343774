import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { allowed } from '../src/dispatcher'
import { defaultConfig } from '../src/config'
import { BIN, Cluster, sendVia } from './fixtures/cluster'
import { configure } from './fixtures/configure'


test('acl - rules match the sender ($central, $self, names, *) and method patterns', () => {
  const c = defaultConfig()
  c.node.central = 'hq'
  c.methods.allow = [{ from: ['$central', '$self'], methods: ['*'] }, { from: ['ops1'], methods: ['info.*', 'node.ping'] }, { from: ['*'], methods: ['reply.*'] }]
  assert.ok(allowed(c, 'ship1', 'hq', 'cli.run'))
  assert.ok(allowed(c, 'ship1', 'ship1', 'cli.run'))
  assert.ok(allowed(c, 'ship1', 'ops1', 'info.users'))
  assert.ok(allowed(c, 'ship1', 'ops1', 'node.ping'))
  assert.not.ok(allowed(c, 'ship1', 'ops1', 'cli.run'))
  assert.not.ok(allowed(c, 'ship1', 'ops1', 'information'))
  assert.ok(allowed(c, 'ship1', 'anyone', 'reply.file.append'))
  assert.not.ok(allowed(c, 'ship1', 'anyone', 'node.ping'))
})

test('acl - a config change (a new rules list, as applyLive makes) is seen at once, and so is a new central', () => {
  const c = defaultConfig()
  c.node.central = 'hq'
  c.methods.allow = [{ from: ['$central'], methods: ['*'] }]
  assert.not.ok(allowed(c, 'ship1', 'ops1', 'info.users'))
  assert.ok(allowed(c, 'ship1', 'hq', 'info.users'))
  c.methods.allow = [{ from: ['$central'], methods: ['*'] }, { from: ['ops1'], methods: ['info.*'] }]
  assert.ok(allowed(c, 'ship1', 'ops1', 'info.users'))
  c.node.central = 'hq2'
  assert.not.ok(allowed(c, 'ship1', 'hq', 'info.users'))
  assert.ok(allowed(c, 'ship1', 'hq2', 'info.users'))
  assert.not.ok(allowed(c, 'ship2', 'ship1', 'info.users'))
})

test('acl - enforced by the receiver: ship2 may call info.* on ship1 but not cli.run (denied, exit 3, nothing runs)', async () => {
  const c = await Cluster.create(['ship1', 'ship2'])
  const marker = `${c.dir}/ran`
  try {
    configure(c, 'ship1', { methods: { allow: [{ from: ['$central', '$self'], methods: ['*'] }, { from: ['ship2'], methods: ['info.*'] }, { from: ['*'], methods: ['reply.*', 'error.log', 'node.hello', 'node.pong'] }] } })
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    await c.start('ship2')
    const ok = await sendVia(c.node('ship2').socket, [{ toNode: 'ship1', method: 'getinfo.kernel' }])
    assert.ok(String(ok.replies[0]!.data).includes(os.release()), JSON.stringify(ok.replies))
    const no = await sendVia(c.node('ship2').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: [`touch ${marker}`] }])
    assert.equal((no.replies[0]!.error as { code: string }).code, 'denied')
    const cli = spawnSync(process.execPath, [BIN, 'send', '--config', c.node('ship2').config, '--to', 'ship1', 'cli.run', '--', `touch ${marker}`], { encoding: 'utf8' })
    assert.is(cli.status, 3, cli.stderr)
    assert.match(cli.stderr, /ship1: denied: ship1 does not let ship2 call cli\.run/)
    assert.not.ok(fs.existsSync(marker))
    // Central still may.
    const central = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo yes'] }])
    assert.is(central.replies[0]!.data, 'yes\n')
  } finally {
    await c.destroy()
  }
})

test.run()
