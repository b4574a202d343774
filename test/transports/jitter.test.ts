/**
 * Reconnect delays (transports/base.ts fullJitter, used by the tcp and NATS transports): drawn
 * evenly from zero up to the capped exponential backoff, so that nodes cut off at once by a
 * hub restart do not all come back in the same instant.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { fullJitter } from '../../transports/base'

test('jitter - a delay may be anything from zero to the backoff of its attempt', () => {
  assert.is(fullJitter(0, 250, 30_000, () => 0), 0)
  assert.is(fullJitter(0, 250, 30_000, () => 0.999_999), 250)
  assert.is(fullJitter(3, 250, 30_000, () => 0.5), 1000)
})

test('jitter - the backoff doubles per attempt up to its cap', () => {
  const top = (attempt: number): number => fullJitter(attempt, 250, 30_000, () => 1)
  assert.equal([0, 1, 2, 3, 6, 7, 20, 1000].map(top), [250, 500, 1000, 2000, 16_000, 30_000, 30_000, 30_000])
})

test('jitter - a thousand nodes failing together spread over the whole backoff', () => {
  const delays = Array.from({ length: 1000 }, () => fullJitter(5, 250, 30_000))
  const buckets = [0, 0, 0, 0]
  for (const d of delays) buckets[Math.min(3, Math.floor(d / 2000))]!++
  // 0–8 s in four quarters: each holds about a quarter (far from all in one).
  for (const b of buckets) assert.ok(b > 150 && b < 350, `quarters ${buckets.join(', ')}`)
})

test.run()
