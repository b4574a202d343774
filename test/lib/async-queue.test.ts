/**
 * The transport's inbound queue a batch at a time (AsyncQueue.batches): what one read pushes
 * comes as one batch, in order, and what is queued when the queue ends still comes.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { AsyncQueue } from '../../src/lib/async-queue'

test('async queue - items pushed in one go while the consumer waits come as one batch, in order', async () => {
  const q = new AsyncQueue<number>()
  const got: number[][] = []
  const loop = (async () => { for await (const b of q.batches()) got.push([...b]) })()
  await new Promise((r) => setImmediate(r))
  for (let i = 0; i < 500; i++) q.push(i)
  await new Promise((r) => setImmediate(r))
  q.push(500)
  q.push(501)
  await new Promise((r) => setImmediate(r))
  q.end()
  await loop
  assert.equal(got, [Array.from({ length: 500 }, (_, i) => i), [500, 501]])
})

test('async queue - what was queued before the end still comes, then the loop ends', async () => {
  const q = new AsyncQueue<string>()
  q.push('a')
  q.push('b')
  q.end()
  q.push('c')
  const got: string[] = []
  for await (const b of q.batches()) got.push(...b)
  assert.equal(got, ['a', 'b'])
})

test('async queue - weighs what waits, and tells the producer once the consumer has taken it (a transport reads again then)', async () => {
  const q = new AsyncQueue<Uint8Array>((b) => b.length)
  let taken = 0
  q.onTaken = () => { taken++ }
  for (let i = 0; i < 3; i++) q.push(new Uint8Array(100))
  assert.is(q.size, 3)
  assert.is(q.weight, 300)
  const it = q.batches()[Symbol.asyncIterator]()
  const first = await it.next()
  assert.is(first.value?.length, 3)
  assert.is(q.weight, 0)
  await Promise.resolve()
  assert.is(taken, 1)
  // One at a time: told once the last queued item is taken.
  const one = new AsyncQueue<Uint8Array>((b) => b.length)
  let told = 0
  one.onTaken = () => { told++ }
  one.push(new Uint8Array(10))
  one.push(new Uint8Array(20))
  const each = one[Symbol.asyncIterator]()
  await each.next()
  assert.is(one.weight, 20)
  await each.next()
  assert.is(one.weight, 0)
  await Promise.resolve()
  assert.is(told, 1)
})

test.run()
