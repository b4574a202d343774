/**
 * delivery.drainRate and transport.maxBytesPerSecond (src/pacing.ts), with real processes: a
 * node with a backlog for a node that was away drains it at the configured pace once the
 * receiver is back. The byte cap is checked on the bytes that cross the node's socket (a
 * counting relay between the node and its hub or broker), with and without compression.
 *
 * How the bound is chosen: the rate is measured over 8–10 s, after the first second (the
 * bucket starts full: one second's worth goes at once). Timing errors in that measurement are
 * a few status calls (milliseconds in seconds); pacing loses nothing to late timers unless one
 * is more than a second late (the bucket holds a second's worth). Without pacing the whole
 * backlog goes in well under a second, so a 10% bound is both safe on a loaded machine and
 * far from what the code without the feature does. Session frames (a tunnel) are never held
 * back but count: with a tunnel carrying a third of the cap, the link's total still holds it. These are behaviour checks of the caps,
 * not speed tests: the rates are small enough for any machine.
 */
import net from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, Proc, editYaml, freePort, section, sendVia, status } from './fixtures/cluster'
import { compressibleText, countingRelay } from './fixtures/counting-relay'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function outboxCount(socket: string): Promise<number> {
  return (await status(socket)).outbox.count
}

/** Wait (polling) until nodeA's outbox holds at most `n`. */
async function drainedTo(socket: string, n: number, ms = 30_000): Promise<void> {
  const end = Date.now() + ms
  while ((await outboxCount(socket)) > n) {
    if (Date.now() > end) throw new Error(`outbox still above ${n} after ${ms} ms`)
    await sleep(20)
  }
}

test('pacing - a backlog drains at delivery.drainRate once its receiver is back', async () => {
  const RATE = 40
  const BACKLOG = 600
  const c = await Cluster.create(['nodeA', 'nodeB'], { log: { level: 'warn' }, hello: { interval: 0 } })
  try {
    editYaml(c.node('nodeA').config, (doc) => { section(doc, 'delivery').drainRate = RATE })
    await c.startHub()
    await c.start('central')
    await c.start('nodeA')
    const a = c.node('nodeA').socket
    const msg = { toNode: 'nodeB', method: 'node.pong', data: 'x'.repeat(100) }
    await sendVia(a, Array.from({ length: BACKLOG }, () => msg), { wait: false })
    assert.is(await outboxCount(a), BACKLOG)
    await c.start('nodeB')
    // The first second's worth goes at once; measure the steady pace after it.
    await drainedTo(a, BACKLOG - RATE)
    const t1 = performance.now()
    const c1 = await outboxCount(a)
    await sleep(8000)
    const c2 = await outboxCount(a)
    const rate = (c1 - c2) / ((performance.now() - t1) / 1000)
    assert.ok(c2 > 0, `the backlog ran out during the measurement (${c1} → ${c2}): it was not paced`)
    assert.ok(Math.abs(rate - RATE) <= RATE * 0.1, `drained at ${rate.toFixed(1)} msg/s, configured ${RATE}`)
    // And all of it arrives in the end.
    await drainedTo(a, 0)
  } finally {
    await c.destroy()
  }
})

/**
 * nodeA (its link to the hub or broker through a counting relay, capped at `cap` B/s) drains a
 * backlog of `msgs` to nodeB: the bytes a second it sends through the relay while paced. On a
 * broker nodeB is up first (what waits for a node never heard of is not the point here).
 */
async function wireRate(cap: number, compress: 'auto' | 'off', msgs: Array<Record<string, unknown>>, kind: 'tcp' | 'mqtt' = 'tcp'): Promise<number> {
  const c = await Cluster.create(['nodeA', 'nodeB'], { log: { level: 'warn' }, hello: { interval: 0 } }, kind)
  const relay = await countingRelay(kind === 'tcp' ? c.port : Number(new URL(c.broker!.url).port))
  try {
    editYaml(c.node('nodeA').config, (doc) => {
      const t = section(doc, 'transport')
      t.servers = [`${kind}://127.0.0.1:${relay.port}`]
      t.maxBytesPerSecond = cap
      t.compress = compress
    })
    await c.startServer()
    await c.start('central')
    if (kind !== 'tcp') await c.start('nodeB')
    await c.start('nodeA')
    const a = c.node('nodeA').socket
    await sendVia(a, msgs, { wait: false })
    if (kind === 'tcp') await c.start('nodeB')
    // The first second's worth goes at once; measure the steady pace after it.
    await drainedTo(a, msgs.length - 40)
    const t1 = performance.now()
    const b1 = relay.sent()
    await sleep(8000)
    const rate = (relay.sent() - b1) / ((performance.now() - t1) / 1000)
    assert.ok((await outboxCount(a)) > 0, 'the backlog ran out during the measurement: it was not paced')
    await drainedTo(a, 0, 60_000)
    return rate
  } finally {
    relay.close()
    await c.destroy()
  }
}

test('pacing - transport.maxBytesPerSecond caps the bytes on the wire', async () => {
  const CAP = 30_000
  // ~1.1 KB envelopes that compress ~50-fold, sent uncompressed: 400 of them are ~15 s of traffic at the cap.
  const msg = { toNode: 'nodeB', method: 'node.pong', data: 'x'.repeat(1000) }
  const rate = await wireRate(CAP, 'off', Array.from({ length: 400 }, () => msg))
  assert.ok(Math.abs(rate - CAP) <= CAP * 0.1, `sent ${rate.toFixed(0)} B/s on the wire, configured ${CAP}`)
})

test('pacing - the byte cap counts compressed batches as they cross the socket', async () => {
  const CAP = 10_000
  // ~1.6 KB envelopes that deflate to about a third (zbatch frames): counted before compression
  // they would leave the wire at about a third of the cap. 300 are ~17 s of traffic at the cap.
  const msgs = Array.from({ length: 300 }, (_, i) => ({ toNode: 'nodeB', method: 'node.pong', data: compressibleText(1500, i + 1) }))
  const rate = await wireRate(CAP, 'auto', msgs)
  assert.ok(Math.abs(rate - CAP) <= CAP * 0.1, `sent ${rate.toFixed(0)} B/s on the wire, configured ${CAP}`)
})

test('pacing - on MQTT the byte cap counts the compressed publishes nodeA sends to the broker', async () => {
  const CAP = 10_000
  // As above, through mosquitto: batches to nodeB (api version 4) go deflated.
  const msgs = Array.from({ length: 300 }, (_, i) => ({ toNode: 'nodeB', method: 'node.pong', data: compressibleText(1500, i + 1) }))
  const rate = await wireRate(CAP, 'auto', msgs, 'mqtt')
  assert.ok(Math.abs(rate - CAP) <= CAP * 0.1, `sent ${rate.toFixed(0)} B/s to the broker, configured ${CAP}`)
})

test('pacing - the frames of a tunnel count against the byte cap: the outbox gets what the tunnel leaves, the total holds', async () => {
  const CAP = 24_000
  const c = await Cluster.create(['nodeA', 'nodeB'], { log: { level: 'warn' }, hello: { interval: 0 } })
  const relay = await countingRelay(c.port)
  // Where the tunnel leads (here, beside central): it reads and discards.
  const sink = net.createServer((s) => { s.resume(); s.on('error', () => {}) })
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r))
  const remote = await freePort()
  let t: Proc | undefined
  let feeder: net.Socket | undefined
  let timer: NodeJS.Timeout | undefined
  try {
    editYaml(c.node('nodeA').config, (doc) => {
      const tr = section(doc, 'transport')
      tr.servers = [`tcp://127.0.0.1:${relay.port}`]
      tr.maxBytesPerSecond = CAP
      tr.compress = 'off'
      section(doc, 'tunnels').listen = [remote]
    })
    await c.startHub()
    await c.start('central')
    await c.start('nodeA')
    t = new Proc(['tunnel', 'nodeA', '-R', `${remote}:127.0.0.1:${(sink.address() as net.AddressInfo).port}`, '--config', c.node('central').config])
    await t.waitFor(/tunnel listening on/)
    // A client on nodeA's side writes 800 bytes every 100 ms into the tunnel (~8 KB/s with framing, a third of the cap).
    feeder = net.connect({ host: '127.0.0.1', port: remote })
    await new Promise<void>((r, j) => { feeder!.once('connect', r); feeder!.once('error', j) })
    const chunk = Buffer.alloc(800, 't')
    timer = setInterval(() => feeder!.write(chunk), 100)
    const a = c.node('nodeA').socket
    const msg = { toNode: 'nodeB', method: 'node.pong', data: 'x'.repeat(1000) }
    await sendVia(a, Array.from({ length: 250 }, () => msg), { wait: false })
    await c.start('nodeB')
    await drainedTo(a, 250 - 20)
    const t1 = performance.now()
    const b1 = relay.sent()
    const o1 = await outboxCount(a)
    await sleep(8000)
    const secs = (performance.now() - t1) / 1000
    const rate = (relay.sent() - b1) / secs
    const o2 = await outboxCount(a)
    assert.ok(o2 > 0, 'the backlog ran out during the measurement: it was not paced')
    // The outbox moved, at what the tunnel left of the cap (not stalled behind it).
    assert.ok((o1 - o2) / secs > (CAP / 2) / 1100, `the outbox drained only ${((o1 - o2) / secs).toFixed(1)} msg/s beside the tunnel`)
    assert.ok(Math.abs(rate - CAP) <= CAP * 0.1, `sent ${rate.toFixed(0)} B/s on the wire with the tunnel's frames, configured ${CAP}`)
    clearInterval(timer)
    await drainedTo(a, 0, 60_000)
  } finally {
    clearInterval(timer)
    feeder?.destroy()
    await t?.stop('SIGKILL')
    relay.close()
    sink.close()
    await c.destroy()
  }
})

test.run()
