import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Outbox } from '../../src/store/outbox'
import { rejectsCode } from '../helpers'
import { fnv1a, IdTable, type IdHash } from '../../src/store/waiting-ids'

/** A stand-in hash with few values: every id collides with many others (long probe runs, wrapping the table's end). */
const poor = (values: number): IdHash => (b, start, end) => fnv1a(b, start, end) % values
/** All ids on one home near the table's end: runs wrap around to its start. */
const atEnd: IdHash = () => 1023

/** Checks `t` against a Map kept beside it: every id finds its slot, removed ones are gone. */
function agree(t: IdTable, want: Map<string, number>, gone: Iterable<string>, what: string): void {
  for (const [id, slot] of want) {
    assert.is(t.find(id), slot, `${what}: ${id}`)
    assert.is(t.idOf(slot), id, `${what}: idOf ${slot}`)
  }
  for (const id of gone) assert.is(t.find(id), -1, `${what}: ${id} removed`)
  assert.is(t.size, want.size, `${what}: size`)
  assert.equal([...t.slots()].sort((a, b) => a - b), [...want.values()].sort((a, b) => a - b), `${what}: slots`)
}

for (const [name, hash] of [['fnv1a', fnv1a], ['8 hash values', poor(8)], ['1 hash value at the end', atEnd]] as const) {
  test(`id table (${name}) - adds past several growths, removals in and out of probe runs, slots taken again`, () => {
    const t = new IdTable(hash)
    const want = new Map<string, number>()
    const gone = new Set<string>()
    const n = hash === fnv1a ? 20_000 : 1500
    // Ids of several lengths, some not ASCII (packed as UTF-8).
    const idOf = (i: number): string => (i % 5 === 0 ? `é-${i}-ü` : i % 3 === 0 ? `01J${String(i).padStart(23, '0')}` : `m${i}`)
    for (let i = 0; i < n; i++) {
      t.add(i, idOf(i))
      want.set(idOf(i), i)
    }
    agree(t, want, gone, 'added')
    // Removed: every third, then a block in the middle (holes inside runs, shifts back across them).
    const out = [...want.keys()].filter((_, i) => i % 3 === 1 || (i > n / 3 && i < n / 2))
    const freed: number[] = []
    for (const id of out) {
      freed.push(want.get(id)!)
      t.remove(want.get(id)!)
      want.delete(id)
      gone.add(id)
    }
    agree(t, want, gone, 'removed')
    // Freed slots taken again by new ids, then new slots (more than the packed buffer's dead bytes: it is repacked).
    let slot = n
    for (let i = 0; i < out.length * 2; i++) {
      const id = `again-${i}`
      const s = i < freed.length ? freed[i]! : slot++
      t.add(s, id)
      want.set(id, s)
    }
    agree(t, want, [...gone], 'added again')
    assert.is(t.find('never-there'), -1)
  })
}

test('id table - reserved for a scan, trimmed after it, then grown and repacked again', () => {
  const t = new IdTable()
  const want = new Map<string, number>()
  t.reserve(30_000)
  for (let i = 0; i < 30_000; i++) {
    const b = Buffer.from(`01JX${String(i).padStart(22, '0')}`)
    t.addBytes(i, b, 0, b.length)
    want.set(b.toString(), i)
  }
  t.trim()
  agree(t, want, [], 'trimmed')
  const gone: string[] = []
  for (let i = 0; i < 30_000; i += 2) {
    const id = `01JX${String(i).padStart(22, '0')}`
    t.remove(i)
    want.delete(id)
    gone.push(id)
  }
  t.trim() // with dead bytes: the live ones copied into a smaller buffer
  agree(t, want, gone, 'removed and trimmed')
  for (let i = 30_000; i < 60_000; i++) {
    t.add(i, `n${i}`)
    want.set(`n${i}`, i)
  }
  agree(t, want, gone, 'grown after')
})

test('id table - bytes found as their string is; ids of 255 bytes fit, longer ones are never found', () => {
  const t = new IdTable()
  const long = 'x'.repeat(255)
  t.add(0, long)
  t.add(1, 'ü'.repeat(127)) // 254 bytes
  assert.is(t.find(long), 0)
  assert.is(t.find('ü'.repeat(127)), 1)
  assert.is(t.find('x'.repeat(256)), -1)
  assert.is(t.find('ü'.repeat(128)), -1)
  assert.throws(() => t.add(2, 'y'.repeat(256)))
  const b = Buffer.from(`..${long}..`)
  assert.is(t.findBytes(b, 2, 255), 0)
  assert.is(t.findBytes(b, 2, 254), -1)
})

test('outbox - format 4: 3000 stored records found, removed and restarted through the id table (a restart scans them back by bytes)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-ids-'))
  const ids = Array.from({ length: 3000 }, (_, i) => (i % 4 === 0 ? `ü${i}` : `01JX${String(i).padStart(22, '0')}`))
  let ob = await Outbox.open({ dir, maxBytes: 1 << 24 })
  await Promise.all(ids.map((id, i) => ob.enqueue({ id, dest: `ship${i % 3}`, body: new Uint8Array(20).fill(i & 255), createdAt: i, expiresAt: 0 })))
  await ob.checkpoint()
  const gone = ids.filter((_, i) => i % 2 === 1)
  await ob.removeAll(gone)
  const kept = ids.filter((_, i) => i % 2 === 0)
  const check = (o: Outbox): void => {
    for (const id of kept) assert.is(o.get(id)?.id, id)
    for (const id of gone) assert.is(o.get(id), undefined)
    assert.equal(o.all().map((e) => e.id), kept)
  }
  check(ob)
  await rejectsCode(ob.enqueue({ id: kept[7]!, dest: 'ship1', body: new Uint8Array(1), createdAt: 0, expiresAt: 0 }), 'outbox_duplicate')
  await ob.close()
  ob = await Outbox.open({ dir, maxBytes: 1 << 24 })
  check(ob)
  await rejectsCode(ob.enqueue({ id: kept[9]!, dest: 'ship1', body: new Uint8Array(1), createdAt: 0, expiresAt: 0 }), 'outbox_duplicate')
  await ob.enqueue({ id: gone[3]!, dest: 'ship1', body: new Uint8Array(1), createdAt: 0, expiresAt: 0 }) // a removed id may come again
  await ob.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

test.run()
