import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DestQueue } from '../../src/store/outbox-queue'
import type { LiveEntry } from '../../src/store/outbox-table'

/** A seeded generator: the same run every time. */
function rng(seed: number): () => number {
  let s = seed
  return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
}

const entry = (seq: number, createdAt: number, size: number): LiveEntry => ({ id: `m${seq}`, dest: 'ship1', seq, createdAt, expiresAt: 0, attempts: 0, nextAt: 0, body: new Uint8Array(size) })

for (const [name, jitter] of [['createdAt in seq order', 0], ['createdAt out of seq order now and then', 50]] as const) {
  test(`DestQueue - after() (bisection), bytes and oldest() follow a walk of the live entries: ${name}`, () => {
    const r = rng(jitter + 7)
    const q = new DestQueue()
    const live: LiveEntry[] = []
    let seq = 0
    for (let step = 0; step < 3000; step++) {
      // Mostly ACKed from the front, some out of order, sometimes a burst of new ones; empty now and then.
      if (r() < 0.55 || live.length === 0) {
        const n = 1 + Math.floor(r() * 40)
        for (let k = 0; k < n; k++) {
          seq += 1 + Math.floor(r() * 3)
          const e = entry(seq, seq * 10 - Math.floor(r() * jitter * 10), 1 + Math.floor(r() * 300))
          q.add(e)
          live.push(e)
        }
      } else {
        const at = r() < 0.8 ? 0 : Math.floor(r() * live.length)
        q.delete(live.splice(at, 1)[0]!)
      }
      if (step % 7 !== 0) continue
      assert.is(q.size, live.length)
      assert.is(q.bytes, live.reduce((s, e) => s + e.body.length, 0))
      assert.is(q.oldest(), live.length === 0 ? Infinity : Math.min(...live.map((e) => e.createdAt)))
      const after = live.length === 0 ? 0 : live[Math.floor(r() * live.length)]!.seq - Math.floor(r() * 2)
      const limit = 1 + Math.floor(r() * 60)
      const out: LiveEntry[] = []
      q.after(after, limit, out)
      assert.equal(out.map((e) => e.seq), live.filter((e) => e.seq > after).slice(0, limit).map((e) => e.seq), `after ${after}, limit ${limit}`)
    }
  })
}

test('DestQueue - after() appends to what is already there, up to the limit in all', () => {
  const q = new DestQueue()
  for (let i = 1; i <= 10; i++) q.add(entry(i, i, 1))
  const out = [entry(0, 0, 1)]
  q.after(3, 4, out)
  assert.equal(out.map((e) => e.seq), [0, 4, 5, 6])
})

test.run()
