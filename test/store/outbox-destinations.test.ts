import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Outbox } from '../../src/store/outbox'

const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-dests-'))
const entry = (id: string, dest: string, size: number, createdAt: number) => ({ id, dest, body: new Uint8Array(size).fill(0x61), createdAt, expiresAt: 0 })

test('outbox - messages in memory removed in and out of order: head() keeps FIFO order per destination, counts follow', async () => {
  const dir = tmpDir()
  const ob = await Outbox.open({ dir, maxBytes: 1 << 26, checkpointBytes: 1 << 26 })
  const ids = Array.from({ length: 5000 }, (_, i) => `m${String(i).padStart(5, '0')}`)
  const dest = (i: number): string => (i % 7 === 0 ? 'ship2' : 'ship1')
  await Promise.all(ids.map((id, i) => ob.enqueue(entry(id, dest(i), 10, i))))
  // Most acknowledged in order from the front (past the point where the queue is compacted),
  // some out of order, some never.
  const gone = new Set<string>()
  for (let i = 0; i < 3000; i++) if (i % 11 !== 3) gone.add(ids[i]!)
  for (let i = 3000; i < 5000; i += 3) gone.add(ids[i]!)
  const order = [...gone]
  for (let k = 0; k < order.length; k += 400) await ob.removeAll(order.slice(k, k + 400).reverse())
  for (const d of ['ship1', 'ship2']) {
    const want = ids.filter((id, i) => dest(i) === d && !gone.has(id))
    assert.equal(ob.head(d, 10_000).map((e) => e.id), want, `${d}: what is left, in order`)
    const last = want[want.length >> 1]!
    const after = ob.get(last)!.seq
    assert.equal(ob.head(d, 5, after).map((e) => e.id), want.slice((want.length >> 1) + 1, (want.length >> 1) + 6), `${d}: after a seq`)
    assert.is(ob.perDestination().get(d)?.count, want.length)
  }
  await ob.removeAll(ids.filter((id) => !gone.has(id)))
  assert.equal(ob.destinations(), [])
  assert.is(ob.stats().count, 0)
  await ob.enqueue(entry('again', 'ship1', 10, 0))
  assert.equal(ob.head('ship1', 10).map((e) => e.id), ['again'])
  await ob.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

for (const [layout, keepOldFormat] of [['body files', false], ['inline (format 1)', true]] as const) {
  test(`outbox - per destination counts, bytes and the oldest, over stored and new messages (${layout})`, async () => {
    const dir = tmpDir()
    let ob = await Outbox.open({ dir, maxBytes: 1 << 20, keepOldFormat })
    await ob.enqueue(entry('a1', 'ship1', 100, 5000))
    await ob.enqueue(entry('a2', 'ship1', 150, 7000))
    await ob.enqueue(entry('b1', 'ship2', 70, 6000))
    await ob.close() // its snapshot makes them stored rows
    ob = await Outbox.open({ dir, maxBytes: 1 << 20, keepOldFormat })
    await ob.enqueue(entry('a3', 'ship1', 30, 4000)) // new, in memory, and older by createdAt
    await ob.enqueue(entry('c1', 'ship3', 10, 9000))
    await ob.remove('b1')
    assert.equal(Object.fromEntries(ob.perDestination()), {
      ship1: { count: 3, bytes: 280, oldest: 4000 },
      ship3: { count: 1, bytes: 10, oldest: 9000 },
    })
    await ob.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  test(`outbox - many stored messages removed in one commit leave the right counts, bodies and restart (${layout})`, async () => {
    const dir = tmpDir()
    let ob = await Outbox.open({ dir, maxBytes: 1 << 22, keepOldFormat })
    // 300 stored rows over two destinations (more than one statement's worth of removals).
    const ids = Array.from({ length: 300 }, (_, i) => `m${String(i).padStart(3, '0')}`)
    await Promise.all(ids.map((id, i) => ob.enqueue(entry(id, i % 2 === 0 ? 'ship1' : 'ship2', 100 + (i % 7), 1000 + i))))
    await ob.checkpoint()
    // Removed in the same tick: one commit. Kept: every 30th, and one removed twice.
    const kept = ids.filter((_, i) => i % 30 === 0)
    const gone = ids.filter((id) => !kept.includes(id))
    await Promise.all([...gone, gone[0]!, 'nothing-here'].map((id) => ob.remove(id)))
    const expect = (o: Outbox): void => {
      assert.equal(o.all().map((e) => e.id), kept)
      assert.is(o.stats().count, kept.length)
      assert.is(o.stats().bytes, kept.reduce((n, id) => n + 100 + (Number(id.slice(1)) % 7), 0))
      assert.equal(Object.fromEntries([...o.perDestination()].map(([d, s]) => [d, s.count])), { ship1: 10 })
      assert.equal(o.head('ship1', 3).map((e) => e.id), kept.slice(0, 3))
      assert.is(o.get(gone[5]!), undefined)
    }
    expect(ob)
    await ob.close()
    ob = await Outbox.open({ dir, maxBytes: 1 << 22, keepOldFormat })
    expect(ob)
    await ob.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
}

/** What perDestination() must say, by a walk over every waiting message. */
function walked(o: Outbox): Record<string, { count: number; bytes: number; oldest: number }> {
  const out: Record<string, { count: number; bytes: number; oldest: number }> = {}
  for (const e of o.all()) {
    const s = (out[e.dest] ??= { count: 0, bytes: 0, oldest: Infinity })
    s.count++
    s.bytes += e.body.length
    s.oldest = Math.min(s.oldest, e.createdAt)
  }
  return out
}

test('outbox - format 4: per destination counts kept as stored records come and go match a walk (front removed, createdAt out of order, attempts, restart, move from format 3)', async () => {
  const dir = tmpDir()
  // Stored as format-3 rows first, then moved to records at the next open.
  let ob = await Outbox.open({ dir, maxBytes: 1 << 24, keepOldFormat: true })
  await Promise.all(Array.from({ length: 40 }, (_, i) => ob.enqueue(entry(`r${i}`, i % 2 === 0 ? 'ship1' : 'ship2', 10 + i, 1000 + i))))
  await ob.close()
  ob = await Outbox.open({ dir, maxBytes: 1 << 24 })
  const check = (what: string): void => assert.equal(Object.fromEntries(ob.perDestination()), walked(ob), what)
  check('moved from rows')
  // ship1 in createdAt order; ship2 gets an older one after newer ones (out of order).
  for (let i = 0; i < 200; i++) await ob.enqueue(entry(`a${i}`, 'ship1', 20 + (i % 5), 2000 + i))
  await ob.enqueue(entry('old', 'ship2', 7, 500))
  await ob.enqueue(entry('new', 'ship2', 9, 9000))
  await ob.checkpoint() // all of them records now
  check('after a snapshot')
  await ob.removeAll(['r0', 'r2', 'r4', 'a0', 'a1']) // ship1's front: its oldest moves on
  check('front removed')
  await ob.remove('old') // ship2's oldest, not at its front
  check('an older one in the middle removed')
  await ob.recordAttempt('a5', 2, 123) // a retry changes neither count nor age
  check('attempted')
  for (let i = 2; i < 150; i++) await ob.remove(`a${i}`) // enough for the queue to compact
  check('most of ship1 removed')
  await ob.close()
  ob = await Outbox.open({ dir, maxBytes: 1 << 24 })
  check('after a restart')
  await ob.enqueue(entry('older', 'ship1', 3, 100)) // hot, older than every stored one
  check('a new older one in memory')
  await ob.removeAll(ob.all().map((e) => e.id))
  assert.equal(Object.fromEntries(ob.perDestination()), {})
  await ob.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

test.run()
