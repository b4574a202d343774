/**
 * Delivery hands what one pump finds ready to transport.publishAll together (tcp: one write
 * callback and one promise for them all); a lone message still goes by publish, at once. A real
 * outbox on disk; the transport is this test's edge (it records what delivery hands it).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Delivery } from '../src/delivery'
import { Outbox } from '../src/store/outbox'
import type { Outbound, Transport } from '../src/transport'
import { tmpDir } from './fixtures/ports'

const tick = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Wait (up to 5 s: a loaded machine's fdatasync) until `done` holds; the assertions after it say what did not. */
async function until(done: () => boolean): Promise<void> {
  for (const end = Date.now() + 5000; !done() && Date.now() < end;) await tick(5)
}

function edge(refuse: (msgs: readonly Outbound[]) => (Error | undefined)[] | undefined) {
  const calls: { kind: 'one' | 'all'; ids: string[]; written?: () => void }[] = []
  const transport = {
    kind: 'memory', connected: true, reportsWritten: true,
    publish: async (m: Outbound) => { calls.push({ kind: 'one', ids: [m.id], ...(m.written ? { written: m.written } : {}) }) },
    publishAll: async (msgs: readonly Outbound[], written?: () => void) => {
      calls.push({ kind: 'all', ids: msgs.map((m) => m.id), ...(written ? { written } : {}) })
      return refuse(msgs)
    },
  } as unknown as Transport
  return { calls, transport }
}

test('delivery - messages ready together go in one publishAll, in order; an event there is done once taken; a lone one goes by publish', async () => {
  const ob = await Outbox.open({ dir: tmpDir(), maxBytes: 1 << 20 })
  const { calls, transport } = edge(() => undefined)
  const d = new Delivery({ self: 'central', outbox: ob, transport, defaults: { ackTimeout: 60, retries: 3 }, local: () => {}, onGiveUp: () => {}, log: () => {} })
  try {
    const body = new Uint8Array([0x80])
    await ob.enqueue({ id: 'a', dest: 'ship1', body, createdAt: Date.now(), expiresAt: 0, route: { method: 'cli.run' } })
    await ob.enqueue({ id: 'e', dest: 'ship1', body, createdAt: Date.now(), expiresAt: 0, route: { method: 'log.line', ackTimeout: 0 } })
    await ob.enqueue({ id: 'b', dest: 'ship1', body, createdAt: Date.now(), expiresAt: 0, route: { method: 'cli.run' } })
    d.kick()
    // The event leaves the outbox once taken: a removal, committed with an fdatasync.
    await until(() => calls.length > 0 && ob.get('e') === undefined)
    assert.equal(calls.map((c) => [c.kind, c.ids]), [['all', ['a', 'e', 'b']]])
    assert.ok(calls[0]!.written, 'one write callback for the commands among them')
    assert.is(ob.get('e'), undefined, 'the event, taken, left the outbox')
    assert.ok(ob.get('a') && ob.get('b'), 'the commands wait for their ACKs')
    await ob.enqueue({ id: 'c', dest: 'ship1', body, createdAt: Date.now(), expiresAt: 0, route: { method: 'cli.run' } })
    d.kick()
    await tick()
    assert.equal(calls.slice(1).map((c) => [c.kind, c.ids]), [['one', ['c']]], 'a lone message goes by publish')
  } finally {
    d.stop()
    await ob.close()
  }
})

test('delivery - publishAll: a message the transport did not take goes again, unspent; the ACK timers start at the write callback', async () => {
  const ob = await Outbox.open({ dir: tmpDir(), maxBytes: 1 << 20 })
  let first = true
  const { calls, transport } = edge((msgs) => {
    if (!first) return undefined
    first = false
    return msgs.map((m) => (m.id === 'y' ? new Error('not taken') : undefined))
  })
  const d = new Delivery({ self: 'central', outbox: ob, transport, defaults: { ackTimeout: 60, retries: 3 }, local: () => {}, onGiveUp: () => {}, log: () => {} })
  try {
    const body = new Uint8Array([0x80])
    for (const id of ['x', 'y', 'z']) await ob.enqueue({ id, dest: 'ship1', body, createdAt: Date.now(), expiresAt: 0, route: { method: 'cli.run', ackTimeout: 0.05, retries: 3 } })
    d.kick()
    await tick()
    d.kick()
    await tick()
    assert.equal(calls.map((c) => [c.kind, c.ids]), [['all', ['x', 'y', 'z']], ['one', ['y']]], 'only y, refused, goes again')
    assert.is(ob.get('y')!.attempts, 0, 'its attempt unspent')
    // No write callback yet: no ACK timer runs, nothing is resent past the 50 ms ackTimeout.
    await tick(200)
    assert.is(calls.length, 2)
    calls[0]!.written!()
    await tick(200)
    assert.equal(calls.slice(2).flatMap((c) => c.ids).sort(), ['x', 'z'], 'x and z resent once their timers ran from the write')
  } finally {
    d.stop()
    await ob.close()
  }
})

test.run()
