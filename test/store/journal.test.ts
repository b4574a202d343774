import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { crc32 } from '../../src/store/crc32'
import { Journal, listSegments, readSegment, segmentName } from '../../src/store/journal'

const SEG = 64 * 1024
const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-journal-'))
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
/** A record that never ends in a zero byte, numbered by its fill. */
const rec = (i: number, size = 100): Buffer => Buffer.alloc(size, (i % 250) + 1)
const sizeOf = (dir: string, n: number): number => fs.statSync(path.join(dir, segmentName(n))).size
const spares = (dir: string): string[] => fs.readdirSync(dir).filter((f) => f.startsWith('journal-spare-'))

function open(dir: string, first = 1, segmentBytes = SEG): { j: Journal<number>; committed: number[] } {
  const committed: number[] = []
  const j = Journal.create<number>(dir, first, { onCommit: (items) => committed.push(...items) }, { segmentBytes })
  return { j, committed }
}

/** What a restart would read: every good record of every segment, in order, as record numbers. */
function replay(dir: string): number[] {
  return listSegments(dir).flatMap((n) => readSegment(path.join(dir, segmentName(n)), n).records.map((r) => r[0]! - 1))
}

function spareState(j: Journal<number>): string {
  return (j as unknown as { files: { spare: { type: string } } }).files.spare.type
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) assert.unreachable(`timed out waiting for ${what}`)
    await sleep(2)
  }
}

test('journal - the first segment is replaced by a preallocated one, and records go over its zeros', async () => {
  const dir = tmpDir()
  const { j, committed } = open(dir)
  await until('the preallocated first segment', () => sizeOf(dir, 1) === SEG)
  await Promise.all(Array.from({ length: 10 }, (_, i) => j.append(rec(i), i)))
  assert.equal(committed, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  assert.is(sizeOf(dir, 1), SEG, 'the segment keeps its size')
  const seg = readSegment(path.join(dir, segmentName(1)), 1)
  assert.is(seg.records.length, 10)
  assert.is(seg.droppedBytes, 0, 'unused zeros are not a torn tail')
  assert.is(j.bytesInSegment, 10 * 108)
  await j.close()
  assert.equal(listSegments(dir), [1])
  assert.equal(spares(dir), [], 'nothing is left but the segment')
})

test('journal - records written before the spare is ready and after it come back in order', async () => {
  const dir = tmpDir()
  const { j } = open(dir)
  // At once: lands in the empty first segment (or the spare, if it was quicker).
  for (let i = 0; i < 5; i++) await j.append(rec(i), i)
  await until('a preallocated segment', () => listSegments(dir).some((n) => sizeOf(dir, n) === SEG))
  for (let i = 5; i < 10; i++) await j.append(rec(i), i)
  assert.equal(replay(dir), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  await j.close()
})

test('journal - a torn tail: everything before it comes back, the rest is dropped as a torn write', async () => {
  const dir = tmpDir()
  const { j } = open(dir)
  await until('the preallocated first segment', () => sizeOf(dir, 1) === SEG)
  await Promise.all(Array.from({ length: 10 }, (_, i) => j.append(rec(i), i)))
  await j.close()
  const file = path.join(dir, segmentName(1))
  const fd = fs.openSync(file, 'r+')
  // The last 30 bytes of record 9 never reached the disk (still zeros).
  fs.writeSync(fd, Buffer.alloc(30), 0, 30, 10 * 108 - 30)
  fs.closeSync(fd)
  const seg = readSegment(file, 1)
  assert.equal(seg.records.map((r) => r[0]! - 1), [0, 1, 2, 3, 4, 5, 6, 7, 8])
  assert.equal(seg.damaged, [], 'nothing good follows: not damage')
  assert.is(seg.droppedBytes, 108 - 30, 'from the torn record to the last non-zero byte')
  assert.is(sizeOf(dir, 1), SEG)

  // A zero header at a record boundary with nothing good after it ends the segment the same way.
  const fd2 = fs.openSync(file, 'r+')
  fs.writeSync(fd2, Buffer.alloc(8), 0, 8, 5 * 108)
  fs.writeSync(fd2, Buffer.alloc(8), 0, 8, 6 * 108)
  fs.writeSync(fd2, Buffer.alloc(8), 0, 8, 7 * 108)
  fs.writeSync(fd2, Buffer.alloc(8), 0, 8, 8 * 108)
  fs.closeSync(fd2)
  const again = readSegment(file, 1)
  assert.is(again.records.length, 5)
  assert.equal(again.damaged, [])
})

test('journal - a flipped byte in the middle costs one record: the good ones after it come back, the damage is reported', async () => {
  const dir = tmpDir()
  const { j } = open(dir)
  await Promise.all(Array.from({ length: 50 }, (_, i) => j.append(rec(i), i)))
  await j.close()
  const file = path.join(dir, segmentName(1))
  const bytes = fs.readFileSync(file)
  // Inside the payload of record 25 (the 26th).
  bytes[25 * 108 + 8 + 40]! ^= 0x10
  fs.writeFileSync(file, bytes)
  const seg = readSegment(file, 1)
  assert.equal(seg.records.map((r) => r[0]! - 1), Array.from({ length: 50 }, (_, i) => i).filter((i) => i !== 25))
  assert.is(seg.damaged.length, 1)
  assert.is(seg.damaged[0]!.offset, 25 * 108)
  assert.is(seg.damaged[0]!.bytes, 108)
  assert.is(seg.damaged[0]!.after, 25, 'after the 25 good records before it')
  assert.is(seg.damaged[0]!.payload?.length, 100, 'the payload as its header framed it, for a best-effort reading')
  assert.is(seg.droppedBytes, 0)
})

test('journal - a damaged length: the next good record is found byte by byte', async () => {
  const dir = tmpDir()
  const { j } = open(dir)
  await Promise.all(Array.from({ length: 20 }, (_, i) => j.append(rec(i), i)))
  await j.close()
  const file = path.join(dir, segmentName(1))
  const bytes = fs.readFileSync(file)
  // Record 7's length now says 3 bytes more (a flipped bit): neither it nor the place it points to is a record.
  bytes.writeUInt32BE(103, 7 * 108)
  // And record 8's header is gone altogether (zeros: a page that never reached the disk).
  bytes.fill(0, 8 * 108, 8 * 108 + 8)
  fs.writeFileSync(file, bytes)
  const seg = readSegment(file, 1)
  assert.equal(seg.records.map((r) => r[0]! - 1), [0, 1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
  assert.equal(seg.damaged.map((d) => [d.offset, d.bytes, d.after]), [[7 * 108, 2 * 108, 7]])
})

test('journal - a stretch of zeros with a good record after it (a page that never reached the disk) is damage, not the end', async () => {
  const dir = tmpDir()
  const { j } = open(dir)
  await until('the preallocated first segment', () => sizeOf(dir, 1) === SEG)
  await Promise.all(Array.from({ length: 10 }, (_, i) => j.append(rec(i), i)))
  await j.close()
  const file = path.join(dir, segmentName(1))
  const fd = fs.openSync(file, 'r+')
  fs.writeSync(fd, Buffer.alloc(30), 0, 30, 10 * 108 - 30)
  // A later page did reach the disk: its well-formed record is kept (its batch was written,
  // like one whose fdatasync had not returned), and the hole before it is reported.
  const stray = rec(42)
  const head = Buffer.alloc(8)
  head.writeUInt32BE(stray.length, 0)
  head.writeUInt32BE(crc32(stray), 4)
  fs.writeSync(fd, Buffer.concat([head, stray]), 0, 108, 8192)
  fs.closeSync(fd)
  const seg = readSegment(file, 1)
  assert.equal(seg.records.map((r) => r[0]! - 1), [0, 1, 2, 3, 4, 5, 6, 7, 8, 42])
  assert.equal(seg.damaged.map((d) => [d.offset, d.bytes]), [[9 * 108, 8192 - 9 * 108]])
  assert.is(seg.droppedBytes, 0)
})

test('journal - a batch larger than the room left goes into the next segment when a spare is ready', async () => {
  const dir = tmpDir()
  const { j } = open(dir)
  await until('the preallocated first segment', () => sizeOf(dir, 1) === SEG)
  // 40 records of 1 KiB in one tick: one batch of ~40 KiB; past half the room, the next spare starts.
  await Promise.all(Array.from({ length: 40 }, (_, i) => j.append(rec(i, 1000), i)))
  await until('the next spare', () => spareState(j) === 'ready')
  await Promise.all(Array.from({ length: 40 }, (_, i) => j.append(rec(40 + i, 1000), 40 + i)))
  assert.equal(listSegments(dir), [1, 2])
  assert.is(sizeOf(dir, 1), SEG)
  assert.is(sizeOf(dir, 2), SEG)
  assert.is(j.currentSegment, 2)
  assert.is(j.bytesInSegment, 80 * 1008, 'counted since the last rotate(), not since the switch')
  assert.equal(replay(dir), Array.from({ length: 80 }, (_, i) => i))
  await j.close()
})

test('journal - with no spare ready, a batch that does not fit grows the segment', async () => {
  const dir = tmpDir()
  const { j } = open(dir)
  await until('the preallocated first segment', () => sizeOf(dir, 1) === SEG)
  assert.is(spareState(j), 'none', 'the next spare waits until half the room is used')
  await Promise.all(Array.from({ length: 80 }, (_, i) => j.append(rec(i, 1000), i)))
  assert.equal(listSegments(dir), [1])
  assert.is(sizeOf(dir, 1), 80 * 1008)
  assert.equal(replay(dir), Array.from({ length: 80 }, (_, i) => i))
  await j.close()
})

test('journal - rotate takes a ready spare, and without one starts an empty segment at once', async () => {
  const dir = tmpDir()
  const { j } = open(dir)
  await j.append(rec(0), 0)
  // Straight away: the spare is most likely still being written, and rotate must not wait for it.
  const spareBefore = spareState(j)
  assert.is(j.rotate(), 1)
  assert.is(j.bytesInSegment, 0)
  if (spareBefore !== 'ready') assert.is(sizeOf(dir, 2), 0, 'an empty segment that grows')
  await j.append(rec(1), 1)
  // The spare, once ready, takes over: as segment 2 while that is empty, else as 3.
  await until('a preallocated segment', () => sizeOf(dir, listSegments(dir).at(-1)!) === SEG || spareState(j) === 'ready')
  await j.append(rec(2), 2)
  assert.equal(replay(dir), [0, 1, 2])
  const last = listSegments(dir).at(-1)!
  assert.is(sizeOf(dir, last), SEG, 'the record went over zeros')

  // Half the room used: the next spare is made in the background, and the rotation takes it.
  await Promise.all(Array.from({ length: 40 }, (_, i) => j.append(rec(3 + i, 1000), 3 + i)))
  await until('the next spare', () => spareState(j) === 'ready')
  assert.is(j.rotate(), last)
  assert.is(sizeOf(dir, last + 1), SEG)
  assert.equal(spares(dir), [])
  await j.append(rec(43), 43)
  assert.equal(replay(dir), Array.from({ length: 44 }, (_, i) => i))
  await j.close()
})

test('journal - spares are never replayed: a leftover one is removed at start, an unused one at close', async () => {
  const dir = tmpDir()
  // What a process killed while preparing a spare leaves: zeros, or anything at all.
  const head = Buffer.alloc(8)
  head.writeUInt32BE(100, 0)
  head.writeUInt32BE(crc32(rec(7)), 4)
  fs.writeFileSync(path.join(dir, 'journal-spare-123-abc.tmp'), Buffer.concat([head, rec(7)]))
  const { j } = open(dir)
  assert.ok(!spares(dir).includes('journal-spare-123-abc.tmp'))
  await until('the preallocated first segment', () => sizeOf(dir, 1) === SEG)
  await Promise.all(Array.from({ length: 40 }, (_, i) => j.append(rec(i, 1000), i)))
  await until('the next spare', () => spareState(j) === 'ready')
  assert.is(spares(dir).length, 1)
  await j.close()
  assert.equal(spares(dir), [])
  assert.equal(replay(dir), Array.from({ length: 40 }, (_, i) => i))
})

test('journal - close while a spare is being written stops it and removes it', async () => {
  const dir = tmpDir()
  const { j } = open(dir, 1, 16 * 1024 * 1024)
  await j.close()
  assert.equal(spares(dir), [])
  assert.equal(listSegments(dir), [1])
})

test('journal - close gives back the room of a segment nothing was written to', async () => {
  const dir = tmpDir()
  const { j } = open(dir)
  await until('the preallocated first segment', () => sizeOf(dir, 1) === SEG)
  await j.close()
  assert.is(sizeOf(dir, 1), 0)
})

test('journal - small batches written in place and large ones through the thread pool read back the same', async () => {
  const dir = tmpDir()
  const { j, committed } = open(dir)
  await until('the preallocated first segment', () => sizeOf(dir, 1) === SEG)
  await j.append(rec(0), 0)
  await Promise.all(Array.from({ length: 30 }, (_, i) => j.append(rec(1 + i, 1000), 1 + i))) // ~30 KiB in one batch
  await j.append(rec(31), 31)
  assert.equal(committed, Array.from({ length: 32 }, (_, i) => i))
  assert.equal(replay(dir), Array.from({ length: 32 }, (_, i) => i))
  await j.close()
})

test('journal - lazy records wait for a record someone waits on and share its batch; alone, they go after a few ms', async () => {
  const dir = tmpDir()
  const batches: number[][] = []
  const j = Journal.create<number>(dir, 1, { onCommit: (items) => batches.push(items), lazy: (i) => i < 0 }, { segmentBytes: SEG })
  let lazyDone = false
  const lazy = j.append(rec(0), -1).then(() => { lazyDone = true })
  await sleep(1)
  assert.is(lazyDone, false, 'not written on its own at once')
  assert.is(j.idle, false)
  await j.append(rec(1), 1)
  await lazy
  assert.equal(batches, [[-1, 1]], 'one batch, in append order')
  const started = performance.now()
  await j.append(rec(2), -2)
  assert.ok(performance.now() - started >= 4, 'alone, it waits for company a few ms')
  assert.equal(batches.at(-1), [-2])
  // In the same tick as an eager one: the same batch. Appended while a batch is being written:
  // it waits for company too, rather than following it at once.
  const first = j.append(rec(3), 3)
  const trailing = j.append(rec(4), -4)
  await first
  await trailing
  assert.equal(batches.at(-1), [3, -4], 'appended in one tick: one batch')
  const inFlight = j.append(rec(5), 5)
  await sleep(0)
  const late = j.append(rec(6), -6)
  await inFlight
  assert.equal(batches.at(-1), [5], 'the late lazy record did not join or follow at once')
  await j.drain() // drain writes it without waiting
  await late
  assert.equal(batches.at(-1), [-6])
  await j.close()
  assert.equal(replay(dir), [0, 1, 2, 3, 4, 5, 6])
})

test('journal - appendAll: one promise for many records, settled once every one is committed, even when a burst of urgent records ahead splits them over two batches', async () => {
  const dir = tmpDir()
  const batches: number[][] = []
  // Records below 100 are urgent (receipts): a queue that starts with one is cut at 128 records.
  const j = Journal.create<number>(dir, 1, { onCommit: (items) => batches.push(items), urgent: (i) => i < 100 }, { segmentBytes: SEG })
  const urgent = Array.from({ length: 100 }, (_, i) => j.append(rec(i), i))
  const group = Array.from({ length: 100 }, (_, i) => 100 + i)
  let committedWhenSettled = -1
  const all = j.appendAll(group.map((i) => rec(i)), group).then(() => { committedWhenSettled = batches.flat().length })
  await Promise.all([...urgent, all])
  assert.equal(batches.map((b) => b.length), [128, 72], 'the group went in two batches')
  assert.is(committedWhenSettled, 200, 'settled after its last record, not its first batch')
  await j.appendAll([], [])
  await j.close()
  assert.match(await j.appendAll([rec(1)], [1]).then(() => 'written', (e: Error) => e.message), /append after close/)
  assert.equal(replay(dir), [...Array.from({ length: 100 }, (_, i) => i), ...group])
})

test('journal - close writes lazy records at once', async () => {
  const dir = tmpDir()
  const j = Journal.create<number>(dir, 1, { onCommit: () => {}, lazy: () => true }, { segmentBytes: SEG })
  const p = j.append(rec(0), 0)
  await j.close()
  await p
  assert.equal(replay(dir), [0])
})

test('journal - segmentBytes 0 appends as before: the file is as long as its records', async () => {
  const dir = tmpDir()
  const { j } = open(dir, 1, 0)
  await Promise.all(Array.from({ length: 10 }, (_, i) => j.append(rec(i), i)))
  await sleep(20)
  assert.is(sizeOf(dir, 1), 10 * 108)
  assert.equal(spares(dir), [])
  await j.close()
})

test('journal - rotate() under a write in flight is refused; the batch lands whole in its segment', async () => {
  const dir = tmpDir()
  const { j, committed } = open(dir)
  // Past the synchronous-write size: the write is awaited on the thread pool.
  const writes = Array.from({ length: 40 }, (_, i) => j.append(rec(i, 1000), i))
  await new Promise((r) => setImmediate(r))
  assert.throws(() => j.rotate(), /while a batch is being written/)
  await Promise.all(writes)
  assert.equal(committed, Array.from({ length: 40 }, (_, i) => i))
  await j.close()
  assert.equal(replay(dir).map((n) => n % 250), Array.from({ length: 40 }, (_, i) => i))
})

test.run()
