import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Coalescer, partialTail } from '../src/coalesce'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function collect(o: { maxBytes?: number; maxDelayMs?: number } = {}): { pieces: Buffer[]; c: Coalescer } {
  const pieces: Buffer[] = []
  const c = new Coalescer({ ...o, flush: async (p) => { pieces.push(Buffer.from(p)) } })
  return { pieces, c }
}

test('coalesce - small writes close together become one piece after the delay', async () => {
  const { pieces, c } = collect({ maxDelayMs: 50 })
  await c.push('a')
  await c.push('b')
  await c.push('c')
  assert.is(pieces.length, 0, 'nothing before the delay')
  await sleep(300)
  assert.equal(pieces.map(String), ['abc'])
  assert.is((await c.end()).length, 0)
})

test('coalesce - a piece goes out as soon as maxBytes have gathered; a large write is cut in maxBytes pieces', async () => {
  const { pieces, c } = collect({ maxBytes: 10, maxDelayMs: 10_000 })
  await c.push('0123456789abc')
  await c.push(Buffer.alloc(25, 0x78))
  assert.equal(pieces.map((p) => p.length), [10, 10, 10], 'whole pieces at once; the 8 bytes left wait')
  const rest = await c.end()
  assert.is(rest.length, 8)
  assert.is(Buffer.concat([...pieces, Buffer.from(rest)]).toString(), '0123456789abc' + 'x'.repeat(25))
})

test('coalesce - a piece never ends inside a UTF-8 character', async () => {
  const { pieces, c } = collect({ maxBytes: 4, maxDelayMs: 20 })
  const text = 'aéé€€😀b'
  const bytes = Buffer.from(text)
  // One byte at a time: the timer and the size limit both see half characters.
  for (const b of bytes) { await c.push(Buffer.from([b])); await sleep(3) }
  await sleep(100)
  const rest = await c.end()
  for (const p of pieces) assert.is(Buffer.from(p.toString('utf8')).length, p.length, `piece ${p.toString('hex')} is not whole UTF-8`)
  assert.is(Buffer.concat([...pieces, Buffer.from(rest)]).toString(), text)
})

test('coalesce - partialTail counts the bytes of an unfinished character', () => {
  const e = Buffer.from('€') // e2 82 ac
  assert.is(partialTail(Buffer.from('abc')), 0)
  assert.is(partialTail(e), 0)
  assert.is(partialTail(e.subarray(0, 1)), 1)
  assert.is(partialTail(e.subarray(0, 2)), 2)
  assert.is(partialTail(Buffer.concat([Buffer.from('x'), Buffer.from('😀').subarray(0, 3)])), 3)
})

test('coalesce - flushes are called in order, at most window at a time; a failure stops later flushes and is reported', async () => {
  const seen: string[] = []
  let active = 0
  const c = new Coalescer({
    maxBytes: 2, maxDelayMs: 5, window: 1,
    flush: async (p) => {
      active++
      assert.is(active, 1)
      await sleep(5)
      seen.push(Buffer.from(p).toString())
      active--
      if (seen.length === 2) throw new Error('outbox full')
    },
  })
  await c.push('aabbccdd')
  await c.end()
  assert.equal(seen, ['aa', 'bb'])
  assert.match(String(c.error), /outbox full/)
  // With a window, calls overlap but start in order.
  const calls: string[] = []
  let most = 0
  let now = 0
  const w = new Coalescer({ maxBytes: 1, window: 3, flush: async (p) => { calls.push(Buffer.from(p).toString()); most = Math.max(most, ++now); await sleep(10); now-- } })
  for (const ch of 'abcdefgh') await w.push(ch)
  await w.end()
  assert.is(calls.join(''), 'abcdefgh')
  assert.is(most, 3)
})

test.run()
