/**
 * FIFO per (sender, receiver) on the receive path: requests to sinks (their receipts recorded a
 * read at a time, receipts.ts) and requests that are not (recorded with an inbox entry) brought
 * by one read start in the order they came.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { METHODS } from '../../methods/index'
import type { Method } from '../../src/method'
import { encode } from '../../src/wire/envelope'
import { Bus, until } from '../fixtures/inprocess'

test('receive - sink, request, sink in one read start in arrival order', async () => {
  const bus = new Bus()
  const runs: string[] = []
  const sink: Method = { name: 'test.sink', sink: true, kind: 'unary', summary: 'notes its start', run: async (ctx) => { runs.push(ctx.env.id); return {} } }
  const plain: Method = { name: 'test.plain', kind: 'unary', summary: 'notes its start', run: async (ctx) => { runs.push(ctx.env.id); return {} } }
  const methods = new Map([...METHODS, [sink.name, sink], [plain.name, plain]])
  try {
    const central = await bus.start('central')
    const ship1 = await bus.start('ship1', {}, 0, methods)
    const dispatcher = (ship1.node as unknown as { dispatcher: { receive(b: Uint8Array, from?: string, remote?: boolean): void } }).dispatcher
    for (let round = 0; round < 5; round++) {
      const envs = central.node.prepare([
        { toNode: 'ship1', method: 'test.sink', data: 'a' },
        { toNode: 'ship1', method: 'test.plain', data: 'b' },
        { toNode: 'ship1', method: 'test.sink', data: 'c' },
        { toNode: 'ship1', method: 'test.plain', data: 'd' },
        { toNode: 'ship1', method: 'test.sink', data: 'e' },
      ])
      runs.length = 0
      // One read: the envelopes handed over in the same turn, as a batch frame's are.
      for (const env of envs) dispatcher.receive(encode(env), 'central', true)
      await until(() => runs.length === envs.length, 10_000, 'all five to run')
      assert.equal(runs, envs.map((e) => e.id), `round ${round}: started in arrival order`)
    }
  } finally {
    await bus.destroy()
  }
})

test.run()
