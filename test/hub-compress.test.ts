/**
 * transport.compress: batches of ≥ 1 KiB of envelopes go deflated (zbatch frames) between peers
 * that announced `deflate`; the hub inflates them for a receiver that did not, and refuses a
 * zbatch that would inflate past the frame limit (a bomb), closing only its sender's connection.
 */
import zlib from 'node:zlib'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Hub, hashToken } from '../src/hub'
import type { Inbound } from '../src/transport'
import { decompress, maybeCompress } from '../src/wire/compress'
import type { Frame, ZbatchFrame } from '../src/wire/framing'
import { compressFrame, inflateBatch } from '../src/wire/batch'
import { encode as mpEncode } from '@msgpack/msgpack'
import { decode } from '../src/wire/envelope'
import { Cluster, editYaml, section, sendVia } from './fixtures/cluster'
import { freePort } from './fixtures/ports'
import { collect, make, rawPeer, recordingProxy, TOKENS, waitFor, wireEnvelopes } from './fixtures/wire-peers'

async function startHub(): Promise<{ hub: Hub; port: number }> {
  const port = await freePort()
  const tokens = Object.fromEntries(Object.entries(TOKENS).map(([n, t]) => [n, hashToken(t)]))
  return { hub: await Hub.start({ listen: `127.0.0.1:${port}`, tokens, log: () => {} }), port }
}

/** An envelope-sized payload that compresses the way command output does. */
const text = (i: number): Uint8Array => Buffer.from(`{"i":${i},"line":"${'disk /dev/sda1 ok; '.repeat(10)}"}`)
const bomb = (): Uint8Array => zlib.deflateRawSync(Buffer.alloc(4 * 1024 * 1024))
const types = (fs: Frame[]): string[] => fs.filter((f) => f.t === 'msg' || f.t === 'batch' || f.t === 'zbatch').map((f) => f.t)

test('the codec: only 1 KiB or more, only when it saves 10%, never when off; inflation is capped', () => {
  const big = Buffer.from('abc '.repeat(1000))
  assert.is(maybeCompress(big.subarray(0, 1000), 'auto'), undefined, 'under 1 KiB')
  assert.is(maybeCompress(big, 'off'), undefined)
  assert.is(maybeCompress(zlib.deflateRawSync(Buffer.from('x'.repeat(2000)).map((_, i) => Math.floor(Math.sin(i) * 1e4) & 255)), 'auto'), undefined, 'already compressed: not worth it')
  const z = maybeCompress(big, 'auto')!
  assert.ok(z.length < big.length * 0.9)
  assert.equal(Buffer.from(decompress(z)), big)
  assert.throws(() => decompress(bomb()), (err: Error & { code?: string }) => err.code === 'compressed_too_large')
  assert.throws(() => decompress(Buffer.from('not deflate at all')), (err: Error & { code?: string }) => err.code === 'frame_invalid')
})

test('inflateBatch: a zbatch gives back its envelopes; one that does not inflate to one binary per id is frame_invalid', () => {
  const bs = Array.from({ length: 20 }, (_, i) => text(i))
  const z = compressFrame({ t: 'batch', to: 'b', from: 'a', ids: bs.map((_, i) => `m${i}`), bs }, 'auto')
  assert.is(z.t, 'zbatch')
  const back = inflateBatch(z as ZbatchFrame)
  assert.equal([back.to, back.from, back.ids.length], ['b', 'a', 20])
  assert.equal(back.bs.map((b) => Buffer.from(b).toString()), bs.map((b) => Buffer.from(b).toString()))
  const zbatch = (list: unknown, ids = ['m1', 'm2']): ZbatchFrame => ({ t: 'zbatch', to: 'b', ids, z: zlib.deflateRawSync(mpEncode(list)) })
  const bad = (f: ZbatchFrame, why: string): void => { assert.throws(() => inflateBatch(f), (err: Error & { code?: string }) => err.code === 'frame_invalid' && err.message.includes(why)) }
  bad(zbatch([new Uint8Array([1])]), 'one per id')
  bad(zbatch([new Uint8Array([1]), 'two']), 'one per id')
  bad(zbatch({ a: 1 }), 'one per id')
  bad({ t: 'zbatch', to: 'b', ids: ['m1'], z: zlib.deflateRawSync(Buffer.from([0x91, 0xc4, 0x01, 0x07, 0xc1])) }, 'does not inflate to MessagePack')
  // Another layout of the same list (array16 of bin16) reads the same through the general Decoder.
  const wide = Buffer.from([0xdc, 0x00, 0x01, 0xc5, 0x00, 0x01, 0x07])
  assert.equal([...inflateBatch({ t: 'zbatch', to: 'b', ids: ['m1'], z: zlib.deflateRawSync(wide) }).bs[0]!], [7])
})

test('compressed and uncompressed peers in one fleet: a node that announced deflate gets zbatch frames, one that did not gets plain batches, both every envelope whole and in order', async () => {
  const { hub, port } = await startHub()
  const pb = await recordingProxy(port)
  const pc = await recordingProxy(port)
  const pa = await recordingProxy(port)
  const a = make('a', pa.port, 'auto')
  const b = make('b', pb.port, 'off')
  const c = make('c', pc.port, 'auto')
  try {
    const gotB = collect<Inbound>(b.messages())
    const gotC = collect<Inbound>(c.messages())
    for (const t of [a, b, c]) t.start()
    await waitFor(() => assert.ok(a.connected && b.connected && c.connected))
    const sent = Array.from({ length: 30 }, (_, i) => text(i))
    await Promise.all(['b', 'c'].flatMap((to) => sent.map((bytes, i) => a.publish({ id: `${to}${i}`, to, method: 'x', event: false, bytes }))))
    await waitFor(() => { assert.is(gotB.length, 30); assert.is(gotC.length, 30) })
    assert.equal(gotB.map((m) => Buffer.from(m.bytes)), sent.map((s) => Buffer.from(s)))
    assert.equal(gotC.map((m) => Buffer.from(m.bytes)), sent.map((s) => Buffer.from(s)))
    assert.ok(gotB.every((m) => m.from === 'a') && gotC.every((m) => m.from === 'a'))
    assert.ok(types(pa.up).includes('zbatch'), `a compressed (${types(pa.up).join(' ')})`)
    assert.ok(types(pc.down).includes('zbatch'), `c received zbatch frames (${types(pc.down).join(' ')})`)
    assert.not.ok(types(pb.down).includes('zbatch'), `b (compress: off) never receives one (${types(pb.down).join(' ')})`)
    assert.ok(types(pb.down).includes('batch'))
    // b compresses nothing either: what it sends back is plain.
    await Promise.all(sent.map((bytes, i) => b.publish({ id: `back${i}`, to: 'a', method: 'x', event: false, bytes })))
    await waitFor(() => assert.ok(types(pb.up).filter((t) => t !== 'zbatch').length >= 2))
    assert.not.ok(types(pb.up).includes('zbatch'))
  } finally {
    await a.close(); await b.close(); await c.close(); pa.close(); pb.close(); pc.close(); await hub.close()
  }
})

test('a compressed bomb for a receiver without deflate is refused (compressed_too_large): only the sender\'s connection closes', async () => {
  const { hub, port } = await startHub()
  const peers: Awaited<ReturnType<typeof rawPeer>>[] = []
  try {
    const a = await rawPeer(port, 'a', 3, ['deflate'])
    const b = await rawPeer(port, 'b', 2)
    const c = await rawPeer(port, 'c', 3)
    peers.push(a, b, c)
    a.send({ t: 'zbatch', to: 'b', ids: ['x1', 'x2'], z: bomb() })
    await waitFor(() => assert.ok(a.closed()))
    const err = a.frames.find((f) => f.t === 'error') as Extract<Frame, { t: 'error' }> | undefined
    assert.is(err?.code, 'compressed_too_large')
    assert.not.ok(b.frames.some((f) => f.t === 'batch' || f.t === 'msg' || f.t === 'zbatch'), 'nothing of it reached b')
    // b and c are still connected and still served.
    c.send({ t: 'msg', id: 'after', to: 'b', b: text(1) })
    await waitFor(() => assert.ok(b.frames.some((f) => f.t === 'msg' && f.id === 'after')))
    assert.not.ok(b.closed() || c.closed())
    assert.equal(hub.connected(), ['b', 'c'])
  } finally {
    for (const p of peers) p.close()
    await hub.close()
  }
})

test('a node that announced deflate drops a bomb forwarded to it, stays connected and takes the next batch', async () => {
  const { hub, port } = await startHub()
  const c = make('c', port, 'auto')
  let a: Awaited<ReturnType<typeof rawPeer>> | undefined
  try {
    const got = collect<Inbound>(c.messages())
    c.start()
    await waitFor(() => assert.ok(c.connected))
    a = await rawPeer(port, 'a', 3, ['deflate'])
    a.send({ t: 'zbatch', to: 'c', ids: ['x1'], z: bomb() })
    const good = Buffer.from([0x92, 0xc4, 2, 1, 2, 0xc4, 1, 3])
    a.send({ t: 'zbatch', to: 'c', ids: ['g1', 'g2'], z: zlib.deflateRawSync(good) })
    await waitFor(() => assert.is(got.length, 2))
    assert.equal(got.map((m) => [...m.bytes]), [[1, 2], [3]])
    assert.ok(c.connected)
    assert.not.ok(a.closed(), 'the hub forwards to a deflate receiver without inflating')
  } finally {
    a?.close(); await c.close(); await hub.close()
  }
})

test('real nodes: transport.compress off on one receiver, auto on another; each gets what it announced and runs every command once', async () => {
  const c = await Cluster.create(['ship1', 'ship2'])
  const proxies: Awaited<ReturnType<typeof recordingProxy>>[] = []
  try {
    await c.startHub()
    for (const ship of ['ship1', 'ship2']) {
      const p = await recordingProxy(c.port)
      proxies.push(p)
      editYaml(c.node(ship).config, (doc) => {
        section(doc, 'transport').servers = [`tcp://127.0.0.1:${p.port}`]
        if (ship === 'ship1') section(doc, 'transport').compress = 'off'
      })
    }
    const [p1, p2] = proxies as [typeof proxies[0], typeof proxies[0]]
    await c.start('central')
    await c.start('ship1')
    await c.start('ship2')
    const n = 60
    const cmds = ['ship1', 'ship2'].flatMap((to) => Array.from({ length: n }, () => ({ toNode: to, method: 'node.ping' })))
    const r = await sendVia(c.node('central').socket, cmds, { ms: 30_000 })
    assert.is(r.replies.length, 2 * n, 'one reply per command')
    assert.is(new Set(r.replies.map((x) => x.inReplyTo)).size, 2 * n)
    const hello = (p: typeof p1): Extract<Frame, { t: 'hello' }> => p.up.find((f) => f.t === 'hello') as Extract<Frame, { t: 'hello' }>
    assert.is(hello(p1).features, undefined, 'ship1 (off) announces nothing')
    assert.equal(hello(p2).features, ['deflate'])
    assert.not.ok(p1.down.some((f) => f.t === 'zbatch'), 'nothing compressed reaches ship1')
    assert.ok(p2.down.some((f) => f.t === 'zbatch'), 'ship2 gets compressed batches')
    for (const [p, ship] of [[p1, 'ship1'], [p2, 'ship2']] as const) {
      const pings = wireEnvelopes(p.down).map((b) => decode(b)).filter((e) => e.method === 'node.ping')
      assert.is(pings.length, n, `each command crossed to ${ship} once`)
    }
  } finally {
    for (const p of proxies) p.close()
    await c.destroy()
  }
})

test.run()
