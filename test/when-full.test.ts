/**
 * delivery.whenFull (src/outbox-room.ts), with real processes: a node cut off from its hub fills
 * its outbox with requests and events for another node. With dropOldestEvents a new message
 * makes room by dropping the oldest events, never a request; once no event is left the outbox
 * refuses as it always did; every request still arrives, the events that arrive are the newest,
 * and central hears how many were dropped.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, editYaml, section, sendVia, status } from './fixtures/cluster'
import { eventually } from './helpers'

const pad = 'x'.repeat(900)
/** A request (ACKed, resent) or an event (ackTimeout 0): B appends its data line to a file. */
const command = (n: number): Record<string, unknown> => ({ toNode: 'nodeB', method: 'reply.file.append', directory: 'got', fileName: 'commands.log', data: `c${n} ${pad}\n` })
const event = (n: number): Record<string, unknown> => ({ ...command(n), fileName: 'events.log', data: `e${n} ${pad}\n`, ackTimeout: 0 })

function lines(file: string): string[] {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')[0]!) : []
}

async function setUp(whenFull: 'refuse' | 'dropOldestEvents'): Promise<{ c: Cluster; a: string }> {
  const c = await Cluster.create(['nodeA', 'nodeB'], { log: { level: 'info' }, hello: { interval: 0 } })
  editYaml(c.node('nodeA').config, (doc) => {
    const d = section(doc, 'delivery')
    d.maxOutboxBytes = 12_000
    d.whenFull = whenFull
  })
  // No hub yet: nodeA keeps everything.
  await c.start('nodeA', false)
  const a = c.node('nodeA').socket
  // ~1.1 KB each: 4 requests and 6 events fit in 12,000 bytes.
  for (let i = 1; i <= 4; i++) await sendVia(a, [command(i)], { wait: false })
  for (let i = 1; i <= 6; i++) await sendVia(a, [event(i)], { wait: false })
  assert.is((await status(a)).outbox.count, 10)
  return { c, a }
}

test('whenFull - refuse (the default): a full outbox refuses a new request', async () => {
  const { c, a } = await setUp('refuse')
  try {
    const err = await sendVia(a, [command(5)], { wait: false }).then(() => '', (e: Error) => e.message)
    assert.match(err, /outbox_full/)
    assert.is((await status(a)).outbox.count, 10)
  } finally {
    await c.destroy()
  }
})

test('whenFull - refuse: a request of several messages that does not fit is refused whole, none of it stored', async () => {
  const c = await Cluster.create(['nodeA', 'nodeB'], { log: { level: 'info' }, hello: { interval: 0 } })
  editYaml(c.node('nodeA').config, (doc) => { section(doc, 'delivery').maxOutboxBytes = 12_000 })
  try {
    await c.start('nodeA', false)
    const a = c.node('nodeA').socket
    // 15 requests of ~1.1 KB in one request: the first ten would fit on their own.
    const err = await sendVia(a, Array.from({ length: 15 }, (_, i) => command(i + 1)), { wait: false }).then(() => '', (e: Error) => e.message)
    assert.match(err, /outbox_full/)
    assert.is((await status(a)).outbox.count, 0)
    // What fits still goes in.
    await sendVia(a, Array.from({ length: 5 }, (_, i) => command(i + 1)), { wait: false })
    assert.is((await status(a)).outbox.count, 5)
  } finally {
    await c.destroy()
  }
})

test('whenFull - dropOldestEvents drops the oldest events, never a request, and central hears of it', async () => {
  const { c, a } = await setUp('dropOldestEvents')
  try {
    // Each new request pushes out the oldest event(s); once none is left, requests are refused.
    const accepted: number[] = []
    let refused = ''
    for (let i = 5; i <= 14 && refused === ''; i++) {
      await sendVia(a, [command(i)], { wait: false }).then(() => accepted.push(i), (e: Error) => { refused = e.message })
    }
    assert.ok(accepted.length >= 5, `only ${accepted.join(', ')} accepted`)
    assert.match(refused, /outbox_full/)
    assert.match(c.node('nodeA').proc!.output, /events_dropped|dropped the \d+ oldest events/)

    await c.startHub()
    await c.start('central')
    await c.start('nodeB')
    const dir = path.join(c.node('nodeB').dataDir, 'got', 'nodeA')
    const want = [1, 2, 3, 4, ...accepted].map((n) => `c${n}`)
    // Every accepted request arrives, in order.
    await eventually('every request at nodeB', () => (lines(path.join(dir, 'commands.log')).length >= want.length ? true : undefined), 20_000)
    assert.equal(lines(path.join(dir, 'commands.log')), want)
    // Events go once, before the requests queued after them: give their appends a moment.
    for (let i = 0; i < 200 && (await status(a)).outbox.count > 0; i++) await new Promise((r) => setTimeout(r, 50))
    await new Promise((r) => setTimeout(r, 1000))
    // The events that arrived are the newest ones, none of the oldest.
    const events = lines(path.join(dir, 'events.log'))
    const all = [1, 2, 3, 4, 5, 6].map((n) => `e${n}`)
    assert.equal(events, all.slice(all.length - events.length))
    assert.ok(events.length < all.length, 'no event was dropped')
    // Central's errors.log names the drop and nodeA.
    const errors = path.join(c.node('central').dataDir, 'errors.log')
    await eventually('the report at central', () => (fs.existsSync(errors) && /nodeA events_dropped .*\d+ events dropped/.test(fs.readFileSync(errors, 'utf8')) ? true : undefined), 20_000)
    // nodeA's audit log ends every event it accepted: delivered, or expired with reason events_dropped (its counters with it).
    const audit = fs.readFileSync(path.join(c.node('nodeA').dataDir, 'audit.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; id: string; reason?: string; env?: { ackTimeout?: number } })
    const acceptedEvents = audit.filter((l) => l.event === 'accepted' && l.env?.ackTimeout === 0).map((l) => l.id)
    assert.is(acceptedEvents.length, 6)
    const dropped = audit.filter((l) => l.event === 'expired' && l.reason === 'events_dropped').map((l) => l.id)
    assert.is(dropped.length, all.length - events.length, 'an expired line (reason events_dropped) for each event dropped')
    for (const id of acceptedEvents) assert.is(audit.filter((l) => l.id === id && (l.event === 'delivered' || l.event === 'expired')).length, 1, `event ${id} has one end in the audit log`)
  } finally {
    await c.destroy()
  }
})

test.run()
