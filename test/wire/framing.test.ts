import { encode as mpEncode } from '@msgpack/msgpack'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  encodeFrame,
  FrameDecoder,
  MAX_BODY,
  MAX_FRAME,
  splitEnvelope,
  type Frame,
  type PartFrame,
  type ZbatchFrame,
} from '../../src/wire/framing'
import { decodeRoutedFrame } from '../../src/wire/frame-routed'
import { Reassembler } from '../../src/wire/reassembler'
import { throwsCode } from '../helpers'

const LINE = '2020-06-10 16:23:50 -06:00|stderr|warn|this is very very serious'

const EVERY: Frame[] = [
  { t: 'hello', node: 'ship1', token: 's3cret', version: '0.1.0', apiVersion: 1 },
  { t: 'welcome', hub: 'hub1', apiVersion: 1 },
  { t: 'redirect', servers: ['tcp://a:7300', 'tcp://b:7300'] },
  { t: 'msg', id: '01ARYZ6S41TSV4RRFFQ69G5FAV', to: 'ship2', b: new Uint8Array([1, 2, 3]) },
  { t: 'msg', id: '01ARYZ6S41TSV4RRFFQ69G5FAV', to: 'ship2', from: 'ship1', b: new Uint8Array(300).fill(7) },
  { t: 'part', id: 'x1', to: 'ship2', from: 'ship1', i: 2, n: 3, b: new Uint8Array([9]) },
  { t: 'part', id: 'x1', to: 'ship2', i: 0, n: 1, b: new Uint8Array([9, 8]) },
  { t: 'nack', id: 'x1', to: 'ship2', reason: 'offline' },
  { t: 'online', node: 'ship2' },
  { t: 'ping' },
  { t: 'pong' },
  { t: 'error', code: 'auth_failed', message: 'hub: wrong token for ship1' },
  { t: 'log', line: LINE },
]

/** A frame from a raw body, for bodies encodeFrame would never write. */
function raw(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + body.length)
  out[0] = body.length >> 8
  out[1] = body.length & 0xff
  out.set(body, 2)
  return out
}

const decodeOne = (bytes: Uint8Array): Frame[] => new FrameDecoder().push(bytes)

/** Deterministic randomness, so a failing split can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

function shuffle<T>(items: T[], rand: () => number): T[] {
  const a = [...items]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    const tmp = a[i] as T
    a[i] = a[j] as T
    a[j] = tmp
  }
  return a
}

// --- encode and decode ----------------------------------------------------------------------

test('framing - round-trips every frame type', () => {
  for (const frame of EVERY) {
    const bytes = encodeFrame(frame)
    assert.is(bytes.readUInt16BE(0), bytes.length - 2, frame.t)
    assert.equal(decodeOne(bytes), [frame], frame.t)
  }
})

test('framing - a hand-written msg frame is byte for byte what the MessagePack encoder writes, and decodes the same', () => {
  const rand = rng(7)
  const names = ['a', 'ship-1', 'x'.repeat(31), 'y'.repeat(32), 'z'.repeat(63), 'nöde-ü', 'n'.repeat(300)]
  for (let k = 0; k < 300; k++) {
    const pick = (): string => names[Math.floor(rand() * names.length)]!
    const from = rand() < 0.5 ? undefined : pick()
    const size = [0, 1, 200, 255, 256, 3000, 7000][Math.floor(rand() * 7)]!
    const b = new Uint8Array(size).map(() => Math.floor(rand() * 256))
    const f: Frame = from === undefined ? { t: 'msg', id: pick(), to: pick(), b } : { t: 'msg', id: pick(), to: pick(), from, b }
    const generic = mpEncode(f, { ignoreUndefined: true })
    if (generic.length > MAX_BODY) continue
    const mine = encodeFrame(f)
    assert.equal([...mine.subarray(2)], [...generic], `frame ${k}`)
    assert.equal(decodeOne(mine), [f])
  }
})

test('framing - a hand-written part frame is byte for byte what the MessagePack encoder writes, and decodes the same', () => {
  const rand = rng(11)
  const names = ['a', 'ship-1', 'x'.repeat(31), 'z'.repeat(63), 'nöde-ü']
  const counts = [0, 1, 127, 128, 255, 256, 65535, 65536, 0xffffffff]
  for (let k = 0; k < 300; k++) {
    const pick = (): string => names[Math.floor(rand() * names.length)]!
    const from = rand() < 0.5 ? undefined : pick()
    const n = counts[1 + Math.floor(rand() * (counts.length - 1))]!
    const i = Math.min(n - 1, counts[Math.floor(rand() * counts.length)]!)
    const size = [1, 200, 255, 256, 3000, 7000][Math.floor(rand() * 6)]!
    const b = new Uint8Array(size).map(() => Math.floor(rand() * 256))
    const f: Frame = from === undefined ? { t: 'part', id: pick(), to: pick(), i, n, b } : { t: 'part', id: pick(), to: pick(), from, i, n, b }
    const generic = mpEncode(f, { ignoreUndefined: true })
    if (generic.length > MAX_BODY) continue
    const mine = encodeFrame(f)
    assert.equal([...mine.subarray(2)], [...generic], `frame ${k}`)
    assert.equal(decodeOne(mine), [f])
  }
})

test('framing - part payloads are views of the chunk pushed; the reassembled message is a copy', () => {
  const whole = new Uint8Array(20_000).map((_, k) => k % 251)
  const wire = Buffer.concat(splitEnvelope('m', 'ship2', whole, 'ship1').map(encodeFrame))
  const parts = new FrameDecoder().push(wire) as PartFrame[]
  assert.is(parts.length, 3)
  const r = new Reassembler()
  let out: Uint8Array | undefined
  for (const p of parts) out = r.add(p)
  assert.equal(out, whole)
  wire.fill(0)
  assert.equal(out, whole, 'the whole message does not alias the receive buffer')
  assert.is(parts[0]!.b[0], 0, 'a part payload is a view')
})

test('framing - a msg frame in another field order or with extra fields still decodes (general path)', () => {
  const b = new Uint8Array([1, 2, 3])
  const reordered = mpEncode({ t: 'msg', b, to: 'ship2', id: 'x1' })
  assert.equal(decodeOne(raw(reordered)), [{ t: 'msg', id: 'x1', to: 'ship2', b }])
  const extra = mpEncode({ t: 'msg', id: 'x1', to: 'ship2', b, later: 1 })
  assert.equal(decodeOne(raw(extra)), [{ t: 'msg', id: 'x1', to: 'ship2', b }])
  // Trailing garbage after a well-formed msg map is refused, not ignored.
  const trailing = new Uint8Array([...mpEncode({ t: 'msg', id: 'x1', to: 'ship2', b }), 0xc1])
  throwsCode(() => decodeOne(raw(trailing)), 'frame_invalid')
  // A truncated bin length inside the fast layout is refused too.
  const good = mpEncode({ t: 'msg', id: 'x1', to: 'ship2', b })
  throwsCode(() => decodeOne(raw(good.subarray(0, good.length - 1))), 'frame_invalid')
})

test('framing - hand-written batch, acks and zbatch frames are byte for byte what the MessagePack encoder writes, and decode the same', () => {
  const rand = rng(11)
  const names = ['a', 'ship-1', 'x'.repeat(31), 'y'.repeat(32), 'z'.repeat(63), 'nöde-ü', '01ARYZ6S41TSV4RRFFQ69G5FAV']
  const pick = (): string => names[Math.floor(rand() * names.length)]!
  const bytes = (): Uint8Array => new Uint8Array([0, 1, 40, 255, 256, 700][Math.floor(rand() * 6)]!).map(() => Math.floor(rand() * 256))
  for (let k = 0; k < 600; k++) {
    const n = [1, 2, 15, 16, 17][Math.floor(rand() * 5)]!
    const ids = Array.from({ length: n }, pick)
    const from = rand() < 0.5 ? undefined : pick()
    const kind = k % 3
    // The general encoder writes the fields in SHAPES order, t first, leaving out undefined ones.
    const f: Frame = kind === 0 ? { t: 'batch', to: pick(), ...(from !== undefined ? { from } : {}), ids, bs: ids.map(bytes) }
      : kind === 1 ? { t: 'acks', id: pick(), to: pick(), ...(from !== undefined ? { from } : {}), ids, b: bytes() }
        : { t: 'zbatch', to: pick(), ...(from !== undefined ? { from } : {}), ids, z: bytes() }
    const generic = mpEncode(f, { ignoreUndefined: true })
    if (generic.length > MAX_BODY) continue
    const mine = encodeFrame(f)
    assert.equal([...mine.subarray(2)], [...generic], `frame ${k} (${f.t})`)
    assert.equal(decodeOne(mine), [f], `frame ${k} (${f.t})`)
    assert.equal(decodeRoutedFrame(mine.subarray(2), true), f, `frame ${k} (${f.t}), by hand`)
    const [viewed] = new FrameDecoder({ views: true }).push(mine) as Array<Frame & { raw?: Uint8Array }>
    const { raw: tail, ...fields } = viewed!
    assert.equal(fields, f, `frame ${k} (${f.t}), views`)
    assert.ok(tail !== undefined, 'read with views: the bytes from its ids on kept')
    // Forwarded by the hub with the sender it stamps: the bytes the general encoder writes.
    const stamped = { ...viewed!, from: pick() }
    const { raw: _, ...plain } = stamped
    assert.equal([...encodeFrame(stamped)], [...encodeFrame(plain as Frame)], `frame ${k} (${f.t}), forwarded`)
  }
})

test('framing - the hub forwards a batch, acks or zbatch frame\'s ids and payloads as they came, behind its own from', () => {
  // A peer may write an id with a longer header than it needs (str8 for 2 bytes): any MessagePack
  // reader takes it, and the hub passes those bytes on rather than encoding the id again.
  const body = Buffer.from([0x84, 0xa1, 0x74, 0xa6, ...Buffer.from('zbatch'), 0xa2, ...Buffer.from('to'), 0xa1, 0x62,
    0xa3, ...Buffer.from('ids'), 0x91, 0xd9, 0x02, ...Buffer.from('m1'), 0xa1, 0x7a, 0xc4, 0x02, 0x07, 0x08])
  const [f] = new FrameDecoder({ views: true }).push(raw(body))
  assert.equal((f as ZbatchFrame).ids, ['m1'])
  const out = encodeFrame({ ...(f as ZbatchFrame), from: 'a' })
  const idsAt = body.indexOf(Buffer.from([0xa3, ...Buffer.from('ids')]))
  assert.equal([...out.subarray(out.length - (body.length - idsAt))], [...body.subarray(idsAt)], 'ids and z as they came')
  assert.equal(decodeOne(out), [{ t: 'zbatch', to: 'b', from: 'a', ids: ['m1'], z: new Uint8Array([7, 8]) }])
})

test('framing - a batch, acks or zbatch frame of another layout goes the general way: decoded, or refused saying why', () => {
  const bs = [new Uint8Array([1]), new Uint8Array([2, 3])]
  const batch: Frame = { t: 'batch', to: 'ship2', from: 'ship1', ids: ['m1', 'm2'], bs }
  const reordered = mpEncode({ t: 'batch', ids: ['m1', 'm2'], bs, from: 'ship1', to: 'ship2' })
  assert.is(decodeRoutedFrame(reordered, true), undefined)
  assert.equal(decodeOne(raw(reordered)), [batch], 'another order')
  assert.equal(decodeOne(raw(mpEncode({ t: 'batch', to: 'ship2', from: 'ship1', ids: ['m1', 'm2'], bs, later: 1 }))), [batch], 'a field a newer peer adds')
  assert.equal(decodeOne(raw(mpEncode({ t: 'batch', to: 'ship2', from: null, ids: ['m1', 'm2'], bs }))), [{ t: 'batch', to: 'ship2', ids: ['m1', 'm2'], bs }], 'a nil from')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'batch', to: 'ship2', ids: ['m1'], bs }))), 'frame_invalid', 'as long as each other')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'batch', to: 'ship2', ids: [], bs: [] }))), 'frame_invalid', 'not empty')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'acks', id: 'k', to: 'ship2', ids: [], b: bs[0] }))), 'frame_invalid', 'acks.ids must not be empty')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'zbatch', to: 'ship2', ids: ['m1'], z: 'not bytes' }))), 'frame_invalid', 'zbatch.z must be binary')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'acks', id: 'k', to: 'ship2', ids: ['m1', 7], b: bs[0] }))), 'frame_invalid', 'acks.ids must be an array of strings')
  const good = encodeFrame(batch)
  throwsCode(() => decodeOne(raw(good.subarray(2, good.length - 1))), 'frame_invalid')
  throwsCode(() => decodeOne(raw(new Uint8Array([...good.subarray(2), 0xc0]))), 'frame_invalid')
  // Payloads are copies unless the decoder gives views.
  const copied = decodeOne(good)[0] as Extract<Frame, { t: 'batch' }>
  good[good.length - 1] = 99
  assert.is(copied.bs[1]![1], 3)
})

test('framing - writes the SPEC log-line example as a bare string starting 00 42', () => {
  assert.is(LINE.length, 64)
  const bytes = encodeFrame({ t: 'log', line: LINE })
  assert.is(bytes.length, 68)
  assert.is(bytes[0], 0x00)
  assert.is(bytes[1], 0x42)
  assert.is(bytes[2], 0xd9) // str8
  assert.is(bytes[3], 64)
  assert.is(Buffer.from(bytes.subarray(4)).toString('utf8'), LINE)
})

test('framing - omits undefined fields when encoding', () => {
  const frame = { t: 'msg', id: 'a', to: 'b', from: undefined, b: new Uint8Array([1]) } as unknown as Frame
  const decoded = decodeOne(encodeFrame(frame))[0] as unknown as Record<string, unknown>
  assert.not.ok('from' in decoded)
  // No nil on the wire either: the body is a 4-entry map.
  assert.is(encodeFrame(frame)[2], 0x84)
})

test('framing - drops unknown fields of a known frame type', () => {
  const body = mpEncode({ t: 'nack', id: 'a', to: 'b', reason: 'offline', future: { x: 1 } })
  assert.equal(decodeOne(raw(body)), [{ t: 'nack', id: 'a', to: 'b', reason: 'offline' }])
})

test('framing - treats a nil from as absent', () => {
  const body = mpEncode({ t: 'msg', id: 'a', to: 'b', from: null, b: new Uint8Array([1]) })
  assert.equal(decodeOne(raw(body)), [{ t: 'msg', id: 'a', to: 'b', b: new Uint8Array([1]) }])
})

// --- chunk boundaries -----------------------------------------------------------------------

function manyFrames(): { frames: Frame[]; wire: Uint8Array } {
  const frames: Frame[] = []
  for (let k = 0; k < 40; k++) frames.push(...EVERY)
  frames.push({ t: 'msg', id: 'big', to: 'ship2', b: new Uint8Array(MAX_BODY - 200).fill(0xab) })
  return { frames, wire: Buffer.concat(frames.map(encodeFrame)) }
}

test('framing - decodes frames fed one byte at a time', () => {
  const { frames, wire } = manyFrames()
  const d = new FrameDecoder()
  const out: Frame[] = []
  for (let k = 0; k < wire.length; k++) out.push(...d.push(wire.subarray(k, k + 1)))
  assert.equal(out, frames)
})

test('framing - decodes frames split at random boundaries, several per chunk', () => {
  const { frames, wire } = manyFrames()
  for (let seed = 1; seed <= 20; seed++) {
    const rand = rng(seed)
    const d = new FrameDecoder()
    const out: Frame[] = []
    let at = 0
    while (at < wire.length) {
      const len = Math.floor(rand() * (seed % 2 === 0 ? 40 : 3000))
      out.push(...d.push(wire.subarray(at, at + len)))
      at += len
    }
    assert.equal(out, frames, `seed ${seed}`)
  }
})

test('framing - decoded frames do not alias the chunks pushed', () => {
  const chunk = new Uint8Array(encodeFrame({ t: 'msg', id: 'a', to: 'b', b: new Uint8Array([1, 2, 3]) }))
  const [frame] = new FrameDecoder().push(chunk)
  chunk.fill(0)
  assert.equal((frame as { b: Uint8Array }).b, new Uint8Array([1, 2, 3]))
})

test('framing - with views (the hub, forwarding at once) a msg payload is a view of the chunk, equal until it changes', () => {
  const chunk = new Uint8Array(encodeFrame({ t: 'msg', id: 'a', to: 'b', b: new Uint8Array([1, 2, 3]) }))
  const [frame] = new FrameDecoder({ views: true }).push(chunk)
  assert.equal(frame, { t: 'msg', id: 'a', to: 'b', b: new Uint8Array([1, 2, 3]) })
  chunk.fill(0)
  assert.equal((frame as { b: Uint8Array }).b, new Uint8Array([0, 0, 0]))
})

// --- bad input ------------------------------------------------------------------------------

test('framing - refuses a length of 8191 or 0xFFFF as soon as the two length bytes arrive', () => {
  for (const len of [MAX_BODY + 1, 0xffff]) {
    const d = new FrameDecoder()
    assert.equal(d.push(new Uint8Array([len >> 8])), [])
    throwsCode(() => d.push(new Uint8Array([len & 0xff])), 'frame_too_large', String(len))
    // Unusable afterwards.
    throwsCode(() => d.push(encodeFrame({ t: 'ping' })), 'frame_too_large')
  }
})

test('framing - accepts a body of exactly 8190 bytes', () => {
  // bin16 header (3) + map/keys/strings: fill the rest with the payload.
  const probe = mpEncode({ t: 'msg', id: 'a', to: 'b', b: new Uint8Array(1000) }).length - 1000
  const frame: Frame = { t: 'msg', id: 'a', to: 'b', b: new Uint8Array(MAX_BODY - probe) }
  const bytes = encodeFrame(frame)
  assert.is(bytes.length, MAX_FRAME)
  assert.equal(decodeOne(bytes), [frame])
})

test('framing - refuses a zero-length body', () => {
  throwsCode(() => decodeOne(new Uint8Array([0, 0])), 'frame_invalid', 'empty')
})

test('framing - refuses a body that is not MessagePack', () => {
  throwsCode(() => decodeOne(raw(new Uint8Array([0xc1]))), 'frame_invalid', 'not MessagePack')
  // A truncated map and trailing bytes are not MessagePack bodies either.
  throwsCode(() => decodeOne(raw(new Uint8Array([0x82, 0xa1, 0x74]))), 'frame_invalid', 'not MessagePack')
  throwsCode(() => decodeOne(raw(new Uint8Array([...mpEncode({ t: 'ping' }), 0x00]))), 'frame_invalid', 'not MessagePack')
})

test('framing - refuses a body that is neither a map nor a string', () => {
  throwsCode(() => decodeOne(raw(mpEncode([1, 2]))), 'frame_invalid', 'map')
  throwsCode(() => decodeOne(raw(mpEncode(42))), 'frame_invalid', 'map')
})

test('framing - refuses an unknown or missing t', () => {
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'teleport' }))), 'frame_invalid', 'unknown frame type', 'teleport')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'constructor' }))), 'frame_invalid', 'unknown frame type')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'log', line: 'x' }))), 'frame_invalid', 'unknown frame type')
  throwsCode(() => decodeOne(raw(mpEncode({ id: 'a' }))), 'frame_invalid', 't must be a string')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 7 }))), 'frame_invalid', 't must be a string')
})

test('framing - refuses a missing or wrong-typed field, naming it', () => {
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'msg', id: 'a', b: new Uint8Array(1) }))), 'frame_invalid', 'frame: msg.to must be a string', 'missing')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'msg', id: 'a', to: 3, b: new Uint8Array(1) }))), 'frame_invalid', 'msg.to', 'number 3')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'msg', id: 'a', to: 'b', b: 'text' }))), 'frame_invalid', 'msg.b must be binary')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'msg', id: 'a', to: 'b', from: 5, b: new Uint8Array(1) }))), 'frame_invalid', 'msg.from')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'hello', node: 'a', token: 'b', version: 'c' }))), 'frame_invalid', 'hello.apiVersion')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'redirect', servers: ['a', 1] }))), 'frame_invalid', 'redirect.servers', 'array of strings')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'part', id: 'a', to: 'b', i: -1, n: 2, b: new Uint8Array(1) }))), 'frame_invalid', 'part.i')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'part', id: 'a', to: 'b', i: 2, n: 2, b: new Uint8Array(1) }))), 'frame_invalid', 'part.i must be below part.n')
  throwsCode(() => decodeOne(raw(mpEncode({ t: 'error', code: 'x' }))), 'frame_invalid', 'error.message')
})

test('framing - encodeFrame refuses a body over 8190 bytes', () => {
  throwsCode(() => encodeFrame({ t: 'msg', id: 'a', to: 'b', b: new Uint8Array(MAX_BODY) }), 'frame_too_large', 'msg', String(MAX_BODY))
  throwsCode(() => encodeFrame({ t: 'log', line: 'x'.repeat(9000) }), 'frame_too_large')
})

// --- splitting and reassembly ---------------------------------------------------------------

test('framing - splitEnvelope sends 100 bytes as one msg frame', () => {
  const bytes = new Uint8Array(100).fill(5)
  const frames = splitEnvelope('id1', 'ship2', bytes, 'ship1')
  assert.equal(frames, [{ t: 'msg', id: 'id1', to: 'ship2', from: 'ship1', b: bytes }])
  const noFrom = splitEnvelope('id1', 'ship2', bytes)
  assert.equal(noFrom, [{ t: 'msg', id: 'id1', to: 'ship2', b: bytes }])
})

test('framing - splitEnvelope leaves room for the from the hub stamps', () => {
  const longest = 'n'.repeat(63)
  for (let len = 7900; len <= 8200; len++) {
    for (const frame of splitEnvelope('01ARYZ6S41TSV4RRFFQ69G5FAV', 'ship2', new Uint8Array(len))) {
      assert.ok(encodeFrame({ ...frame, from: longest }).length <= MAX_FRAME, `envelope of ${len} bytes`)
    }
  }
})

test('framing - splitEnvelope cuts 1 MiB into parts that fit and reassemble in any order', () => {
  const rand = rng(42)
  const bytes = new Uint8Array(1024 * 1024)
  for (let k = 0; k < bytes.length; k++) bytes[k] = Math.floor(rand() * 256)
  const frames = splitEnvelope('01ARYZ6S41TSV4RRFFQ69G5FAV', 'ship2', bytes, 'ship1')
  assert.ok(frames.length > 1)
  const parts = frames as PartFrame[]
  for (const [k, p] of parts.entries()) {
    assert.is(p.t, 'part')
    assert.is(p.i, k)
    assert.is(p.n, parts.length)
    assert.ok(encodeFrame(p).length <= MAX_FRAME, `part ${k}`)
  }
  // Through the wire, shuffled, with a duplicate.
  const wire = Buffer.concat(shuffle([...parts, parts[3] as PartFrame], rand).map(encodeFrame))
  const received = new FrameDecoder().push(wire) as PartFrame[]
  const r = new Reassembler()
  const done: Uint8Array[] = []
  for (const p of received) {
    const whole = r.add(p)
    if (whole !== undefined) done.push(whole)
  }
  assert.is(done.length, 1)
  assert.ok(Buffer.from(done[0] as Uint8Array).equals(bytes))
  assert.is(r.size, 0)
})

test('framing - Reassembler keeps messages of different senders apart', () => {
  const r = new Reassembler()
  const a = splitEnvelope('same', 'ship2', new Uint8Array(20000).fill(1), 'a') as PartFrame[]
  const b = splitEnvelope('same', 'ship2', new Uint8Array(20000).fill(2), 'b') as PartFrame[]
  assert.is(r.add(a[0] as PartFrame), undefined)
  assert.is(r.add(b[0] as PartFrame), undefined)
  assert.is(r.size, 2)
  let whole: Uint8Array | undefined
  for (const p of a.slice(1)) whole = r.add(p)
  assert.equal(whole, new Uint8Array(20000).fill(1))
  assert.is(r.size, 1)
})

test('framing - Reassembler refuses more than maxBytes', () => {
  const parts = splitEnvelope('m', 'ship2', new Uint8Array(50_000), 'ship1') as PartFrame[]
  // Announced: the first part of many already says too much.
  throwsCode(() => new Reassembler({ maxBytes: 40_000 }).add(parts[0] as PartFrame), 'message_too_large', 'm', '40000')
  // Accumulated: parts that each look fine add up to too much.
  const r = new Reassembler({ maxBytes: 10 })
  assert.is(r.add({ t: 'part', id: 'q', to: 'x', i: 2, n: 3, b: new Uint8Array(6) }), undefined)
  assert.is(r.add({ t: 'part', id: 'q', to: 'x', i: 0, n: 3, b: new Uint8Array(4) }), undefined)
  throwsCode(() => r.add({ t: 'part', id: 'q', to: 'x', i: 1, n: 3, b: new Uint8Array(4) }), 'message_too_large', 'q', '14')
  assert.is(r.size, 0)
  // A message of exactly maxBytes is fine.
  const exact = new Reassembler({ maxBytes: 50_000 })
  let whole: Uint8Array | undefined
  for (const p of parts) whole = exact.add(p)
  assert.is(whole?.length, 50_000)
})

test('framing - Reassembler refuses inconsistent parts', () => {
  const r = new Reassembler()
  throwsCode(() => r.add({ t: 'part', id: 'a', to: 'x', i: 3, n: 3, b: new Uint8Array(1) }), 'frame_invalid', 'out of range')
  throwsCode(() => r.add({ t: 'part', id: 'a', to: 'x', i: 0, n: 0, b: new Uint8Array(1) }), 'frame_invalid', 'out of range')
  throwsCode(() => r.add({ t: 'part', id: 'a', to: 'x', i: 0, n: 2, b: new Uint8Array(0) }), 'frame_invalid', 'empty')
  r.add({ t: 'part', id: 'a', to: 'x', i: 0, n: 3, b: new Uint8Array(4) })
  throwsCode(() => r.add({ t: 'part', id: 'a', to: 'x', i: 1, n: 4, b: new Uint8Array(4) }), 'frame_invalid', 'n 4', 'said 3')
  r.add({ t: 'part', id: 'b', to: 'x', i: 0, n: 3, b: new Uint8Array(4) })
  throwsCode(() => r.add({ t: 'part', id: 'b', to: 'x', i: 1, n: 3, b: new Uint8Array(5) }), 'frame_invalid', '5 bytes')
  assert.is(r.size, 0)
})

test('framing - Reassembler sweep drops stale partial messages', () => {
  let now = 1_000
  const r = new Reassembler({ timeoutMs: 60_000, now: () => now })
  r.add({ t: 'part', id: 'old', to: 'x', from: 'a', i: 0, n: 2, b: new Uint8Array(4) })
  now += 30_000
  r.add({ t: 'part', id: 'young', to: 'x', from: 'a', i: 0, n: 2, b: new Uint8Array(4) })
  now += 30_000
  assert.equal(r.sweep(), [])
  now += 1
  assert.equal(r.sweep(), ['old'])
  assert.is(r.size, 1)
  // The dropped message starts over: its late last part alone does not complete it.
  assert.is(r.add({ t: 'part', id: 'old', to: 'x', from: 'a', i: 1, n: 2, b: new Uint8Array(2) }), undefined)
  now += 60_001
  assert.equal(r.sweep().sort(), ['old', 'young'])
  assert.is(r.size, 0)
})

test('framing - refuses a deeply nested body without decoding it', () => {
  // 8000 nested one-element arrays fit one frame; the hub closes that peer, it does not stall.
  const body = new Uint8Array(8000).fill(0x91)
  body[body.length - 1] = 0xc0
  throwsCode(() => decodeOne(raw(body)), 'frame_invalid', 'nested deeper')
})

test('reassembler - bounds the bytes all incomplete messages hold together', () => {
  const r = new Reassembler({ maxBytes: 1000, maxPendingBytes: 2500 })
  // Three messages of 10 parts, each stopping after its first part of 900 bytes.
  const first = (id: string): PartFrame => ({ t: 'part', id, to: 'ship1', from: 'x', i: 0, n: 1000, b: new Uint8Array(1) })
  for (const id of ['a', 'b']) assert.is(r.add({ ...first(id), n: 2, b: new Uint8Array(900) }), undefined)
  throwsCode(() => r.add({ ...first('c'), n: 2, b: new Uint8Array(900) }), 'message_too_large', 'incomplete messages')
  assert.is(r.pendingBytes, 1800)
  // Completing one frees its share.
  assert.ok(r.add({ ...first('a'), i: 1, n: 2, b: new Uint8Array(10) }))
  assert.is(r.pendingBytes, 900)
  assert.is(r.add({ ...first('c'), n: 2, b: new Uint8Array(900) }), undefined)
})

test.run()
