/**
 * ACK deadlines (one timer for all messages in flight, a queue per timeout length): a message
 * whose ACK never comes is sent again after its own ackTimeout while thousands of others around
 * it are acknowledged; acknowledged ones are never sent again. A real outbox on disk; the
 * transport is this test's edge and says when bytes are written, as tcp does.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Delivery } from '../src/delivery'
import { Outbox } from '../src/store/outbox'
import type { Outbound, Transport } from '../src/transport'
import { tmpDir } from './fixtures/ports'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

test('delivery - an unacknowledged message is resent after its own ackTimeout among thousands acknowledged', async () => {
  const ob = await Outbox.open({ dir: tmpDir(), maxBytes: 64 << 20 })
  // Each publish's time, per id.
  const sent = new Map<string, number[]>()
  const transport = {
    kind: 'memory', connected: true, reportsWritten: true,
    publish: async (m: Outbound) => { sent.set(m.id, [...(sent.get(m.id) ?? []), performance.now()]); setImmediate(() => m.written?.()) },
  } as unknown as Transport
  const d = new Delivery({ self: 'central', outbox: ob, transport, defaults: { ackTimeout: 60, retries: 3 }, local: () => {}, onGiveUp: () => {}, log: () => {}, window: 5000 })
  try {
    const body = new Uint8Array([0x80])
    const enqueue = (id: string, ackTimeout: number): Promise<unknown> => ob.enqueue({ id, dest: 'ship1', body, createdAt: Date.now(), expiresAt: 0, route: { method: 'cli.run', ackTimeout, retries: 3 } })
    await enqueue('stuck1', 1)
    await Promise.all(Array.from({ length: 3000 }, (_, i) => enqueue(`m${String(i).padStart(5, '0')}`, i % 2 === 0 ? 1 : 2)))
    await enqueue('stuck2', 2)
    d.kick()
    // The others are acknowledged as they go; the two stuck ones never are.
    while (sent.size < 3002) {
      await sleep(5)
      for (const id of sent.keys()) if (!id.startsWith('stuck')) d.onAck(id)
    }
    await sleep(3500)
    for (const [id, ms] of [['stuck1', 1000], ['stuck2', 2000]] as const) {
      const times = sent.get(id)!
      assert.ok(times.length >= 2, `${id} resent after its ackTimeout (sent ${times.length} times)`)
      for (let k = 1; k < times.length; k++) assert.ok(times[k]! - times[k - 1]! >= ms - 20, `${id}: ${Math.round(times[k]! - times[k - 1]!)} ms between sends, its ackTimeout is ${ms}`)
    }
    assert.is([...sent].filter(([id, t]) => !id.startsWith('stuck') && t.length > 1).length, 0, 'nothing acknowledged went again')
  } finally {
    d.stop()
    await ob.close()
  }
})

test.run()
