/**
 * The pieces of batches on the brokers without a broker: how a tick's envelopes are packed
 * into payloads (order kept, a large one alone), what a receiver makes of a batched payload
 * (and of a malformed one), and ACKs of one tick merged into one naming many ids only for a
 * receiver that reads them.
 */
import { randomBytes } from 'node:crypto'
import zlib from 'node:zlib'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { AckSender } from '../../src/ack-sender'
import type { Transport } from '../../src/transport'
import { isOutpostError } from '../../src/errors'
import { decode, type Envelope } from '../../src/wire/envelope'
import { decodeBatch, encodeBatch, isBatch, packPayloads } from '../../transports/broker-batch'
import { chunk, Unchunker } from '../../transports/chunks'
import { announcedApi, compressPayload, DEFLATE_API, envelopesOf, isCompressed } from '../../transports/broker-payload'
import { API_VERSION } from '../../src/version'

const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill)

test('broker batches - a tick packs in order: small ones batched, one too large for a batch alone in its place', () => {
  const items = [
    { id: 'a', bytes: bytes(200, 1) }, { id: 'b', bytes: bytes(200, 2) }, { id: 'c', bytes: bytes(200, 3) },
    { id: 'BIG', bytes: bytes(70_000, 4) },
    { id: 'd', bytes: bytes(200, 5) },
  ]
  const out = packPayloads(items)
  assert.equal(out.map((p) => p.ids), [['a', 'b', 'c'], ['BIG'], ['d']])
  assert.equal(out.map((p) => p.at), [0, 3, 4])
  assert.ok(isBatch(out[0]!.bytes))
  assert.equal(decodeBatch(out[0]!.bytes).map((b) => b[0]), [1, 2, 3])
  // Alone, an envelope is itself: byte for byte what version 1 publishes.
  assert.is(out[1]!.bytes, items[3]!.bytes)
  assert.is(out[2]!.bytes, items[4]!.bytes)
  // A batch stays under its cap.
  const many = packPayloads(Array.from({ length: 1000 }, (_, i) => ({ id: String(i), bytes: bytes(300, i % 250) })), 64 * 1024)
  assert.ok(many.length > 1 && many.every((p) => p.bytes.length <= 64 * 1024))
  assert.equal(many.flatMap((p) => p.ids), Array.from({ length: 1000 }, (_, i) => String(i)))
})

test('broker batches - a batched payload reads back as its envelopes; anything malformed is frame_invalid, never a crash', () => {
  const bs = Array.from({ length: 20 }, (_, i) => bytes(10 + i * 30, i))
  const hex = (xs: Uint8Array[]): string[] => xs.map((x) => Buffer.from(x).toString('hex'))
  assert.equal(hex(decodeBatch(encodeBatch(bs))), hex(bs))
  const good = Buffer.from(encodeBatch(bs))
  const bad = [
    good.subarray(0, good.length - 1), // cut short
    Buffer.concat([good, Buffer.from([0])]), // trailing bytes
    Buffer.from([0x92, 0x02, 0x90]), // not version 1
    Buffer.from([0x92, 0x01, 0x91, 0xa1, 0x41]), // a string, not bytes
    Buffer.from([0x92, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff]), // claims 4 billion envelopes
    Buffer.from([0x92, 0x01, 0x91, 0xc6, 0x7f, 0xff, 0xff, 0xff]), // claims 2 GB
  ]
  for (const b of bad) {
    try {
      decodeBatch(b)
      assert.unreachable(`decoded ${b.toString('hex')}`)
    } catch (err) {
      assert.ok(isOutpostError(err) && err.code === 'frame_invalid', String(err))
    }
  }
  // A batch larger than a broker message crosses as parts, and is a batch again once whole.
  const parts = chunk('b1', 'ship1', good, 2048)
  assert.ok(parts.length > 1)
  const un = new Unchunker(1 << 20)
  const whole = parts.map((p) => un.push('ship1', p)).at(-1)!
  assert.ok(isBatch(whole))
  assert.equal(hex(decodeBatch(whole)), hex(bs))
  // Envelopes (maps) and parts are told apart from batches by their first byte.
  assert.not.ok(isBatch(Buffer.from([0x87])))
  assert.not.ok(isBatch(new Unchunker(1024).push('x', Buffer.from([0x87])) ?? new Uint8Array()))
})

test('broker compression - a batch that deflate shrinks goes as [2, z] and reads back as its envelopes; one it does not, or one past 64 KiB, goes as it is', () => {
  const text = (i: number): Uint8Array => Buffer.from(`{"sensor":"t${i % 7}","reading":${i},"unit":"C","ok":true}`.repeat(8))
  const batch = encodeBatch(Array.from({ length: 20 }, (_, i) => text(i)))
  const z = compressPayload(batch)
  assert.ok(isCompressed(z) && !isBatch(z) && z.length < batch.length * 0.9)
  assert.equal(envelopesOf(z).map((b) => Buffer.from(b).toString()), Array.from({ length: 20 }, (_, i) => text(i).toString()))
  // A lone envelope of ≥ 1 KiB compresses too, and reads back as itself.
  const one = text(3)
  assert.equal(envelopesOf(compressPayload(one)).map((b) => Buffer.from(b).toString()), [one.toString()])
  // Random bytes do not pay; a payload past 64 KiB is not compressed (the receiver's cap).
  const noise = encodeBatch([randomBytes(2000), randomBytes(2000)])
  assert.is(compressPayload(noise), noise)
  const big = new Uint8Array(70_000)
  assert.is(compressPayload(big), big)
  // With compress off a node announces api version 3 on the brokers: nobody sends it compressed payloads.
  assert.is(announcedApi('off'), DEFLATE_API - 1)
  assert.is(announcedApi('auto'), API_VERSION)
  assert.ok(API_VERSION >= DEFLATE_API)
})

test('broker compression - a bomb is compressed_too_large, a compressed payload inside one or garbage frame_invalid', () => {
  // [2, bin32 z]
  const wrap = (z: Uint8Array): Buffer => {
    const head = Buffer.from([0x92, 0x02, 0xc6, 0, 0, 0, 0])
    head.writeUInt32BE(z.length, 3)
    return Buffer.concat([head, z])
  }
  const cases: [Uint8Array, string][] = [
    [wrap(zlib.deflateRawSync(Buffer.alloc(65 * 1024), { level: 9 })), 'compressed_too_large'],
    [wrap(zlib.deflateRawSync(compressPayload(Buffer.from('x'.repeat(5000))))), 'frame_invalid'],
    [wrap(Buffer.from('not deflate at all')), 'frame_invalid'],
    [Buffer.from([0x92, 0x02, 0xc4, 9, 1]), 'frame_invalid'],
  ]
  for (const [b, code] of cases) {
    try {
      envelopesOf(b)
      assert.unreachable('read')
    } catch (err) {
      assert.ok(isOutpostError(err) && err.code === code, `${code}: ${String(err)}`)
    }
  }
})


test('broker batches - the ACKs of one tick to a node of version 2 are one envelope naming every id; to version 1, one each', async () => {
  const sent: { ack: Envelope; acks: string[] | undefined }[] = []
  // A broker transport: no manyIdAcks (that is a hub's), central known to be of version 2.
  const transport = {
    peerApi: (node: string) => (node === 'central' ? 2 : undefined),
    publish: (o: { bytes: Uint8Array; acks?: string[] }) => { sent.push({ ack: decode(o.bytes), acks: o.acks }); return Promise.resolve() },
  } as unknown as Transport
  let n = 0
  const acks = new AckSender({ self: 'ship1', transport, ulid: () => `a${n++}`, now: () => 1, charge: (b) => b })
  for (const id of ['m1', 'm2', 'm3']) acks.send('central', id)
  for (const id of ['o1', 'o2']) acks.send('old', id)
  // Version 1: at once, one per id, each a single-id ACK from ship1.
  assert.equal(sent.map(({ ack }) => [ack.toNode, ack.fromNode, ack.method, ack.inReplyTo, ack.ids]), [['old', 'ship1', 'ack', 'o1', undefined], ['old', 'ship1', 'ack', 'o2', undefined]])
  await new Promise((r) => process.nextTick(r))
  assert.is(sent.length, 3)
  assert.is(sent[2]!.ack.toNode, 'central')
  assert.is(sent[2]!.ack.inReplyTo, 'm1')
  assert.equal(sent[2]!.ack.ids, ['m1', 'm2', 'm3'])
  // Through a broker the envelope goes as it is (an `acks` frame is a hub's).
  assert.is(sent[2]!.acks, undefined)
  // A lone ACK to version 2 is the single-id envelope.
  acks.send('central', 'x')
  await new Promise((r) => process.nextTick(r))
  assert.equal([sent[3]!.ack.toNode, sent[3]!.ack.inReplyTo, sent[3]!.ack.ids], ['central', 'x', undefined])
  assert.is(new Set(sent.map((s) => s.ack.id)).size, 4, 'each ACK envelope has an id of its own')
})

test.run()
