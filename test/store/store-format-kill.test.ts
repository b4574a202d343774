/**
 * SIGKILL at each step of a snapshot in store format 4, and of the snapshot that moves a format-3
 * store's rows to records: nothing acknowledged is lost, nothing removed comes back, each
 * message is there once with its body, attempts and order. And messages withdrawn (one removeAll,
 * as Delivery.withdraw does) while they are records: the process killed right after, they stay gone.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Outbox } from '../../src/store/outbox'
import { bodyFor } from '../fixtures/outbox-body'
import { writeRowsSnapshot } from '../fixtures/snapshot-rows'

const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-format-kill-'))
const gone = Array.from({ length: 10 }, (_, i) => `gone${i}`)
const keep = Array.from({ length: 40 }, (_, i) => `keep${i}`)
const added = Array.from({ length: 10 }, (_, i) => `new${i}`)
/** Old messages interleaved: gone0, keep0..3, gone1, keep4..7, ... */
const old = gone.flatMap((g, i) => [g, ...keep.slice(4 * i, 4 * i + 4)])

function killAt(dir: string, step: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'fixtures', 'snapshot-killer.ts'), dir, step], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d })
    child.on('error', reject)
    child.on('close', (code, signal) => (signal === 'SIGKILL' && out === 'D\n' ? resolve(out) : reject(new Error(`killer ended with ${signal ?? code}: ${out}`))))
  })
}

async function check(dir: string, what: string): Promise<void> {
  const ob = await Outbox.open({ dir, maxBytes: 1 << 30 })
  try {
    assert.is(ob.format, 4, what)
    const all = ob.all()
    assert.equal(all.map((e) => e.id), [...keep, ...added], `${what}: every message once, removed ones gone, in order`)
    for (const e of all) assert.equal(e.body, bodyFor(e.id), `${what}: the body of ${e.id}`)
    assert.is(ob.get('keep5')?.attempts, 3, `${what}: attempts kept`)
    assert.equal(ob.head('node1', 3).map((e) => e.id), ['keep0', 'keep1', 'keep2'])
    await ob.checkpoint()
  } finally {
    await ob.close()
  }
  // Once more after a clean stop: all of it in records, nothing to replay.
  const again = await Outbox.open({ dir, maxBytes: 1 << 30 })
  try {
    assert.is(again.stats().recovery.replayedRecords, 0)
    assert.equal(again.all().map((e) => [e.id, e.body]), [...keep, ...added].map((id) => [id, bodyFor(id)]), `${what}: after a clean stop`)
    assert.is(again.get('keep5')?.attempts, 3)
  } finally {
    await again.close()
  }
}

for (const step of ['fsync', 'rename', 'renamed']) {
  test(`a format-3 store killed at "${step}" of the snapshot that moves its rows to records: all there, once`, async () => {
    const dir = tmpDir()
    await writeRowsSnapshot(dir, old.map((id, i) => ({ seq: i + 1, id, dest: 'node1', body: bodyFor(id), ...(id === 'keep5' ? { attempts: 3, nextAt: 5 } : {}), ...(i % 7 === 0 ? { route: { method: 'node.ping' } } : {}) })))
    await killAt(dir, step)
    await check(dir, `format 3, ${step}`)
  })

  test(`a format-4 store killed at "${step}" of a snapshot: all there, once`, async () => {
    const dir = tmpDir()
    const ob = await Outbox.open({ dir, maxBytes: 1 << 30 })
    for (const id of old) await ob.enqueue({ id, dest: 'node1', body: bodyFor(id), createdAt: 1, expiresAt: 2 })
    await ob.recordAttempt('keep5', 3, 5)
    await ob.close()
    await killAt(dir, step)
    await check(dir, `format 4, ${step}`)
  })
}

test('format 4: messages withdrawn (removeAll) while they are records in the snapshot, SIGKILL right after: gone after the restart, the rest there once', async () => {
  const dir = tmpDir()
  const ob = await Outbox.open({ dir, maxBytes: 1 << 30 })
  for (const id of old) await ob.enqueue({ id, dest: 'node1', body: bodyFor(id), createdAt: 1, expiresAt: 2 })
  await ob.recordAttempt('keep5', 3, 5)
  await ob.close() // a clean stop: every message a record in the snapshot's body files
  const stored = await Outbox.open({ dir, maxBytes: 1 << 30 })
  try {
    assert.is(stored.format, 4)
    assert.is(stored.stats().recovery.replayedRecords, 0, 'all of them in records, none in the journal')
  } finally {
    await stored.close()
  }
  await killAt(dir, 'withdraw')
  await check(dir, 'format 4, withdrawn then killed')
})

test.run()
