import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SeqOrder } from '../src/seq-order'
import type { Envelope } from '../src/wire/envelope'

const reply = (inReplyTo: string, seq: number | undefined, final = false): Envelope =>
  ({ id: `${inReplyTo}-${seq ?? 'x'}`, toNode: 'central', fromNode: 'ship1', method: 'reply.file.append', inReplyTo, final, createdAt: 0, ...(seq === undefined ? {} : { seq }) })

function order(gapMs = 10_000): { out: string[]; o: SeqOrder } {
  const out: string[] = []
  const o = new SeqOrder((env) => out.push(env.id), gapMs)
  return { out, o }
}

test('seq order - replies in order pass straight through; a reply without seq too', () => {
  const { out, o } = order()
  o.add(reply('a', 0))
  o.add(reply('a', 1))
  o.add(reply('a', 2, true))
  o.add(reply('b', undefined, true))
  assert.equal(out, ['a-0', 'a-1', 'a-2', 'b-x'])
  o.close()
})

test('seq order - a chunk that overtook waits for the earlier one; duplicates are dropped; requests are separate', () => {
  const { out, o } = order()
  o.add(reply('a', 1))
  o.add(reply('b', 0))
  o.add(reply('a', 2, true))
  assert.equal(out, ['b-0'])
  o.add(reply('a', 0))
  o.add(reply('a', 1))
  o.add(reply('a', 0))
  assert.equal(out, ['b-0', 'a-0', 'a-1', 'a-2'])
  o.close()
})

test('seq order - a chunk lost for good is given up on after the wait; an error reply flushes what is held', async () => {
  const { out, o } = order(100)
  o.add(reply('a', 0))
  o.add(reply('a', 2))
  o.add(reply('a', 3, true))
  assert.equal(out, ['a-0'])
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal(out, ['a-0', 'a-2', 'a-3'])
  const { out: out2, o: o2 } = order()
  o2.add(reply('c', 1))
  o2.add(reply('c', undefined, true)) // e.g. interrupted after a restart of the receiver
  assert.equal(out2, ['c-1', 'c-x'])
  o.close()
  o2.close()
})

test.run()
