/**
 * The receive path's records, in this process over the in-memory transport: what a receiver
 * writes for a message before it ACKs it, and that a resend or a restart runs nothing twice.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { METHODS } from '../../methods/index'
import type { Method } from '../../src/method'
import { Bus, until } from '../fixtures/inprocess'
import { MARK_PREFIX } from '../../src/receipts'

test('receive - a request to a sink is recorded as seen only: no inbox entry of its own while it runs (its read\'s mark only), a resend is a duplicate, a restart runs it not again', async () => {
  const bus = new Bus()
  const runs: string[] = []
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const sink: Method = { name: 'test.sink', sink: true, kind: 'unary', summary: 'notes the message, waits for the test', run: async (ctx) => { runs.push(ctx.env.id); await gate; return {} } }
  const methods = new Map([...METHODS, [sink.name, sink]])
  try {
    const central = await bus.start('central')
    let ship1 = await bus.start('ship1', {}, 0, methods)
    const [env] = await central.node.submit([{ toNode: 'ship1', method: 'test.sink', data: 'x'.repeat(64) }])
    await until(() => runs.length === 1, 10_000, 'the sink to run')
    // Running, and already durable as seen (it was ACKed): no inbox entry of its own, only its
    // read's mark (src/receipts.ts: how many sink requests a crash now would catch), closed once it ran.
    assert.equal(ship1.node.outbox.inbox().map((e) => e.id), [`${MARK_PREFIX}${env!.id}`])
    assert.ok(ship1.node.outbox.hasSeen(env!.id))
    release()
    await until(() => central.node.outbox.stats().count === 0, 10_000, 'the ACK at central')
    await until(() => ship1.node.outbox.inbox().length === 0, 10_000, 'the mark closed once the run ended')
    // The same id again: ACKed as a duplicate, not run.
    await central.node.submit([{ id: env!.id, toNode: 'ship1', method: 'test.sink', data: 'again' }])
    await until(() => ship1.logs.some((l) => l.includes(`${env!.id} from central is a duplicate`)), 10_000, 'the duplicate noticed')
    await until(() => central.node.outbox.stats().count === 0, 10_000, 'the second ACK at central')
    await bus.stop('ship1')
    ship1 = await bus.start('ship1', {}, 0, methods)
    assert.ok(ship1.node.outbox.hasSeen(env!.id), 'still seen after a restart')
    assert.equal(ship1.node.outbox.inbox(), [])
    assert.equal(runs, [env!.id], 'run once')
  } finally {
    release()
    await bus.destroy()
  }
})

test.run()
