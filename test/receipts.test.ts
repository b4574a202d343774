/**
 * The receipts of one read recorded together (src/receipts.ts): one record call for the
 * envelopes received in the same turn, each ACKed and run after it resolved; after a failed
 * record, those on disk all the same run (a resend would be a duplicate), the others do not.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { caughtSinks, MARK_PREFIX, PIECE, ReceiptGroup } from '../src/receipts'
import type { Envelope } from '../src/wire/envelope'
import { Outbox } from '../src/store/outbox'

const env = (id: string): Envelope => ({ id, fromNode: 'central', toNode: 'ship1', method: 'node.pong', createdAt: 1 })
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

test('receipts - the envelopes of one turn are recorded with one call, then each is done in arrival order', async () => {
  const calls: string[][] = []
  const done: string[] = []
  const group = new ReceiptGroup({ record: async (ids) => { calls.push(ids) }, durable: () => false, done: (e) => { done.push(e.id) }, failed: () => assert.unreachable() })
  // As the transport hands them over: from a read's callback, one microtask apart.
  await turn()
  for (const id of ['a', 'b', 'c']) { group.add(env(id)); await Promise.resolve() }
  assert.equal(done, [], 'nothing is done before its record resolved')
  await turn()
  assert.equal(calls, [['a', 'b', 'c']])
  assert.equal(done, ['a', 'b', 'c'])
  group.add(env('d'))
  await turn()
  assert.equal(calls, [['a', 'b', 'c'], ['d']], 'a later turn is a group of its own')
  // A read of many (inflated zbatch frames): recorded in pieces of 127 (with a mark, 128 journal records), each done as it lands.
  calls.length = 0
  for (let i = 0; i < 300; i++) group.add(env(`m${i}`))
  await turn()
  assert.is(PIECE, 127)
  assert.equal(calls.map((ids) => ids.length), [127, 127, 46])
  assert.equal(done.length, 304)
})

test('receipts - flushNow records what waits at once (a request not to a sink must not overtake it) and resolves once those ran', async () => {
  const calls: string[][] = []
  const done: string[] = []
  const group = new ReceiptGroup({ record: async (ids) => { calls.push(ids) }, durable: () => false, done: (e) => { done.push(e.id) }, failed: () => assert.unreachable() })
  assert.is(group.flushNow(), undefined, 'nothing waits')
  group.add(env('chunk1'))
  group.add(env('chunk2'))
  const before = group.flushNow()
  assert.equal(calls, [['chunk1', 'chunk2']], 'recorded at once, ahead of what comes next')
  await before
  assert.equal(done, ['chunk1', 'chunk2'])
  await turn()
  assert.equal(calls.length, 1, 'the scheduled flush finds nothing left')
})

test('receipts - a failed record: what is on disk all the same is done (it would be taken for a duplicate), the rest failed', async () => {
  const done: string[] = []
  const failed: string[] = []
  const group = new ReceiptGroup({
    record: () => Promise.reject(new Error('disk gone')),
    durable: (id) => id === 'b',
    done: (e) => { done.push(e.id) },
    failed: (e, err) => failed.push(`${e.id}: ${err.message}`),
  })
  for (const id of ['a', 'b', 'c']) group.add(env(id))
  await turn()
  assert.equal(done, ['b'])
  assert.equal(failed, ['a: disk gone', 'c: disk gone'])
})

test('receipts - a piece is recorded only once the runs of the piece before it have ended, each under a mark opened before its receipts and closed after its runs', async () => {
  const log: string[] = []
  const runs = new Map<string, () => void>()
  const group = new ReceiptGroup({
    record: async (ids) => { log.push(`record ${ids.join(',')}`) },
    durable: () => false,
    done: (e) => new Promise<void>((resolve) => { log.push(`run ${e.id}`); runs.set(e.id, resolve) }),
    failed: () => assert.unreachable(),
    marks: { open: async (key, body) => { log.push(`open ${key} ${Buffer.from(body).toString()}`) }, close: (key) => { log.push(`close ${key}`) } },
  })
  // One read of 200: two pieces; a second read meanwhile.
  for (let i = 0; i < 200; i++) group.add(env(`m${String(i).padStart(3, '0')}`))
  await turn()
  group.add(env('x'))
  await turn()
  const ids = (from: number, to: number): string => Array.from({ length: to - from }, (_, i) => `m${String(from + i).padStart(3, '0')}`).join(',')
  assert.equal(log.filter((l) => !l.startsWith('run ')), [`open ${MARK_PREFIX}m000 {"n":127,"methods":{"node.pong":127},"from":{"central":127}}`, `record ${ids(0, 127)}`], 'the second piece waits: its requests are neither recorded nor ACKed')
  assert.is(log.filter((l) => l.startsWith('run ')).length, 127)
  for (let i = 0; i < 126; i++) runs.get(`m${String(i).padStart(3, '0')}`)!()
  await turn()
  assert.ok(!log.includes(`record ${ids(127, 200)}`), 'one run of the first piece still going: the second still waits')
  runs.get('m126')!()
  await turn()
  const after = log.filter((l) => !l.startsWith('run ')).slice(2)
  assert.equal(after.slice(0, 3), [`close ${MARK_PREFIX}m000`, `open ${MARK_PREFIX}m127 {"n":73,"methods":{"node.pong":73},"from":{"central":73}}`, `record ${ids(127, 200)}`])
  for (let i = 127; i < 200; i++) runs.get(`m${i}`)!()
  await turn()
  assert.equal(log.filter((l) => !l.startsWith('run ')).slice(5), [`close ${MARK_PREFIX}m127`, `open ${MARK_PREFIX}x {"n":1,"methods":{"node.pong":1},"from":{"central":1}}`, 'record x'])
})

test('receipts - self-healing sinks (file.chunk) neither wait for the runs before them nor open a mark; the next piece of another sink opens one without waiting for them', async () => {
  const log: string[] = []
  const group = new ReceiptGroup({
    record: async (ids) => { log.push(`record ${ids.join(',')}`) },
    durable: () => false,
    done: () => new Promise<void>(() => undefined), // runs that never end
    failed: () => assert.unreachable(),
    selfHealing: (e) => e.id.startsWith('chunk'),
    marks: { open: async (key) => { log.push(`open ${key}`) }, close: (key) => { log.push(`close ${key}`) } },
  })
  for (const id of ['chunk1', 'chunk2', 'pong']) {
    group.add(env(id))
    await turn()
  }
  assert.equal(log, ['record chunk1', 'record chunk2', `open ${MARK_PREFIX}pong`, 'record pong'])
})

/** A ReceiptGroup over a real store, its marks wired as the dispatcher wires them; `run`: each done(). */
async function onStore(dir: string, run: () => Promise<void> | void, batches: number[] = []): Promise<{ ob: Outbox; group: ReceiptGroup }> {
  const ob = await Outbox.open({ dir, maxBytes: 1 << 24, onBatch: (records) => batches.push(records) })
  const group = new ReceiptGroup({
    record: (ids) => ob.markSeen(ids), durable: (id) => ob.hasSeen(id), done: run, failed: () => assert.unreachable(),
    marks: { open: (key, body) => ob.receive(key, 'ship1', body), close: (key) => void ob.finishRun(key) },
  })
  return { ob, group }
}

test('receipts - on a real store: a piece and its mark fill one journal commit; a crash while a piece runs leaves that one mark open, and none once the runs ended', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-receipts-'))
  try {
    const batches: number[] = []
    const a = await onStore(dir, () => undefined, batches)
    for (let i = 0; i < 300; i++) a.group.add(env(`01HZZZZZZZZZZZZZZZZZZZZ${String(i).padStart(3, '0')}`))
    await a.group.flushNow()
    await new Promise((r) => setTimeout(r, 50))
    await a.ob.close()
    // 3 marks opened and closed, 300 receipts: no piece split over two commits (a commit of its 1-2 records left over).
    assert.is(batches.reduce((n, b) => n + b, 0), 306)
    assert.ok(batches.every((n) => n === 1 || n >= 48), `batches ${batches.join(',')}`)
    const b = await onStore(dir, () => new Promise<void>(() => undefined)) // runs that never end: the process dies meanwhile
    assert.equal(b.ob.inbox(), [], 'every mark closed')
    for (let i = 0; i < 300; i++) b.group.add(env(`01HZZZZZZZZZZZZZZZZZZZY${String(i).padStart(3, '0')}`))
    // The first piece on disk (its mark with it); the next would wait for runs that never end.
    while (b.ob.inbox().length === 0) await turn()
    await b.ob.close()
    const c = await onStore(dir, () => undefined)
    const open = c.ob.inbox()
    assert.equal(open.map((e) => e.id), [`${MARK_PREFIX}01HZZZZZZZZZZZZZZZZZZZY000`], 'one piece was between its receipts and the end of its runs')
    assert.is(caughtSinks(open[0]!, 'ship1')?.count, 127)
    assert.not.ok(c.ob.hasSeen('01HZZZZZZZZZZZZZZZZZZZY127'), 'the next piece waited: not recorded, not ACKed (its sender sends it again)')
    await c.ob.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('receipts - a mark left open by a crash is told after the restart: how many requests, to which sinks, from whom', () => {
  assert.is(caughtSinks({ id: '01HZZZZZZZZZZZZZZZZZZZZZZZ', body: new Uint8Array() }, 'ship1'), undefined, 'a message in the inbox is no mark')
  const told = caughtSinks({ id: `${MARK_PREFIX}m000`, body: Buffer.from('{"n":3,"methods":{"error.log":2,"node.pong":1},"from":{"central":3}}') }, 'ship1')!
  assert.is(told.code, 'sink_interrupted')
  assert.is(told.count, 3)
  assert.is(told.message, 'ship1: 3 requests to sinks (error.log ×2, node.pong ×1; from central ×3) were received and taken as started when it stopped; some may not have run, and none runs again')
})

test.run()
