import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { listSegments, segmentName } from '../../src/store/journal'
import { abandonOutbox } from '../fixtures/abandon-outbox'
import { Outbox, type OutboxOptions } from '../../src/store/outbox'
import { bodyFor } from '../fixtures/outbox-body'
import { rejectsCode } from '../helpers'

const body = (n: number, fill = 0x62): Uint8Array => new Uint8Array(n).fill(fill)
const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-outbox-'))
const entry = (id: string, dest = 'ship1', size = 200) => ({ id, dest, body: body(size), createdAt: 1, expiresAt: 2 })

/**
 * The newest segment holding records, and where its data ends (segments are preallocated: the
 * file goes on in zeros, and the newest one may hold none yet).
 */
function lastData(dir: string): { file: string; end: number } {
  for (const n of listSegments(dir).reverse()) {
    const file = path.join(dir, segmentName(n))
    const buf = fs.readFileSync(file)
    let end = buf.length
    while (end > 0 && buf[end - 1] === 0) end--
    if (end > 0) return { file, end }
  }
  return { file: '', end: 0 }
}

/** Flip one bit `past` bytes after the first place `needle` is in the journal; returns the file and where the needle is. */
function flipAfter(dir: string, needle: string, past: number): { file: string; at: number } {
  for (const n of listSegments(dir)) {
    const file = path.join(dir, segmentName(n))
    const bytes = fs.readFileSync(file)
    const at = bytes.indexOf(Buffer.from(needle))
    if (at < 0) continue
    bytes[at + past]! ^= 0x01
    fs.writeFileSync(file, bytes)
    return { file, at }
  }
  throw new Error(`${needle} is not in the journal`)
}

/** The contract every outbox configuration must keep. */
function contract(name: string, extra: Partial<OutboxOptions>): void {
  const t = suite(`outbox (${name})`)
  const open = (dir: string, o: Partial<OutboxOptions> = {}): Promise<Outbox> => Outbox.open({ dir, maxBytes: 1 << 24, ...extra, ...o })

  t(`${name}: keeps a message written before a crash`, async () => {
    const dir = tmpDir()
    const ob = await open(dir)
    await ob.enqueue(entry('a1'))
    await abandonOutbox(ob)
    const again = await open(dir)
    assert.equal(again.get('a1')?.body, body(200))
    await again.close()
  })

  t(`${name}: removes a message only when told, and the removal survives a restart`, async () => {
    const dir = tmpDir()
    const ob = await open(dir)
    await ob.enqueue(entry('a1'))
    await ob.enqueue(entry('a2'))
    await ob.remove('a1')
    assert.is(ob.get('a1'), undefined)
    await abandonOutbox(ob)
    const again = await open(dir)
    assert.equal(again.all().map((e) => e.id), ['a2'])
    await again.close()
  })

  t(`${name}: keeps FIFO order per destination across restarts`, async () => {
    const dir = tmpDir()
    const ob = await open(dir)
    for (let i = 0; i < 30; i++) await ob.enqueue(entry(`m${i}`, `n${i % 3}`))
    await ob.remove('m3')
    await abandonOutbox(ob)
    const again = await open(dir)
    assert.equal(again.destinations(), ['n0', 'n1', 'n2'])
    assert.equal(again.head('n0', 3).map((e) => e.id), ['m0', 'm6', 'm9'])
    await again.enqueue(entry('late', 'n0'))
    const ids = again.head('n0', 100).map((e) => e.id)
    assert.is(ids.at(-1), 'late')
    await again.close()
  })

  t(`${name}: refuses past maxOutboxBytes with outbox_full and accepts again after a removal`, async () => {
    const dir = tmpDir()
    const ob = await open(dir, { maxBytes: 1000 })
    for (let i = 0; i < 5; i++) await ob.enqueue(entry(`f${i}`))
    await rejectsCode(ob.enqueue(entry('f5')), 'outbox_full')
    assert.is(ob.stats().count, 5)
    await ob.remove('f0')
    await ob.enqueue(entry('f5'))
    await ob.close()
    const again = await open(dir, { maxBytes: 1000 })
    assert.is(again.stats().bytes, 1000, 'byte count is rebuilt at start')
    await rejectsCode(again.enqueue(entry('f6')), 'outbox_full')
    await again.close()
  })

  t(`${name}: refuses a second message with the same id`, async () => {
    const ob = await open(tmpDir())
    const first = ob.enqueue(entry('dup'))
    await rejectsCode(ob.enqueue(entry('dup')), 'outbox_duplicate')
    await first
    await rejectsCode(ob.enqueue(entry('dup')), 'outbox_duplicate')
    assert.is(ob.stats().count, 1)
    await ob.close()
  })

  t(`${name}: remembers spent attempts across a restart`, async () => {
    const dir = tmpDir()
    const ob = await open(dir)
    await ob.enqueue(entry('r1'))
    await ob.recordAttempt('r1', 3, 12345)
    await abandonOutbox(ob)
    const again = await open(dir)
    const e = again.get('r1')
    assert.is(e?.attempts, 3)
    assert.is(e?.nextAt, 12345)
    await again.close()
  })

  t(`${name}: keeps the record of a sent request across a crash and a snapshot, until its window ends`, async () => {
    const dir = tmpDir()
    let now = 1_000_000
    const ob = await open(dir, { now: () => now, dedupWindowMs: 10_000 })
    await ob.recordRequest('01J00000000000000000000001', 'ship1', 'cli.run', now + 50_000)
    await abandonOutbox(ob)
    const again = await open(dir, { now: () => now, dedupWindowMs: 10_000 })
    assert.ok(again.sentRequest('01J00000000000000000000001', 'ship1', 'cli.run'), 'survives a crash')
    assert.not.ok(again.sentRequest('01J00000000000000000000001', 'ship2', 'cli.run'), 'another node')
    assert.not.ok(again.sentRequest('01J00000000000000000000001', 'ship1', 'reply.file'), 'another reply method')
    assert.not.ok(again.sentRequest('01J00000000000000000000002', 'ship1', 'cli.run'), 'another id')
    now += 55_000
    await again.checkpoint()
    assert.ok(again.sentRequest('01J00000000000000000000001', 'ship1', 'cli.run'), 'kept past the dedup window while its reply may come')
    now += 10_000
    await again.markSeen('s9')
    await again.checkpoint()
    assert.not.ok(again.sentRequest('01J00000000000000000000001', 'ship1', 'cli.run'), 'forgotten a window after that')
    // A received id can never pose as such a record.
    await rejectsCode(again.receive('!01J00000000000000000000001x', 'ship1', body(10)), 'envelope_invalid')
    await rejectsCode(again.markSeen('!x'), 'envelope_invalid')
    await again.close()
  })

  t(`${name}: marks several ids seen in one call (a batch's receipts): seen at once, all on disk after a crash; a reserved id refuses the lot`, async () => {
    const dir = tmpDir()
    const ob = await open(dir)
    const ids = Array.from({ length: 300 }, (_, i) => `b${String(i).padStart(3, '0')}`)
    const marking = ob.markSeen(ids)
    assert.ok(ids.every((id) => ob.hasSeen(id)), 'seen before the write lands (no double run in between)')
    await marking
    await rejectsCode(ob.markSeen(['c1', '!c2']), 'envelope_invalid')
    assert.not.ok(ob.hasSeen('c1'), 'nothing of a refused call is marked')
    await abandonOutbox(ob)
    const again = await open(dir)
    assert.ok(ids.every((id) => again.hasSeen(id)), 'all survive a crash')
    assert.not.ok(again.hasSeen('c1'))
    await again.close()
  })

  t(`${name}: remembers seen ids for the dedup window, then forgets them`, async () => {
    const dir = tmpDir()
    let now = 1_000_000
    const ob = await open(dir, { now: () => now, dedupWindowMs: 10_000 })
    const marking = ob.markSeen('s1')
    assert.ok(ob.hasSeen('s1'), 'seen before the write lands (no double run in between)')
    await marking
    assert.not.ok(ob.hasSeen('s2'))
    await abandonOutbox(ob)
    const again = await open(dir, { now: () => now, dedupWindowMs: 10_000 })
    assert.ok(again.hasSeen('s1'), 'survives a crash')
    now += 20_000
    await again.markSeen('s2')
    await again.checkpoint()
    assert.not.ok(again.hasSeen('s1'), 'forgotten after the window')
    assert.ok(again.hasSeen('s2'))
    await again.close()
  })

  t(`${name}: keeps the inbox across a crash: received, started, and closed by the reply`, async () => {
    const dir = tmpDir()
    const ob = await open(dir)
    await ob.receive('in1', 'central', body(10))
    await ob.receive('in2', 'central', body(11))
    await ob.receive('in3', 'central', body(12))
    assert.ok(ob.hasSeen('in1'))
    await ob.startRun('in2')
    await ob.startRun('in3')
    await ob.enqueueReply(entry('rep3', 'central'), 'in3')
    await abandonOutbox(ob)
    const again = await open(dir)
    assert.equal(again.inbox().map((e) => [e.id, e.state, e.from, e.body.length]), [['in1', 'received', 'central', 10], ['in2', 'started', 'central', 11]])
    assert.ok(again.get('rep3'), 'the reply is queued')
    assert.ok(again.hasSeen('in3'))
    await again.finishRun('in1')
    await again.checkpoint()
    await abandonOutbox(again)
    const third = await open(dir)
    assert.equal(third.inbox().map((e) => e.id), ['in2'], 'closed entries stay closed after a snapshot')
    await third.close()
  })

  for (const how of ['truncated', 'zeros'] as const) {
    t(`${name}: drops a torn last record (${how}) and keeps everything before it`, async () => {
      const dir = tmpDir()
      const warnings: string[] = []
      const ob = await open(dir)
      for (let i = 0; i < 10; i++) await ob.enqueue(entry(`t${i}`))
      await abandonOutbox(ob)
      const { file, end } = lastData(dir)
      assert.ok(end > 0, 'the ten records are in a segment')
      // A torn write: the file cut short (a segment that grew by appending), or the last bytes
      // still the zeros of a preallocated segment.
      if (how === 'truncated') fs.truncateSync(file, end - 7)
      else fs.writeFileSync(file, Buffer.concat([fs.readFileSync(file).subarray(0, end - 7), Buffer.alloc(fs.statSync(file).size - end + 7)]))
      const again = await open(dir, { warn: (m) => warnings.push(m) })
      const ids = again.all().map((e) => e.id)
      assert.equal(ids, Array.from({ length: 9 }, (_, i) => `t${i}`))
      assert.ok(warnings.some((w) => w.includes('torn')), warnings.join('\n'))
      await again.enqueue(entry('after'))
      await abandonOutbox(again)
      const third = await open(dir)
      assert.ok(third.get('after'), 'records written after a torn tail are not hidden behind it')
      assert.equal(third.damaged, [], 'the torn tail was cut off at the first start: never taken for damage later')
      await third.close()
    })
  }

  // Snapshots would take the records out of the journal: the default configuration only.
  if (extra.checkpointBytes === undefined) {
  t(`${name}: a flipped byte in record 26 of 50 costs that record only: the 49 others come back and the damage is named`, async () => {
    const dir = tmpDir()
    const ob = await open(dir)
    // One record each (awaited one by one), so record n is message d<n>.
    for (let i = 0; i < 50; i++) await ob.enqueue(entry(`d${i}`))
    await ob.remove('d30') // a good record after the damage that settles nothing damaged
    await abandonOutbox(ob)
    // Inside the body of record 26 (d25): the header and the op's fields still read.
    const { file, at } = flipAfter(dir, 'd25', 100)
    const warnings: string[] = []
    const again = await open(dir, { warn: (m) => warnings.push(m) })
    const want = Array.from({ length: 50 }, (_, i) => `d${i}`).filter((id) => id !== 'd25' && id !== 'd30')
    assert.equal(again.all().map((e) => e.id), want)
    assert.is(again.stats().recovery.damagedRecords, 1)
    assert.is(again.stats().recovery.droppedBytes, 0, 'not a torn tail')
    const [d] = again.damaged
    assert.is(d!.file, file)
    assert.is(d!.op?.[1], 'd25', 'read as far as it can be: the message it held')
    assert.is(d!.settled, false)
    assert.ok(warnings.some((w) => w.includes('outbox_corrupt') && w.includes(file) && w.includes(`offset ${at - 10}`) && w.includes('d25')), warnings.join('\n'))
    assert.not.ok(warnings.some((w) => w.includes('torn')), 'not blamed on a crash')
    await again.close()
  })

  t(`${name}: a damaged record whose message a later good record removed is reported as settled`, async () => {
    const dir = tmpDir()
    const ob = await open(dir)
    for (let i = 0; i < 5; i++) await ob.enqueue(entry(`s${i}`))
    await ob.remove('s2')
    await abandonOutbox(ob)
    flipAfter(dir, 's2', 60)
    const again = await open(dir)
    assert.equal(again.all().map((e) => e.id), ['s0', 's1', 's3', 's4'])
    assert.equal(again.damaged.map((d) => [d.op?.[1], d.settled]), [['s2', true]])
    await again.close()
  })

  t(`${name}: a damaged last record of a segment with newer segments after it is damage, not a torn write`, async () => {
    const dir = tmpDir()
    const ob = await open(dir)
    for (let i = 0; i < 5; i++) await ob.enqueue(entry(`e${i}`))
    await abandonOutbox(ob)
    const again = await open(dir)
    await again.enqueue(entry('later'))
    await abandonOutbox(again)
    // e4 is the last record of the first start's segments; a later start wrote a newer one.
    flipAfter(dir, 'e4', 60)
    const warnings: string[] = []
    const third = await open(dir, { warn: (m) => warnings.push(m) })
    assert.equal(third.all().map((e) => e.id), ['e0', 'e1', 'e2', 'e3', 'later'])
    assert.equal(third.damaged.map((d) => [d.op?.[1], d.settled]), [['e4', false]])
    assert.not.ok(warnings.some((w) => w.includes('torn')), warnings.join('\n'))
    await third.close()
  })
  }

  t(`${name}: ignores a zero-filled tail (unused preallocated room, or what a power loss can leave)`, async () => {
    const dir = tmpDir()
    const ob = await open(dir)
    for (let i = 0; i < 5; i++) await ob.enqueue(entry(`z${i}`))
    await abandonOutbox(ob)
    fs.appendFileSync(lastData(dir).file, Buffer.alloc(4096)) // length 0 with CRC 0 is a valid-looking header
    const warnings: string[] = []
    const again = await open(dir, { warn: (m) => warnings.push(m) })
    assert.equal(again.all().map((e) => e.id), ['z0', 'z1', 'z2', 'z3', 'z4'])
    assert.equal(warnings, [], 'zeros are room, not a torn record')
    assert.is(again.stats().recovery.droppedBytes, 0)
    await again.close()
  })

  t(`${name}: start-up removes segments that hold only zeros (preallocated, never used)`, async () => {
    const dir = tmpDir()
    const ob = await open(dir)
    await ob.enqueue(entry('a1'))
    await abandonOutbox(ob)
    const spare = path.join(dir, segmentName(listSegments(dir).at(-1)! + 1))
    fs.writeFileSync(spare, Buffer.alloc(64 * 1024))
    const warnings: string[] = []
    const again = await open(dir, { warn: (m) => warnings.push(m) })
    assert.ok(!fs.existsSync(spare))
    assert.equal(again.all().map((e) => e.id), ['a1'])
    assert.equal(warnings, [])
    await again.enqueue(entry('a2'))
    await abandonOutbox(again)
    const third = await open(dir)
    assert.equal(third.all().map((e) => e.id), ['a1', 'a2'])
    await third.close()
  })

  t(`${name}: a clean close leaves nothing to replay`, async () => {
    const dir = tmpDir()
    const ob = await open(dir)
    for (let i = 0; i < 50; i++) await ob.enqueue(entry(`c${i}`))
    await ob.close()
    await ob.close() // idempotent
    await rejectsCode(ob.enqueue(entry('x')), 'outbox_closed')
    const again = await open(dir)
    assert.is(again.stats().recovery.replayedRecords, 0)
    assert.is(again.stats().count, 50)
    await again.close()
  })

  t(`${name}: refuses a second open of the same directory, takes over a dead process's lock`, async () => {
    const dir = tmpDir()
    const ob = await open(dir)
    await rejectsCode(open(dir), 'locked')
    await ob.close()
    fs.writeFileSync(path.join(dir, 'lock'), '999999999\n') // no such pid
    const again = await open(dir)
    await again.close()
    fs.writeFileSync(path.join(dir, 'lock'), `${process.pid}\n`) // a dead process that had our pid
    const third = await open(dir)
    await third.close()
  })

  t.run()
}

contract('default', {})
contract('snapshot every 4 KiB', { checkpointBytes: 4096 })

const timing = suite('outbox snapshot timing')

/** Wait for a snapshot under way, if any (test access to the outbox's own promise). */
const settled = async (ob: Outbox): Promise<void> => {
  const inner = (ob as unknown as { snapshots: { checkpointing: Promise<void> | undefined } }).snapshots
  while (inner.checkpointing) await inner.checkpointing
}

timing('snapshot timing in formats 1-3 (keepOldFormat: a row per message): a burst still in memory defers the snapshot; once acknowledged it runs', async () => {
  const dir = tmpDir()
  const ob = await Outbox.open({ dir, maxBytes: 1 << 24, checkpointBytes: 64 * 1024, keepOldFormat: true })
  // 50 KiB of history (delivered, removed), then a burst of 30 KiB in flight: the journal passes
  // the 64 KiB checkpoint with more than a quarter of it in memory.
  for (let i = 0; i < 50; i++) { await ob.enqueue(entry(`old${i}`, 'ship1', 1000)); await ob.remove(`old${i}`) }
  await settled(ob)
  assert.is(ob.stats().lastSnapshot, 0)
  const ids = Array.from({ length: 30 }, (_, i) => `burst${i}`)
  await Promise.all(ids.map((id) => ob.enqueue(entry(id, 'ship1', 1000))))
  await settled(ob)
  assert.ok(ob.stats().journalBytes >= 64 * 1024, `journal ${ob.stats().journalBytes}`)
  assert.is(ob.stats().lastSnapshot, 0, 'no snapshot while the burst is in memory')
  // Acknowledged: the next commit finds little in memory, and the snapshot runs.
  await Promise.all(ids.map((id) => ob.remove(id)))
  await ob.enqueue(entry('after', 'ship1', 10))
  await settled(ob)
  assert.ok(ob.stats().lastSnapshot > 0, 'snapshot after the burst drained')
  await ob.close()
})

timing('snapshot timing in formats 1-3 (keepOldFormat): a backlog that is not acknowledged is moved out of memory at the checkpoint size, and all of it survives a crash', async () => {
  const dir = tmpDir()
  const ob = await Outbox.open({ dir, maxBytes: 1 << 24, checkpointBytes: 64 * 1024, keepOldFormat: true })
  let n = 0
  // An absent receiver: nothing is removed; memory reaches the checkpoint size and a snapshot
  // runs anyway (holding more of a backlog in memory would cost the node its RSS).
  while (ob.stats().lastSnapshot === 0 && n < 400) {
    await ob.enqueue(entry(`held${String(n++).padStart(4, '0')}`, 'ship1', 1000))
    await settled(ob)
  }
  assert.ok(ob.stats().lastSnapshot > 0, `a snapshot ran (${n} messages held)`)
  assert.ok(n >= 64 && n <= 66, `it ran once 64 KiB of messages were in memory (${n} messages)`)
  assert.is(ob.all().length, n)
  for (let i = 0; i < 20; i++) await ob.enqueue(entry(`late${i}`, 'ship1', 1000))
  await abandonOutbox(ob)
  const again = await Outbox.open({ dir, maxBytes: 1 << 24, checkpointBytes: 64 * 1024, keepOldFormat: true })
  const ids = again.head('ship1', 1000).map((e) => e.id)
  assert.is(ids.length, n + 20, 'every accepted message is there after a crash, once')
  assert.equal(ids, [...Array.from({ length: n }, (_, i) => `held${String(i).padStart(4, '0')}`), ...Array.from({ length: 20 }, (_, i) => `late${i}`)], 'in FIFO order')
  await again.close()
})

timing('snapshot timing in format 4: a burst in flight is snapshotted at the checkpoint size (as records), and what was acknowledged after it stays gone across a crash', async () => {
  const dir = tmpDir()
  const ob = await Outbox.open({ dir, maxBytes: 1 << 24, checkpointBytes: 64 * 1024 })
  assert.is(ob.format, 4)
  const ids = Array.from({ length: 80 }, (_, i) => `burst${String(i).padStart(2, '0')}`)
  await Promise.all(ids.map((id) => ob.enqueue(entry(id, 'ship1', 1000))))
  await settled(ob)
  assert.ok(ob.stats().lastSnapshot > 0, 'a snapshot ran while the burst was in memory')
  // Acknowledged after that snapshot stored them: their removals are in the journal only.
  for (const id of ids.slice(0, 50)) await ob.remove(id)
  await abandonOutbox(ob)
  const again = await Outbox.open({ dir, maxBytes: 1 << 24, checkpointBytes: 64 * 1024 })
  assert.equal(again.head('ship1', 1000).map((e) => e.id), ids.slice(50), 'none acknowledged comes back; every other one is there once, in order')
  // And once a snapshot has recorded those removals (the removed bitmap), with no journal to replay them.
  await again.checkpoint()
  await again.remove(ids[50]!)
  await again.checkpoint()
  await again.close()
  const third = await Outbox.open({ dir, maxBytes: 1 << 24, checkpointBytes: 64 * 1024 })
  assert.is(third.stats().recovery.replayedRecords, 0)
  assert.equal(third.all().map((e) => e.id), ids.slice(51))
  for (const e of third.all()) assert.equal(e.body, entry(e.id, 'ship1', 1000).body)
  await third.close()
})

timing('snapshot timing: the quiet timer never rotates the journal under a write in flight', async () => {
  const dir = tmpDir()
  const ob = await Outbox.open({ dir, maxBytes: 1 << 24, checkpointBytes: 64 * 1024 })
  // Enough in memory for the quiet timer to snapshot, and journal bytes in the segment.
  for (let i = 0; i < 10; i++) await ob.enqueue(entry(`first${i}`, 'ship1', 1000))
  // A batch past the synchronous-write size: its write goes to the thread pool and is awaited.
  const ids = Array.from({ length: 40 }, (_, i) => `burst${i}`)
  const stored = Promise.allSettled(ids.map((id) => ob.enqueue(entry(id, 'ship1', 1000))))
  await new Promise((r) => setImmediate(r))
  // The quiet timer fires now, while that write is under way.
  ;(ob as unknown as { snapshots: { settle(): void } }).snapshots.settle()
  const results = await stored
  assert.equal(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), [])
  await abandonOutbox(ob)
  const again = await Outbox.open({ dir, maxBytes: 1 << 24, checkpointBytes: 64 * 1024 })
  assert.is(again.all().length, 50, 'every accepted message is there after a crash')
  await again.close()
})

timing.run()

const crash = suite('outbox crash')

interface ChildRun { enqueued: string[]; removing: string[]; removed: string[] }

/** Kill the writer once it has confirmed `afterEnqueues` messages, plus a random few ms (mid-batch). */
function runAndKill(dir: string, prefix: string, afterEnqueues: number, checkpointBytes = 32768): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'fixtures', 'outbox-writer.ts'), dir, prefix, '16', String(checkpointBytes)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    let timer: NodeJS.Timeout | undefined
    child.stdout.on('data', (d: Buffer) => {
      out += d
      if (timer === undefined && out.split('\nE ').length - 1 >= afterEnqueues) {
        timer = setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 15))
      }
    })
    child.on('error', reject)
    child.on('close', (_code, signal) => {
      if (signal !== 'SIGKILL') return reject(new Error(`writer ended with ${signal ?? _code}, not SIGKILL:\n${out.slice(-500)}`))
      const lines = out.split('\n')
      resolve({
        enqueued: lines.filter((l) => l.startsWith('E ')).map((l) => l.slice(2)),
        removing: lines.filter((l) => l.startsWith('r ')).map((l) => l.slice(2)),
        removed: lines.filter((l) => l.startsWith('R ')).map((l) => l.slice(2)),
      })
    })
  })
}

/** Kill a writer `rounds` times over one directory, then check what a fresh open finds. */
async function crashRounds(kills: number, checkpointBytes: number): Promise<void> {
  const dir = tmpDir()
  const enqueued = new Set<string>()
  const removed = new Set<string>()
  const removing = new Set<string>()
  for (let round = 0; round < kills; round++) {
    const killAfter = 50 + Math.floor(Math.random() * 1500)
    const run = await runAndKill(dir, `r${round}`, killAfter, checkpointBytes)
    assert.ok(run.enqueued.length >= killAfter, `round ${round}: ${run.enqueued.length} enqueued`)
    run.enqueued.forEach((id) => enqueued.add(id))
    run.removed.forEach((id) => removed.add(id))
    run.removing.forEach((id) => removing.add(id))
  }
  const warnings: string[] = []
  const ob = await Outbox.open({ dir, maxBytes: 1 << 30, warn: (m) => warnings.push(m) })
  const all = ob.all()
  const ids = all.map((e) => e.id)
  const present = new Set(ids)
  assert.is(ob.stats().count, present.size)
  const lost = [...enqueued].filter((id) => !removing.has(id) && !present.has(id))
  assert.equal(lost, [], `${lost.length} acknowledged messages lost`)
  const resurrected = [...removed].filter((id) => present.has(id))
  assert.equal(resurrected, [], `${resurrected.length} removed messages came back`)
  for (const e of all) assert.equal(e.body, bodyFor(e.id), `the body of ${e.id}`)
  // FIFO: each worker enqueued one message after another, and each round came after the one
  // before, so within a worker seqs follow the enqueue counter, and rounds do not interleave.
  const parse = (id: string) => { const [r, w, n] = id.split('-'); return { round: Number(r!.slice(1)), worker: w!, n: Number(n) } }
  const groups = new Map<string, typeof all>()
  const rounds = new Map<number, number[]>()
  for (const e of all) {
    const p = parse(e.id)
    groups.set(`${p.round}/${p.worker}`, [...(groups.get(`${p.round}/${p.worker}`) ?? []), e])
    rounds.set(p.round, [...(rounds.get(p.round) ?? []), e.seq])
  }
  for (const [g, list] of groups) {
    const seqs = list.sort((a, b) => parse(a.id).n - parse(b.id).n).map((e) => e.seq)
    assert.equal(seqs, [...seqs].sort((a, b) => a - b), `worker ${g} kept its order`)
  }
  const spans = [...rounds.entries()].sort((a, b) => a[0] - b[0]).map(([, seqs]) => [Math.min(...seqs), Math.max(...seqs)] as const)
  for (let i = 1; i < spans.length; i++) assert.ok(spans[i - 1]![1] < spans[i]![0], 'a later round never goes before an earlier one')
  const bodyFiles = fs.readdirSync(dir).filter((f) => f.startsWith('bodies-')).length
  console.log(`  crash (snapshot every ${checkpointBytes} B): ${enqueued.size} enqueued, ${removed.size} removed over ${kills} kills, ${present.size} present in ${bodyFiles} body files; ${warnings.length} torn tails dropped`)
  await ob.close()
  const again = await Outbox.open({ dir, maxBytes: 1 << 30 })
  assert.equal(again.all().map((e) => [e.id, e.body]), all.map((e) => [e.id, e.body]), 'the same after the clean stop that moved everything into body files')
  await again.close()
}

crash('crash: every enqueue that resolved before SIGKILL is there afterwards, exactly once', () => crashRounds(6, 32768))

crash('crash: the same with a snapshot every 4 KiB, so kills land in snapshots, body-file writes and compactions', () => crashRounds(8, 4096))

crash('crash: killed while a preallocated segment is zero-filled or written over, nothing acknowledged is lost', async () => {
  const dir = tmpDir()
  const enqueued = new Set<string>()
  const removed = new Set<string>()
  const removing = new Set<string>()
  let duringPrep = 0
  for (let round = 0; round < 8; round++) {
    // 4 MiB segments: some kills land while a spare is still being zero-filled (early), others
    // while records go over the zeros of one.
    const run = await runAndKill(dir, `p${round}`, round % 2 === 0 ? 1 : 200 + Math.floor(Math.random() * 2000), 4 * 1024 * 1024)
    if (fs.readdirSync(dir).some((f) => f.startsWith('journal-spare-'))) duringPrep++
    run.enqueued.forEach((id) => enqueued.add(id))
    run.removed.forEach((id) => removed.add(id))
    run.removing.forEach((id) => removing.add(id))
  }
  const warnings: string[] = []
  const ob = await Outbox.open({ dir, maxBytes: 1 << 30, warn: (m) => warnings.push(m) })
  assert.equal(fs.readdirSync(dir).filter((f) => f.startsWith('journal-spare-') && !f.includes(`-${process.pid}-`)), [], 'leftover spares removed at start')
  const present = new Set(ob.all().map((e) => e.id))
  const lost = [...enqueued].filter((id) => !removing.has(id) && !present.has(id))
  assert.equal(lost, [], `${lost.length} acknowledged messages lost`)
  const resurrected = [...removed].filter((id) => present.has(id))
  assert.equal(resurrected, [], `${resurrected.length} removed messages came back`)
  for (const e of ob.all()) assert.equal(e.body, bodyFor(e.id), `the body of ${e.id}`)
  console.log(`  crash (4 MiB segments): ${enqueued.size} enqueued over 8 kills, ${duringPrep} left a spare behind, ${present.size} present; ${warnings.length} torn tails dropped`)
  await ob.close()
})

crash('crash: every line the writer printed reaches this process, even when it is read slowly (what the crash tests count on)', async () => {
  const dir = tmpDir()
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'fixtures', 'outbox-writer.ts'), dir, 'slow', '16', '4096'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d })
  const closed = new Promise<NodeJS.Signals | null>((r) => child.on('close', (_c, signal) => r(signal)))
  while (!out.includes('READY')) await new Promise((r) => setTimeout(r, 20))
  // Stop reading, as a loaded machine does: the pipe fills. A writer that waits for room stops
  // writing anything (its journal too); one that queues its lines inside itself goes on.
  child.stdout.pause()
  const written = (): number => Number(/^wchar: (\d+)/m.exec(fs.readFileSync(`/proc/${child.pid}/io`, 'utf8'))?.[1] ?? 0)
  const from = written()
  let last = from
  // Until it has written a good deal (its lines fill the pipe well before 64 KB) and then stood
  // still for half a second, or has gone on far past what a pipe holds.
  for (let still = 0, waited = 0; (still < 10 || last - from < 64 * 1024) && last - from < 8 * 1024 * 1024 && waited < 1200; waited++) {
    await new Promise((r) => setTimeout(r, 50))
    const now = written()
    still = now === last ? still + 1 : 0
    last = now
  }
  const ranOn = last - from >= 8 * 1024 * 1024
  child.kill('SIGKILL')
  child.stdout.resume()
  assert.is(await closed, 'SIGKILL')
  const lines = out.split('\n')
  const enqueued = lines.filter((l) => l.startsWith('E ')).map((l) => l.slice(2))
  const removing = new Set(lines.filter((l) => l.startsWith('r ')).map((l) => l.slice(2)))
  const ob = await Outbox.open({ dir, maxBytes: 1 << 30 })
  const lost = enqueued.filter((id) => !removing.has(id) && ob.get(id) === undefined)
  await ob.close()
  assert.ok(enqueued.length > 0, 'the writer acknowledged nothing')
  assert.not.ok(ranOn, 'the writer went on while the lines it printed were not read: a SIGKILL then loses them')
  assert.equal(lost, [], `${lost.length} messages acknowledged and never reported removed are gone: the writer removed them after lines this process never got`)
})

crash('crash: a live process holds the directory; once it is SIGKILLed the lock is taken over', async () => {
  const dir = tmpDir()
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'fixtures', 'outbox-writer.ts'), dir, 'lk', '1'], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => { if (String(d).includes('READY')) resolve() }))
  await rejectsCode(Outbox.open({ dir, maxBytes: 1 << 20 }), 'locked', String(child.pid))
  const gone = new Promise((r) => child.on('close', r))
  child.kill('SIGKILL')
  await gone
  const ob = await Outbox.open({ dir, maxBytes: 1 << 30 })
  await ob.close()
})

crash.run()
