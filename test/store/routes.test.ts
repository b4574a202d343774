/**
 * A message's route (ackTimeout, retries, method) is stored with it: in the journal record
 * (one record with the request's own record), in the snapshot's rows, and back after a crash or
 * a clean restart, so delivery never decodes a body. While an upgrade may roll back the store
 * writes the records an older outpost reads, and their messages come back without a route.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Delivery } from '../../src/delivery'
import { listSegments, readSegment, segmentName } from '../../src/store/journal'
import { abandonOutbox } from '../fixtures/abandon-outbox'
import { writeRowsSnapshot } from '../fixtures/snapshot-rows'
import { Outbox, type OutboxOptions } from '../../src/store/outbox'
import type { Transport } from '../../src/transport'

const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-routes-'))
const open = (dir: string, o: Partial<OutboxOptions> = {}): Promise<Outbox> => Outbox.open({ dir, maxBytes: 1 << 24, ...o })
const body = new Uint8Array(64).fill(0x61)
const route = { ackTimeout: 7, method: 'cli.run' }
const request = { replyMethod: 'reply.file.append', until: Date.now() + 60_000 }

/** The first byte (the op code) of every record in the journal, in order. */
function opCodes(dir: string): number[] {
  return listSegments(dir).flatMap((n) => readSegment(path.join(dir, segmentName(n)), n).records.map((r) => r[0]!))
}

test('routes - a request with its route is one journal record, and its route and request record come back after a crash and after a snapshot', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  const e = await ob.enqueue({ id: 'r1', dest: 'ship1', body, createdAt: 1, expiresAt: 2, route, request })
  assert.equal(e.route, route)
  await ob.enqueue({ id: 'r2', dest: 'ship1', body, createdAt: 1, expiresAt: 2, route: { retries: 0, method: 'node.ping' } })
  assert.equal(opCodes(dir), [9, 9], 'one record each, the request record inside the first')
  await abandonOutbox(ob)
  const again = await open(dir)
  assert.equal(again.get('r1')?.route, route)
  assert.equal(again.get('r2')?.route, { retries: 0, method: 'node.ping' }, 'an absent ackTimeout stays absent (the config decides)')
  assert.ok(again.sentRequest('r1', 'ship1', 'reply.file.append'), 'the request record came back with it')
  assert.not.ok(again.sentRequest('r1', 'ship1', 'cli.run'))
  await again.close()
  const third = await open(dir)
  assert.is(third.stats().recovery.replayedRecords, 0, 'from the snapshot alone')
  assert.equal(third.get('r1')?.route, route)
  assert.equal(third.head('ship1', 10).map((x) => x.route?.method), ['cli.run', 'node.ping'])
  assert.ok(third.sentRequest('r1', 'ship1', 'reply.file.append'))
  await third.close()
})

test('routes - while an upgrade may roll back (keepOldFormat) the records are the older ones, and the messages come back without a route', async () => {
  const dir = tmpDir()
  const ob = await open(dir, { keepOldFormat: true })
  await ob.enqueue({ id: 'o1', dest: 'ship1', body, createdAt: 1, expiresAt: 2, route, request })
  assert.equal(opCodes(dir), [1, 4], 'an enqueue and a separate request record, as an older outpost writes them')
  await abandonOutbox(ob)
  const again = await open(dir, { keepOldFormat: true })
  assert.is(again.get('o1')?.route, undefined)
  assert.ok(again.sentRequest('o1', 'ship1', 'reply.file.append'))
  again.useNewFormat()
  await again.enqueue({ id: 'n1', dest: 'ship1', body, createdAt: 1, expiresAt: 2, route })
  await again.close()
  const third = await open(dir)
  assert.equal(third.all().map((x) => [x.id, x.route?.method]), [['o1', undefined], ['n1', 'cli.run']])
  await third.close()
})

test('routes - a format-2 snapshot from before routes opens: its rows have none, new ones do', async () => {
  const dir = tmpDir()
  // What an outpost before routes wrote: no route columns.
  await writeRowsSnapshot(dir, [{ seq: 1, id: 'a1', dest: 'ship1', body }], { format: 2, noRoutes: true })
  const again = await open(dir)
  assert.equal(again.all().map((x) => [x.id, x.route]), [['a1', undefined]])
  await again.enqueue({ id: 'a2', dest: 'ship1', body, createdAt: 1, expiresAt: 2, route })
  await again.close()
  const third = await open(dir)
  assert.is(third.format, 4)
  assert.equal(third.all().map((x) => [x.id, x.route?.method]), [['a1', undefined], ['a2', 'cli.run']])
  await third.close()
})

test('routes - format 4 keeps a stored message\'s route (ackTimeout, retries, method), attempts and times in its record, across a restart', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  await ob.enqueue({ id: 'r1', dest: 'ship1', body, createdAt: 1_700_000_000_123, expiresAt: 1_800_000_000_456, route: { ackTimeout: 2500, retries: 7, method: 'cli.run' } })
  await ob.enqueue({ id: 'r2', dest: 'ship1', body, createdAt: 5, expiresAt: 6, route: { method: 'node.ping' } })
  await ob.checkpoint()
  await ob.recordAttempt('r1', 2, 1_700_000_009_999)
  await ob.close()
  const again = await open(dir)
  assert.is(again.format, 4)
  const [r1, r2] = again.head('ship1', 2)
  assert.equal([r1?.route, r1?.createdAt, r1?.expiresAt, r1?.attempts, r1?.nextAt], [{ ackTimeout: 2500, retries: 7, method: 'cli.run' }, 1_700_000_000_123, 1_800_000_000_456, 2, 1_700_000_009_999])
  assert.equal(r2?.route, { method: 'node.ping' })
  await again.close()
})

test('routes - format 4: a run of records reuses the previous destination and route only when their bytes and numbers match, across a restart', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  // Neighbours that differ in one thing each: destination bytes of the same length, method of the
  // same length, ackTimeout, retries, no ackTimeout (NaN in the record), no route at all.
  const want: [string, string, Record<string, unknown> | undefined][] = [
    ['a1', 'shipA', { ackTimeout: 100, retries: 1, method: 'm.one' }],
    ['a2', 'shipA', { ackTimeout: 100, retries: 1, method: 'm.one' }],
    ['a3', 'shipB', { ackTimeout: 100, retries: 1, method: 'm.two' }],
    ['a4', 'shipB', { ackTimeout: 200, retries: 1, method: 'm.two' }],
    ['a5', 'shipB', { ackTimeout: 200, retries: 2, method: 'm.two' }],
    ['a6', 'shipB', { retries: 2, method: 'm.two' }],
    ['a7', 'shipB', undefined],
    ['a8', 'shipA', { retries: 2, method: 'm.two' }],
    ['a9', 'shipAA', { retries: 2, method: 'm.two' }],
  ]
  for (const [id, dest, route] of want) await ob.enqueue({ id, dest, body, createdAt: 1, expiresAt: 2, ...(route !== undefined ? { route: route as { method: string } } : {}) })
  await ob.close()
  const again = await open(dir)
  assert.equal(again.all().map((e) => [e.id, e.dest, e.route]), want)
  await again.close()
})

test('routes - delivery sends a stored message by its route, without decoding its body', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  // Not MessagePack at all: delivery would throw decoding it.
  const opaque = new Uint8Array([0xc1, 0xc1, 0xc1, 0xc1])
  await ob.enqueue({ id: 'd1', dest: 'ship1', body: opaque, createdAt: Date.now(), expiresAt: Date.now() + 60_000, route: { ackTimeout: 0, method: 'node.ping' } })
  const published: { id: string; to: string; method: string; event: boolean }[] = []
  // The transport is this test's edge: it records what delivery hands it.
  const transport = { kind: 'memory', connected: true, publish: async (m: { id: string; to: string; method: string; event: boolean }) => { published.push({ id: m.id, to: m.to, method: m.method, event: m.event }) } } as unknown as Transport
  const d = new Delivery({ self: 'central', outbox: ob, transport, defaults: { ackTimeout: 10, retries: 3 }, local: () => {}, onGiveUp: () => {}, log: () => {} })
  d.kick()
  for (let i = 0; i < 100 && ob.get('d1') !== undefined; i++) await new Promise((r) => setTimeout(r, 10))
  d.stop()
  assert.equal(published, [{ id: 'd1', to: 'ship1', method: 'node.ping', event: true }])
  assert.is(ob.get('d1'), undefined, 'an event is removed once published')
  await ob.close()
})

test.run()
