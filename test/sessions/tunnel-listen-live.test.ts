/**
 * `tunnels.listen` applies at once on a running node, as `tunnels.allow` does: an operator who
 * runs `outpost config set tunnels.listen '[9000]'` on ship1 can open `outpost tunnel ship1 -R
 * 9000:…` right away, without restarting ship1 (found in an operator's trial, 2026-12-06: the
 * node answered "needs a restart" and refused the port with tunnel_listen_denied until then).
 */
import { spawnSync } from 'node:child_process'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, Cluster, Proc, freePort } from '../fixtures/cluster'
import { hashingServer, request } from '../fixtures/http-target'

test('tunnel -R - a port added to tunnels.listen of a running node can be opened at once', async () => {
  const { server, port: target } = await hashingServer(64 * 1024)
  const remote = await freePort()
  const c = await Cluster.create(['ship1'])
  let t: Proc | undefined
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const set = spawnSync(process.execPath, [BIN, 'config', 'set', '--config', c.node('ship1').config, 'tunnels.listen', `[${remote}]`], { encoding: 'utf8' })
    assert.is(set.status, 0, set.stderr)
    assert.match(set.stdout, /applied at once: tunnels\.listen/)
    t = new Proc(['tunnel', 'ship1', '-R', `${remote}:127.0.0.1:${target}`, '--once', '--config', c.node('central').config])
    await t.waitFor(/tunnel listening on ship1's|tunnel_listen_denied/)
    assert.not.match(t.output, /tunnel_listen_denied/)
    const r = await request(remote, '/live')
    assert.ok(r.body.equals(Buffer.alloc(64 * 1024, '/live')))
    assert.is(await t.exited, 0)
  } finally {
    await t?.stop('SIGKILL')
    await c.destroy()
    server.close()
  }
})

test.run()
