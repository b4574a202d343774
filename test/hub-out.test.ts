import { test } from 'uvu'
import * as assert from 'uvu/assert'
import net from 'node:net'
import { COPY_BELOW, pooledSlabs, SLAB_BYTES } from '../src/hub-out'
import { socketPeer } from '../src/hub-peer'
import { encodeFrame, MAX_BODY, type Frame } from '../src/wire/framing'
import { throwsCode } from './helpers'

/** A socket that records what it is handed (the buffer itself and a copy) and holds the write callbacks. */
function fakeSocket() {
  const writes: { buf: Uint8Array; copy: Buffer; cb: (() => void) | undefined }[] = []
  const events: string[] = []
  const sock = {
    write(b: Uint8Array, cb?: () => void) {
      writes.push({ buf: b, copy: Buffer.from(b), cb })
      events.push('write')
      return true
    },
    cork() {},
    uncork() {},
    end() { events.push('end') },
    destroy() { events.push('destroy') },
  }
  return { sock: sock as unknown as net.Socket, writes, events }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
const bytesOf = (frames: Frame[]): Buffer => Buffer.concat(frames.map((f) => encodeFrame(f)))

const payload = (fill: number, n = 8000): Uint8Array => new Uint8Array(n).fill(fill)

const FRAMES: Frame[] = [
  { t: 'part', id: '01ARYZ6S41TSV4RRFFQ69G5FAV', to: 'ship1', from: 'central', i: 0, n: 2, b: payload(1) },
  { t: 'part', id: '01ARYZ6S41TSV4RRFFQ69G5FAV', to: 'ship1', from: 'central', i: 1, n: 2, b: payload(2, 300) },
  { t: 'msg', id: '01ARYZ6S41TSV4RRFFQ69G5FAW', to: 'ship1', from: 'central', b: payload(3, 40) },
  { t: 'nack', id: 'x1', to: 'ship2', reason: 'offline' },
  { t: 'pong' },
]

test('hub out - the frames of one tick go to the socket as one write, byte for byte what encodeFrame writes', async () => {
  const { sock, writes } = fakeSocket()
  const peer = socketPeer(sock)
  for (const f of FRAMES) peer.write(f)
  await tick()
  assert.is(writes.length, 1)
  assert.ok(writes[0]!.copy.equals(bytesOf(FRAMES)))
})

test('hub out - more than a slab in one tick goes out in order, in several writes', async () => {
  const { sock, writes } = fakeSocket()
  const peer = socketPeer(sock)
  const many: Frame[] = []
  for (let i = 0; i < 20; i++) many.push({ t: 'part', id: 'big', to: 'ship1', from: 'central', i, n: 20, b: payload(i) })
  for (const f of many) peer.write(f)
  await tick()
  assert.ok(writes.length >= Math.ceil((20 * 8000) / SLAB_BYTES))
  assert.ok(Buffer.concat(writes.map((w) => w.copy)).equals(bytesOf(many)))
})

test('hub out - a buffer handed to the socket is not written over before its write callback', async () => {
  const { sock, writes } = fakeSocket()
  const peer = socketPeer(sock)
  // More than COPY_BELOW: the slab itself is handed over (smaller writes are copied out of it).
  const first: Frame[] = [0, 1, 2].map((i) => ({ t: 'part', id: '01ARYZ6S41TSV4RRFFQ69G5FAV', to: 'ship1', from: 'central', i, n: 3, b: payload(i + 1) }))
  assert.ok(bytesOf(first).length > COPY_BELOW)
  for (const f of first) peer.write(f)
  await tick()
  // The socket still holds the first buffer (no callback yet): later frames must go elsewhere.
  for (let round = 0; round < 4; round++) {
    peer.write({ t: 'part', id: 'later', to: 'ship1', from: 'central', i: round, n: 4, b: payload(0xee) })
    await tick()
    assert.ok(Buffer.from(writes[0]!.buf).equals(bytesOf(first)), `first write changed in round ${round}`)
    writes.at(-1)!.cb?.()
    await tick()
  }
  // Once the callback has run, the buffer is taken again.
  const before = pooledSlabs()
  writes[0]!.cb?.()
  assert.is(pooledSlabs(), before + 1)
  for (const f of first) peer.write(f)
  await tick()
  assert.is(pooledSlabs(), before)
  assert.is(writes.at(-1)!.buf.buffer, writes[0]!.buf.buffer)
})

test('hub out - a small write is copied out of its slab, which is free again at once', async () => {
  const { sock, writes } = fakeSocket()
  const peer = socketPeer(sock)
  peer.write(FRAMES[3]!)
  await tick()
  const before = pooledSlabs()
  peer.write(FRAMES[2]!)
  await tick()
  assert.is(pooledSlabs(), before, 'the slab is back in the pool before any write callback')
  assert.ok(writes[1]!.copy.equals(bytesOf([FRAMES[2]!])))
  assert.ok(writes[1]!.buf.byteLength < COPY_BELOW)
})

test('hub out - a peer that does not read holds what was sent to it, not a 64 KiB slab a tick', async () => {
  // A real socket pair on loopback whose reading end never reads: the kernel's buffers fill, then the socket keeps what it is handed.
  let server: net.Socket | undefined
  const listener = net.createServer((s) => { server = s; s.pause() })
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve))
  const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1')
  await new Promise<void>((resolve) => client.once('connect', resolve))
  try {
    const peer = socketPeer(client)
    for (let i = 0; i < 10_000 && client.writableLength === 0; i++) {
      for (let k = 0; k < 8; k++) peer.write({ t: 'part', id: 'fill', to: 'ship1', from: 'central', i: k, n: 8, b: payload(k) })
      await tick()
    }
    assert.ok(client.writableLength > 0, 'the kernel buffers are full')
    const ack: Frame = { t: 'msg', id: '01ARYZ6S41TSV4RRFFQ69G5FAW', to: 'ship1', from: 'central', b: payload(3, 40) }
    const ticks = 500
    const before = process.memoryUsage().arrayBuffers
    for (let i = 0; i < ticks; i++) {
      peer.write(ack)
      await tick()
    }
    const grown = process.memoryUsage().arrayBuffers - before
    const sent = ticks * bytesOf([ack]).length
    assert.ok(grown < 8 * 1024 * 1024, `${ticks} ticks of one ${bytesOf([ack]).length}-byte frame to a peer that does not read held ${grown} more bytes of buffers (${sent} bytes sent)`)
  } finally {
    client.destroy()
    server?.destroy()
    await new Promise<void>((resolve) => listener.close(() => resolve()))
  }
})

test('hub out - a frame past the limit throws frame_too_large and nothing of it is written', async () => {
  const { sock, writes } = fakeSocket()
  const peer = socketPeer(sock)
  peer.write(FRAMES[0]!)
  throwsCode(() => peer.write({ t: 'part', id: 'x', to: 'ship1', from: 'central', i: 0, n: 1, b: payload(9, MAX_BODY - 10) }), 'frame_too_large')
  throwsCode(() => peer.write({ t: 'msg', id: 'x', to: 'ship1', from: 'central', b: payload(9, MAX_BODY - 10) }), 'frame_too_large')
  peer.write(FRAMES[3]!)
  await tick()
  assert.ok(Buffer.concat(writes.map((w) => w.copy)).equals(bytesOf([FRAMES[0]!, FRAMES[3]!])))
})

test('hub out - end sends what was written before it, then ends the socket', () => {
  const { sock, writes, events } = fakeSocket()
  const peer = socketPeer(sock)
  peer.write({ t: 'error', code: 'frame_invalid', message: 'bye' })
  peer.end()
  assert.equal(events, ['write', 'end'])
  assert.ok(writes[0]!.copy.equals(encodeFrame({ t: 'error', code: 'frame_invalid', message: 'bye' })))
})

test.run()
