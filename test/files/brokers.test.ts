/**
 * File transfer over the brokers: a push and a pull through a real mosquitto and a real
 * nats-server arrive with the same sha256, and a push goes on through a SIGKILL and restart
 * of the broker.
 */
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, type Kind } from '../fixtures/cluster'
import { cp, lastTransfer, partials, randomFile, sha256Of, until } from './helpers'

for (const kind of ['mqtt', 'nats'] as Kind[]) {
  test(`files - ${kind} carries a push and a pull whole`, async () => {
    const c = await Cluster.create(['ship1'], {}, kind)
    try {
      await c.startServer()
      await c.start('central')
      await c.start('ship1')
      const src = path.join(c.dir, 'a.bin')
      const sum = randomFile(src, 3 * 1024 * 1024 + 5)
      const dir = path.join(c.node('ship1').dataDir, 'files')
      const r = await cp(c, 'central', [src, `ship1:${dir}/`])
      assert.is(r.code, 0, r.stderr + JSON.stringify(r.lines.slice(-2)))
      assert.is(lastTransfer(r).state, 'done')
      assert.is(sha256Of(path.join(dir, 'a.bin')), sum)
      const back = path.join(c.dir, 'back.bin')
      const p = await cp(c, 'central', [`ship1:${dir}/a.bin`, back])
      assert.is(p.code, 0, p.stderr + JSON.stringify(p.lines.slice(-2)))
      assert.is(sha256Of(back), sum)
      assert.equal(partials(dir), [])
    } finally {
      await c.destroy()
    }
  })

  test(`files - a push over ${kind} completes through a SIGKILL and restart of the broker`, async () => {
    const c = await Cluster.create(['ship1'], {}, kind)
    try {
      await c.startServer()
      await c.start('central')
      await c.start('ship1')
      const src = path.join(c.dir, 'b.bin')
      const sum = randomFile(src, 12 * 1024 * 1024)
      const dir = path.join(c.node('ship1').dataDir, 'files')
      const run = cp(c, 'central', ['--rate', '4m', src, `ship1:${dir}/b.bin`], 120_000)
      await until(c.node('central').socket, (t) => t.state === 'sending' && t.bytes >= t.size * 0.3)
      await c.broker!.stop('SIGKILL')
      await c.broker!.start()
      const r = await run
      assert.is(r.code, 0, r.stderr + JSON.stringify(r.lines.slice(-2)))
      assert.is(sha256Of(path.join(dir, 'b.bin')), sum)
      assert.equal(partials(dir), [])
    } finally {
      await c.destroy()
    }
  })
}

test.run()
