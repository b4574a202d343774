/**
 * Batch frames on the hub's wire (apiVersion 2): a real hub (in this process or spawned) and
 * real tcp transports or nodes, with a recording proxy in front of the hub counting the frames
 * each way. Old peers (apiVersion 1: raw sockets speaking one msg frame per envelope) in the
 * same fleet, both directions, and a node in front of an old hub.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Hub, hashToken } from '../src/hub'
import { ACK_METHOD } from '../src/method-names'
import type { Inbound, TransportEvent } from '../src/transport'
import { ackedIds } from '../src/wire/acks'
import { decode } from '../src/wire/envelope'
import { encodeFrame, type Frame } from '../src/wire/framing'
import { hubLink } from '../src/hub-link'
import { Cluster, editYaml, section, sendVia } from './fixtures/cluster'
import { freePort } from './fixtures/ports'
import { collect, connected, make, oldPeer, rawPeer, recordingProxy, standInHub, TOKENS, waitFor, wireEnvelopes } from './fixtures/wire-peers'

const envelope = (i: number, size = 200): Uint8Array => new Uint8Array(size).fill(i % 251)
const msgs = (frames: Frame[]): Frame[] => frames.filter((f) => f.t === 'msg' || f.t === 'batch' || f.t === 'part' || f.t === 'zbatch' || f.t === 'acks')

async function startHub(): Promise<{ hub: Hub; port: number }> {
  const port = await freePort()
  const hub = await Hub.start({ listen: `127.0.0.1:${port}`, tokens: { a: hashToken(TOKENS.a!), b: hashToken(TOKENS.b!) }, log: () => {} })
  return { hub, port }
}

test('what is published in one tick goes as batch frames within 8 KiB (the first at once, as a msg frame), large envelopes as parts in their place; a lone one as a msg frame', async () => {
  const { hub, port } = await startHub()
  const pa = await recordingProxy(port)
  const pb = await recordingProxy(port)
  const a = make('a', pa.port)
  const b = make('b', pb.port)
  try {
    const got = collect<Inbound>(b.messages())
    await connected(a)
    await connected(b)
    // 40 envelopes of 200 bytes (more than one frame holds), a 20 KB one, 5 more.
    const sent: { id: string; bytes: Uint8Array }[] = []
    for (let i = 0; i < 40; i++) sent.push({ id: `m${i}`, bytes: envelope(i) })
    sent.push({ id: 'big', bytes: envelope(7, 20_000) })
    for (let i = 40; i < 45; i++) sent.push({ id: `m${i}`, bytes: envelope(i) })
    await Promise.all(sent.map((s) => a.publish({ id: s.id, to: 'b', method: 'x', event: false, bytes: s.bytes })))
    await waitFor(() => assert.is(got.length, sent.length))
    for (let i = 0; i < sent.length; i++) {
      assert.equal(got[i]!.bytes, sent[i]!.bytes, `envelope ${i} in order and whole`)
      assert.is(got[i]!.from, 'a')
    }
    const upTypes = msgs(pa.up).map((f) => f.t)
    const parts = upTypes.filter((t) => t === 'part').length
    assert.ok(parts >= 3, `the 20 KB envelope goes as parts (${upTypes.join(' ')})`)
    // The first of the tick leaves at once as a msg frame; the 39 after it wait for the flush.
    const head = upTypes.slice(0, upTypes.indexOf('part'))
    assert.equal(head, ['msg', 'batch'], `40 envelopes of 200 bytes (short ids) in 2 frames (${upTypes.join(' ')})`)
    assert.equal(upTypes.slice(upTypes.lastIndexOf('part') + 1), ['batch'], `the 5 after the parts in 1 frame (${upTypes.join(' ')})`)
    assert.equal(msgs(pb.down).map((f) => f.t), upTypes, 'the hub forwards the batches as they came')
    const first = msgs(pb.down)[0] as Extract<Frame, { t: 'batch' }>
    assert.is(first.from, 'a')
    for (const f of [...pa.up, ...pb.down]) assert.ok(encodeFrame(f).length <= 8192)
    // A lone message, later: one msg frame, not a batch.
    const before = msgs(pa.up).length
    await a.publish({ id: 'lone', to: 'b', method: 'x', event: false, bytes: envelope(1) })
    await waitFor(() => assert.is(got.length, sent.length + 1))
    assert.equal(msgs(pa.up).slice(before).map((f) => f.t), ['msg'])
  } finally {
    await a.close(); await b.close(); pa.close(); pb.close(); await hub.close()
  }
})

test('mixed fleet: an apiVersion 1 receiver gets one msg frame per envelope of a batch; what it sends reaches a new node', async () => {
  const { hub, port } = await startHub()
  const a = make('a', port)
  let old: Awaited<ReturnType<typeof oldPeer>> | undefined
  try {
    old = await oldPeer(port, 'b')
    const gotA = collect<Inbound>(a.messages())
    await connected(a)
    await Promise.all(Array.from({ length: 10 }, (_, i) => a.publish({ id: `n${i}`, to: 'b', method: 'x', event: false, bytes: envelope(i) })))
    await waitFor(() => assert.is(msgs(old!.frames).length, 10))
    const frames = msgs(old.frames) as Extract<Frame, { t: 'msg' }>[]
    assert.equal(frames.map((f) => f.t), Array(10).fill('msg'))
    assert.equal(frames.map((f) => f.id), Array.from({ length: 10 }, (_, i) => `n${i}`))
    assert.ok(frames.every((f) => f.from === 'a'))
    // The other way: the old peer's msg frames reach the new node.
    for (let i = 0; i < 5; i++) old.send({ t: 'msg', id: `o${i}`, to: 'a', b: envelope(i, 50) })
    await waitFor(() => assert.is(gotA.length, 5))
    assert.ok(gotA.every((m) => m.from === 'b'))
  } finally {
    old?.close(); await a.close(); await hub.close()
  }
})

test('a node inside the hub\'s process gets a batch whole, each envelope in order', async () => {
  const { hub, port } = await startHub()
  const proxy = await recordingProxy(port)
  const a = make('a', proxy.port)
  const b = hubLink(hub, { node: 'b', servers: [], token: null, tls: { ca: null, cert: null, key: null }, version: '0.0.0', section: undefined, log: () => {} })
  try {
    const got = collect<Inbound>(b.messages())
    b.start()
    await connected(a)
    const sent = Array.from({ length: 12 }, (_, i) => ({ id: `h${i}`, bytes: envelope(i, 100) }))
    await Promise.all(sent.map((s) => a.publish({ id: s.id, to: 'b', method: 'x', event: false, bytes: s.bytes })))
    await waitFor(() => assert.is(got.length, sent.length))
    assert.equal(got.map((m) => m.bytes), sent.map((s) => s.bytes))
    assert.ok(got.every((m) => m.from === 'a'))
    assert.ok(msgs(proxy.up).some((f) => f.t === 'batch'), 'they crossed in a batch frame')
  } finally {
    await a.close(); await b.close(); proxy.close(); await hub.close()
  }
})

test('a batch to a receiver that is away: every envelope in it is refused (nack offline)', async () => {
  const { hub, port } = await startHub()
  const a = make('a', port)
  try {
    const events = collect<TransportEvent>(a.events())
    await connected(a)
    const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => a.publish({ id: `q${i}`, to: 'b', method: 'x', event: false, bytes: envelope(i) })))
    assert.ok(results.every((r) => r.status === 'fulfilled'))
    await waitFor(() => assert.equal(events.filter((e) => e.type === 'nack').map((e) => (e as { id: string }).id), ['q0', 'q1', 'q2', 'q3', 'q4', 'q5']))
  } finally {
    await a.close(); await hub.close()
  }
})

test('a frame with no room for the sender\'s name the hub stamps closes its sender\'s connection only (frame_too_large); the hub keeps routing', async () => {
  const { hub, port } = await startHub()
  const peers: Awaited<ReturnType<typeof rawPeer>>[] = []
  try {
    const a = await rawPeer(port, 'a', 3)
    const b = await rawPeer(port, 'b', 3)
    peers.push(a, b)
    a.send({ t: 'msg', id: 'full', to: 'b', b: new Uint8Array(8165) }) // a body of 8190 bytes: no room for from
    await waitFor(() => assert.ok(a.closed()))
    assert.is((a.frames.find((f) => f.t === 'error') as { code?: string } | undefined)?.code, 'frame_too_large')
    const a2 = await rawPeer(port, 'a', 3)
    peers.push(a2)
    a2.send({ t: 'msg', id: 'small', to: 'b', b: envelope(1) })
    await waitFor(() => assert.ok(b.frames.some((f) => f.t === 'msg' && f.id === 'small')))
    assert.not.ok(b.frames.some((f) => f.t === 'msg' && f.id === 'full'))
  } finally {
    for (const p of peers) p.close()
    await hub.close()
  }
})

test('in front of an old hub (welcome apiVersion 1) a node sends one msg frame per envelope', async () => {
  const old = await standInHub(1)
  const a = make('a', old.port)
  try {
    await connected(a)
    await Promise.all(Array.from({ length: 8 }, (_, i) => a.publish({ id: `p${i}`, to: 'b', method: 'x', event: false, bytes: envelope(i) })))
    await waitFor(() => assert.is(msgs(old.frames).length, 8))
    assert.equal(msgs(old.frames).map((f) => f.t), Array(8).fill('msg'))
  } finally {
    await a.close(); old.close()
  }
})

test('real nodes: commands go to the receiver in batches, its ACKs come back batched, each command runs once', async () => {
  const c = await Cluster.create(['ship1'])
  let proxy: Awaited<ReturnType<typeof recordingProxy>> | undefined
  try {
    await c.startHub()
    proxy = await recordingProxy(c.port)
    const p = proxy.port
    editYaml(c.node('ship1').config, (doc) => { section(doc, 'transport').servers = [`tcp://127.0.0.1:${p}`] })
    await c.start('central')
    await c.start('ship1')
    const n = 60
    const r = await sendVia(c.node('central').socket, Array.from({ length: n }, () => ({ toNode: 'ship1', method: 'node.ping' })), { ms: 30_000 })
    assert.is(r.accepted.length, n)
    assert.is(r.replies.length, n, 'one reply per command')
    assert.is(new Set(r.replies.map((x) => x.inReplyTo)).size, n)
    const down = proxy.down
    const commands = wireEnvelopes(down).map((b) => decode(b)).filter((e) => e.method === 'node.ping')
    assert.is(commands.length, n, 'each command crossed once')
    assert.ok(down.some((f) => (f.t === 'batch' || f.t === 'zbatch') && f.ids.length > 1), 'commands arrived in batch frames')
    // Up: ACK envelopes acknowledging many ids (apiVersion 3), in acks frames naming the same ids.
    const upFrames = msgs(proxy.up)
    const acks = wireEnvelopes(proxy.up).map((b) => decode(b)).filter((e) => e.method === ACK_METHOD)
    const acked = acks.flatMap((e) => ackedIds(e))
    assert.is(new Set(acked).size, n, 'every command acknowledged')
    assert.ok(acks.some((e) => (e.ids?.length ?? 0) > 1), 'one ACK envelope acknowledges several ids')
    for (const f of proxy.up) if (f.t === 'acks') assert.equal(f.ids, ackedIds(decode(f.b)), 'the acks frame names what its envelope acknowledges')
    assert.ok(acks.length < n, `fewer ACK envelopes (${acks.length}) than commands (${n})`)
    assert.ok(upFrames.length < acks.length + n, `fewer frames up (${upFrames.length}) than ACKs and replies (${acks.length + n})`)
  } finally {
    proxy?.close()
    await c.destroy()
  }
})

test.run()
