/**
 * A push over a slow link (the receiver behind a real TCP relay that passes ~150 KB/s towards
 * it, as a GSM modem would): the whole window of chunks is on its way at once, the last ones
 * take longer to arrive than delivery.ackTimeout (5 s), and none of them may be sent again for
 * it — on a link that slow every copy sent again costs the transfer more time and the operator
 * more bytes. Real hub and agents.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { Cluster } from '../fixtures/cluster'
import { slowRelay } from '../fixtures/slow-relay'
import { cp, lastTransfer, partials, randomFile, sha256Of } from './helpers'

const RATE = 150 * 1024

test('files - a push over a slow link: chunks slower to arrive than the ACK timeout are not sent again', async () => {
  const c = await Cluster.create(['ship1'])
  const relay = await slowRelay(c.port, RATE)
  try {
    // ship1 reaches the hub through the slow relay.
    const cfg = YAML.parse(fs.readFileSync(c.node('ship1').config, 'utf8')) as { transport: { servers: string[] } }
    cfg.transport.servers = [`tcp://127.0.0.1:${relay.port}`]
    fs.writeFileSync(c.node('ship1').config, YAML.stringify(cfg))
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const src = path.join(c.dir, 'fw.bin')
    // 6 chunks of 256 KiB: at 150 KB/s the last arrives ~10 s after it was sent.
    const sum = randomFile(src, 1.5 * 1024 * 1024)
    const dir = path.join(c.node('ship1').dataDir, 'files')
    const r = await cp(c, 'central', [src, `ship1:${dir}/fw.bin`], 120_000)
    assert.is(r.code, 0, r.stderr + JSON.stringify(r.lines.slice(-3)))
    assert.is(lastTransfer(r).state, 'done')
    assert.is(sha256Of(path.join(dir, 'fw.bin')), sum)
    assert.equal(partials(dir), [])
    const retried = (c.node('central').proc!.output.match(/delivery: no ACK for \S+ from ship1/g) ?? [])
    assert.equal(retried, [], 'chunks sent again for want of an ACK while they were still on their way')
  } finally {
    relay.close()
    await c.destroy()
  }
})

test.run()
