/**
 * Delivery over a slow uplink (central reaches the hub through a real TCP relay that passes
 * 2 MB/s from it, as a metered modem would): plain messages of 1 MiB, many queued behind each
 * other. A message's ACK timer starts when its bytes have been written to the connection, not
 * when delivery handed it to the transport: the last ones wait far longer than
 * delivery.ackTimeout behind the others before they leave, and must not be sent again for it.
 * Real hub and agents.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, Cluster, editYaml, section, status } from './fixtures/cluster'
import { slowRelay } from './fixtures/slow-relay'

const RATE = 2 * 1024 * 1024
const COUNT = 24
const SIZE = 1024 * 1024

test('delivery - large messages queued behind each other on a slow uplink are not sent again while they wait to leave', async () => {
  // 24 MiB at 2 MB/s: the last message leaves ~12 s after it was handed over, twice the ACK timeout.
  const c = await Cluster.create(['ship1'], { delivery: { ackTimeout: 6, retries: 5 } })
  const relay = await slowRelay(c.port, RATE, 'up')
  try {
    editYaml(c.node('central').config, (doc) => { section(doc, 'transport').servers = [`tcp://127.0.0.1:${relay.port}`] })
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const data = 'x'.repeat(SIZE)
    const file = path.join(c.dir, 'msgs.json')
    fs.writeFileSync(file, JSON.stringify(Array.from({ length: COUNT }, (_, i) => ({ toNode: 'ship1', method: 'node.ping', methodArgs: [String(i)], data }))))
    const r = spawnSync(process.execPath, [BIN, 'send', '--config', c.node('central').config, '--file', file, '--no-wait'], { encoding: 'utf8', timeout: 60_000 })
    assert.is(r.status, 0, r.stderr)
    const end = Date.now() + 90_000
    while ((await status(c.node('central').socket)).outbox.count > 0) {
      if (Date.now() > end) throw new Error(`central still holds messages:\n${c.node('central').proc!.output.slice(-3000)}`)
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    const retried = c.node('central').proc!.output.match(/delivery: no ACK for \S+ from ship1/g) ?? []
    assert.equal(retried, [], 'messages sent again for want of an ACK while they were still waiting to leave')
  } finally {
    relay.close()
    await c.destroy()
  }
})

test.run()
