/**
 * A damaged snapshot is caught at start: it fails its checksum (or, written before checksums,
 * SQLite's quick_check), is set aside as `<name>.damaged`, and the snapshot kept before it plus
 * the journal after that bring everything back.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { listSegments } from '../../src/store/journal'
import { Outbox } from '../../src/store/outbox'

const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-snapcheck-'))
const entry = (id: string) => ({ id, dest: 'ship1', body: new Uint8Array(300).fill(0x61), createdAt: 1, expiresAt: 2 })
const open = (dir: string, warn?: (m: string) => void): Promise<Outbox> => Outbox.open({ dir, maxBytes: 1 << 24, ...(warn ? { warn } : {}) })
const snapshots = (dir: string): string[] => fs.readdirSync(dir).filter((f) => /^snapshot-\d+\.db$/.test(f)).sort()

/** Flip one byte in the middle of a file (a bad sector, a bit flip in transit). */
function flipMiddle(file: string): void {
  const bytes = fs.readFileSync(file)
  bytes[Math.floor(bytes.length / 2)]! ^= 0x40
  fs.writeFileSync(file, bytes)
}

/** Two snapshots on disk: a0..a19 in the first, b0..b19 and the removal of a0..a4 in the second. */
async function twoSnapshots(dir: string): Promise<void> {
  const ob = await open(dir)
  for (let i = 0; i < 20; i++) await ob.enqueue(entry(`a${i}`))
  await ob.checkpoint()
  for (let i = 0; i < 20; i++) await ob.enqueue(entry(`b${i}`))
  for (let i = 0; i < 5; i++) await ob.remove(`a${i}`)
  await ob.close()
}

const expected = [...Array.from({ length: 15 }, (_, i) => `a${i + 5}`), ...Array.from({ length: 20 }, (_, i) => `b${i}`)]

test('a flipped byte in the newest snapshot: caught by its checksum, set aside, and the one before it plus the journal bring everything back', async () => {
  const dir = tmpDir()
  await twoSnapshots(dir)
  const [older, newest] = snapshots(dir)
  assert.ok(older && newest, `two snapshots kept: ${fs.readdirSync(dir).join(' ')}`)
  flipMiddle(path.join(dir, newest))
  const warnings: string[] = []
  const ob = await open(dir, (m) => warnings.push(m))
  assert.equal(ob.all().map((e) => e.id), expected)
  for (const e of ob.all()) assert.equal(e.body, entry(e.id).body, `${e.id} reads back whole`)
  assert.ok(warnings.some((w) => w.includes('outbox_corrupt') && w.includes(newest) && w.includes('damaged')), warnings.join('\n'))
  assert.is(ob.stats().recovery.damagedSnapshots.length, 1)
  assert.ok(fs.existsSync(path.join(dir, `${newest}.damaged`)), 'kept aside for a look, never loaded again')
  // It goes on working, and its next snapshot is a good one.
  await ob.enqueue(entry('c0'))
  await ob.remove('b0')
  await ob.close()
  const again = await open(dir, (m) => warnings.push(`again: ${m}`))
  assert.equal(again.all().map((e) => e.id), [...expected.filter((id) => id !== 'b0'), 'c0'])
  assert.is(again.stats().recovery.damagedSnapshots.length, 0)
  await again.close()
})

test('a damaged snapshot with nothing kept before it: set aside, the journal after it replayed, the loss said', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  for (let i = 0; i < 10; i++) await ob.enqueue(entry(`a${i}`))
  await ob.close()
  const [only] = snapshots(dir)
  flipMiddle(path.join(dir, only!))
  const warnings: string[] = []
  const again = await open(dir, (m) => warnings.push(m))
  assert.ok(warnings.some((w) => w.includes('outbox_corrupt') && w.includes('lost')), warnings.join('\n'))
  // No send fails on a malformed database: the store works.
  await again.enqueue(entry('n0'))
  assert.ok(again.get('n0'))
  await again.close()
})

test('a snapshot written before checksums (no .sum beside it) is checked by SQLite: a damaged header is caught', async () => {
  const dir = tmpDir()
  await twoSnapshots(dir)
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.sum')) fs.rmSync(path.join(dir, f))
  const newest = snapshots(dir).at(-1)!
  const file = path.join(dir, newest)
  const bytes = fs.readFileSync(file)
  bytes.write('not an SQLite db', 0)
  fs.writeFileSync(file, bytes)
  const warnings: string[] = []
  const ob = await open(dir, (m) => warnings.push(m))
  assert.equal(ob.all().map((e) => e.id), expected)
  assert.ok(warnings.some((w) => w.includes('outbox_corrupt') && w.includes(newest)), warnings.join('\n'))
  await ob.close()
})

test('a snapshot keeps the one before it and the journal between them, and lets go of older ones', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  for (let round = 0; round < 4; round++) {
    await ob.enqueue(entry(`r${round}`))
    await ob.checkpoint()
  }
  const snaps = snapshots(dir).map((f) => Number(/\d+/.exec(f)![0]))
  assert.is(snaps.length, 2, fs.readdirSync(dir).join(' '))
  const sums = fs.readdirSync(dir).filter((f) => f.endsWith('.sum'))
  assert.is(sums.length, 2, 'each with its checksum')
  assert.ok(listSegments(dir).some((s) => s > snaps[0]! && s <= snaps[1]!), 'the journal between them is kept')
  assert.not.ok(listSegments(dir).some((s) => s <= snaps[0]!), 'nothing the older one covers')
  await ob.close()
})

test.run()
