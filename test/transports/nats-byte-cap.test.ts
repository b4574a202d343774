/**
 * transport.maxBytesPerSecond over NATS, with a real nats-server: nodeA's link to the server
 * goes through a counting relay, and a backlog for nodeB (api version 4: batches go deflated)
 * must leave nodeA at the cap, counted as the PUBs cross the socket (test/pacing.test.ts checks
 * tcp and MQTT the same way, and says how the 10% bound is chosen: the rate is taken over 8 s
 * after the bucket's first second; unpaced, the whole backlog goes in well under a second).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, editYaml, section, sendVia, status } from '../fixtures/cluster'
import { compressibleText, countingRelay } from '../fixtures/counting-relay'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function drainedTo(socket: string, n: number, ms = 60_000): Promise<number> {
  const end = Date.now() + ms
  for (;;) {
    const left = (await status(socket)).outbox.count
    if (left <= n) return left
    if (Date.now() > end) throw new Error(`outbox still holds ${left} (> ${n}) after ${ms} ms`)
    await sleep(20)
  }
}

test('nats - transport.maxBytesPerSecond caps the compressed publishes nodeA sends to the server', async () => {
  const CAP = 10_000
  // ~1.6 KB envelopes that deflate to about a third in batches: counted before compression they
  // would leave the wire at about a third of the cap. 300 are ~17 s of traffic at the cap.
  const msgs = Array.from({ length: 300 }, (_, i) => ({ toNode: 'nodeB', method: 'node.pong', data: compressibleText(1500, i + 1) }))
  const c = await Cluster.create(['nodeA', 'nodeB'], { log: { level: 'warn' }, hello: { interval: 0 } }, 'nats')
  const relay = await countingRelay(Number(new URL(c.broker!.url).port))
  try {
    editYaml(c.node('nodeA').config, (doc) => {
      const t = section(doc, 'transport')
      t.servers = [`nats://127.0.0.1:${relay.port}`]
      t.maxBytesPerSecond = CAP
      t.compress = 'auto'
    })
    await c.startServer()
    await c.start('central')
    // nodeB first: its presence (api version 4) is known to nodeA before the backlog goes.
    await c.start('nodeB')
    await c.start('nodeA')
    const a = c.node('nodeA').socket
    await sendVia(a, msgs, { wait: false })
    // The first second's worth goes at once; measure the steady pace after it.
    await drainedTo(a, msgs.length - 40)
    const t1 = performance.now()
    const b1 = relay.sent()
    await sleep(8000)
    const rate = (relay.sent() - b1) / ((performance.now() - t1) / 1000)
    const left = (await status(a)).outbox.count
    assert.ok(left > 0, 'the backlog ran out during the measurement: it was not paced')
    assert.ok(Math.abs(rate - CAP) <= CAP * 0.1, `sent ${rate.toFixed(0)} B/s to nats-server, configured ${CAP}`)
    // And all of it arrives in the end.
    await drainedTo(a, 0)
  } finally {
    relay.close()
    await c.destroy()
  }
})

test.run()
