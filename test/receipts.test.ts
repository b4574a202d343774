/**
 * The receipts of one read recorded together (src/receipts.ts): one record call for the
 * envelopes received in the same turn, each ACKed and run after it resolved; after a failed
 * record, those on disk all the same run (a resend would be a duplicate), the others do not.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ReceiptGroup } from '../src/receipts'
import type { Envelope } from '../src/wire/envelope'

const env = (id: string): Envelope => ({ id, fromNode: 'central', toNode: 'ship1', method: 'node.pong', createdAt: 1 })
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

test('receipts - the envelopes of one turn are recorded with one call, then each is done in arrival order', async () => {
  const calls: string[][] = []
  const done: string[] = []
  const group = new ReceiptGroup({ record: async (ids) => { calls.push(ids) }, durable: () => false, done: (e) => done.push(e.id), failed: () => assert.unreachable() })
  // As the transport hands them over: from a read's callback, one microtask apart.
  await turn()
  for (const id of ['a', 'b', 'c']) { group.add(env(id)); await Promise.resolve() }
  assert.equal(done, [], 'nothing is done before its record resolved')
  await turn()
  assert.equal(calls, [['a', 'b', 'c']])
  assert.equal(done, ['a', 'b', 'c'])
  group.add(env('d'))
  await turn()
  assert.equal(calls, [['a', 'b', 'c'], ['d']], 'a later turn is a group of its own')
  // A read of many (inflated zbatch frames): recorded in pieces of 128, each done as it lands.
  calls.length = 0
  for (let i = 0; i < 300; i++) group.add(env(`m${i}`))
  await turn()
  assert.equal(calls.map((ids) => ids.length), [128, 128, 44])
  assert.equal(done.length, 304)
})

test('receipts - flushNow records what waits at once (a request not to a sink must not overtake it) and resolves once those ran', async () => {
  const calls: string[][] = []
  const done: string[] = []
  const group = new ReceiptGroup({ record: async (ids) => { calls.push(ids) }, durable: () => false, done: (e) => done.push(e.id), failed: () => assert.unreachable() })
  assert.is(group.flushNow(), undefined, 'nothing waits')
  group.add(env('chunk1'))
  group.add(env('chunk2'))
  const before = group.flushNow()
  assert.equal(calls, [['chunk1', 'chunk2']], 'recorded at once, ahead of what comes next')
  await before
  assert.equal(done, ['chunk1', 'chunk2'])
  await turn()
  assert.equal(calls.length, 1, 'the scheduled flush finds nothing left')
})

test('receipts - a failed record: what is on disk all the same is done (it would be taken for a duplicate), the rest failed', async () => {
  const done: string[] = []
  const failed: string[] = []
  const group = new ReceiptGroup({
    record: () => Promise.reject(new Error('disk gone')),
    durable: (id) => id === 'b',
    done: (e) => done.push(e.id),
    failed: (e, err) => failed.push(`${e.id}: ${err.message}`),
  })
  for (const id of ['a', 'b', 'c']) group.add(env(id))
  await turn()
  assert.equal(done, ['b'])
  assert.equal(failed, ['a: disk gone', 'c: disk gone'])
})

test.run()
