/**
 * The dedup set's lookup of a new id (src/store/seen-runs.ts): an id above every key stored and
 * every key added since the snapshot is new without a lookup; below, it is looked up.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SeenSet } from '../../src/store/seen-runs'

const ulid = (n: number): string => `01J${String(n).padStart(23, '0')}`

test('seen set - a key below the newest one added since the snapshot is looked up, not taken as new; above it, it is new', () => {
  const set = new SeenSet()
  // Out of order, as ids from several senders come: the newest first, then an older one.
  set.add(ulid(50), 1)
  set.add(ulid(10), 1)
  set.add(ulid(30), 1)
  for (const n of [10, 30, 50]) assert.ok(set.has(ulid(n)), `${n} added`)
  for (const n of [5, 20, 40, 60]) assert.not.ok(set.has(ulid(n)), `${n} not added`)
  set.flush(0, () => 1)
  set.add(ulid(70), 2)
  set.add(ulid(55), 2)
  for (const n of [10, 30, 50, 55, 70]) assert.ok(set.has(ulid(n)), `${n} after the snapshot`)
  for (const n of [52, 60, 80]) assert.not.ok(set.has(ulid(n)), `${n} never added`)
})

test.run()
