import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { RecentRequests } from '../../src/api/recent'
import type { Envelope } from '../../src/wire/envelope'
import { ulid } from '../../src/wire/ulid'

const req = (id = ulid()): Envelope => ({ id, toNode: 'ship1', fromNode: 'central', method: 'cli.run', createdAt: 1 })
const reply = (to: string, extra: Partial<Envelope> = {}): Envelope =>
  ({ id: ulid(), toNode: 'central', fromNode: 'ship1', method: 'reply.file.append', inReplyTo: to, createdAt: 2, ...extra })

test('recent - records a request, its stream replies and its final outcome', () => {
  const r = new RecentRequests()
  const e = req()
  r.add([e], 100)
  assert.is(r.get(e.id)!.final, false)
  r.reply(reply(e.id, { seq: 0, final: false, data: 'a' }))
  r.reply(reply(e.id, { seq: 1, final: true, data: new Uint8Array([98]), exitCode: 0 }))
  const rec = r.get(e.id)!
  assert.is(rec.final, true)
  assert.is(rec.error, undefined)
  assert.equal(rec.replies.map((x) => x.data), ['a', 'b'])
  assert.is(rec.acceptedAt, 100)
})

test('recent - an error reply is final and keeps its error; a reply to an unknown request makes a record', () => {
  const r = new RecentRequests()
  const id = ulid()
  r.reply(reply(id, { final: true, error: { code: 'denied', message: 'no' } }))
  assert.equal(r.get(id)!.error, { code: 'denied', message: 'no' })
  assert.is(r.get(id)!.toNode, 'ship1')
  assert.is(r.get(id)!.method, '')
})

test('recent - forgets the oldest past maxRequests and past maxBytes; caps bytes per request', () => {
  const r = new RecentRequests({ maxRequests: 3, maxBytes: 100, maxBytesPerRequest: 40 })
  const ids = [req(), req(), req(), req()].map((e) => { r.add([e], 0); return e.id })
  assert.is(r.size, 3)
  assert.is(r.get(ids[0]!), undefined)
  r.reply(reply(ids[1]!, { seq: 0, final: false, data: 'x'.repeat(30) }))
  r.reply(reply(ids[1]!, { seq: 1, final: false, data: 'x'.repeat(30) }))
  assert.is(r.get(ids[1]!)!.replies.length, 1)
  assert.is(r.get(ids[1]!)!.repliesDropped, 1)
  r.reply(reply(ids[2]!, { data: 'y'.repeat(40), final: true }))
  r.reply(reply(ids[3]!, { data: 'z'.repeat(40), final: true }))
  // 30 + 40 + 40 > 100: the oldest (ids[1]) goes.
  assert.is(r.get(ids[1]!), undefined)
  assert.ok(r.get(ids[2]!) && r.get(ids[3]!))
})

test.run()
