/**
 * Delivery and the hub's refusals (nack offline / online): a real outbox on disk; the transport
 * is this test's edge (it records what delivery hands it, and the test plays the hub's frames).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Delivery } from '../src/delivery'
import { Outbox } from '../src/store/outbox'
import type { Transport } from '../src/transport'
import { tmpDir } from './fixtures/ports'

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20))

test('delivery - the nacks of messages released by an earlier nack, arriving after online, do not stop the pair again', async () => {
  const ob = await Outbox.open({ dir: tmpDir(), maxBytes: 1 << 20 })
  const published: string[] = []
  const transport = { kind: 'memory', connected: true, publish: async (m: { id: string }) => { published.push(m.id) } } as unknown as Transport
  const d = new Delivery({ self: 'central', outbox: ob, transport, defaults: { ackTimeout: 60, retries: 3 }, local: () => {}, onGiveUp: () => {}, log: () => {} })
  try {
    const body = new Uint8Array([0x80])
    for (const id of ['w', 'x', 'y']) await ob.enqueue({ id, dest: 'ship1', body, createdAt: Date.now(), expiresAt: 0, route: { method: 'cli.run' } })
    d.kick()
    await tick()
    assert.equal(published, ['w', 'x', 'y'])
    // The hub refused w (ship1 away) and, on the way, x and y: their nacks come later.
    d.onNack('w', 'ship1', 'offline')
    d.onOnline('ship1')
    await tick()
    assert.equal(published, ['w', 'x', 'y', 'w', 'x', 'y'], 'resent from the oldest once ship1 is back')
    // x's and y's refusals (sent before we heard of online) arrive now: they must not stop ship1 again.
    d.onNack('x', 'ship1', 'offline')
    d.onNack('y', 'ship1', 'offline')
    for (const id of ['w', 'x', 'y']) d.onAck(id)
    await ob.enqueue({ id: 'z', dest: 'ship1', body, createdAt: Date.now(), expiresAt: 0, route: { method: 'cli.run' } })
    d.kick()
    await tick()
    assert.equal(published.slice(6), ['z'], 'a new message still goes to ship1')
  } finally {
    d.stop()
    await ob.close()
  }
})

test.run()
