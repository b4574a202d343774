/**
 * ACKs of many ids (apiVersion 3): one ACK envelope listing the ids of one journal commit,
 * carried whole to a receiver of apiVersion 3 and split by the hub, into plain single-id ACK
 * envelopes, for receivers of apiVersion 1 and 2. A node sends one only where its transport says
 * the hub can deliver it.
 */
import net from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { AckSender } from '../src/ack-sender'
import { Hub, hashToken } from '../src/hub'
import { ACK_METHOD } from '../src/method-names'
import type { Outbound, Transport } from '../src/transport'
import { ackedIds, groupAckIds, makeAcks } from '../src/wire/acks'
import { decode, encode, makeAck } from '../src/wire/envelope'
import { encodeFrame, FrameDecoder, type AcksFrame, type Frame } from '../src/wire/framing'
import { freePort } from './fixtures/ports'
import { make, rawPeer, TOKENS, waitFor, wireEnvelopes } from './fixtures/wire-peers'

async function startHub(): Promise<{ hub: Hub; port: number }> {
  const port = await freePort()
  const tokens = Object.fromEntries(Object.entries(TOKENS).map(([n, t]) => [n, hashToken(t)]))
  return { hub: await Hub.start({ listen: `127.0.0.1:${port}`, tokens, log: () => {} }), port }
}

const acksFrame = (to: string, ids: string[]): AcksFrame => {
  const env = makeAcks('a', to, ids, `ack-${to}-${ids.length}`, 1)
  return { t: 'acks', id: env.id, to, ids, b: encode(env) }
}

test('the envelope: one id is the single-id form; many are `ids` with inReplyTo the first; both decode to their ids', () => {
  const one = decode(encode(makeAcks('b', 'a', ['m1'], 'k1', 5)))
  assert.equal(one, decode(encode(makeAck({ id: 'm1', fromNode: 'a', toNode: 'b' }, 'k1', 5))))
  assert.equal(ackedIds(one), ['m1'])
  const many = decode(encode(makeAcks('b', 'a', ['m1', 'm2', 'm3'], 'k2', 5)))
  assert.is(many.method, ACK_METHOD)
  assert.is(many.fromNode, 'b')
  assert.is(many.toNode, 'a')
  assert.is(many.inReplyTo, 'm1')
  assert.equal(ackedIds(many), ['m1', 'm2', 'm3'])
  assert.equal(ackedIds({ method: 'node.ping', ids: ['x'] }), [], 'only an ACK acknowledges')
  // Groups keep an acks frame (ids twice) within 8 KiB even for 500 ids.
  const ids = Array.from({ length: 500 }, (_, i) => `01JABCDEFGHJKMNPQRSTV${String(i).padStart(5, '0')}`)
  const groups = groupAckIds(ids)
  assert.equal(groups.flat(), ids)
  for (const g of groups) assert.ok(encodeFrame({ ...acksFrame('b'.repeat(63), g), from: 'c'.repeat(63) }).length <= 8192)
})

test('mixed fleet: an ACK of many ids reaches apiVersion 3 whole, apiVersion 2 as a batch and apiVersion 1 as msg frames of single-id ACKs from the authenticated sender', async () => {
  const { hub, port } = await startHub()
  const peers: Awaited<ReturnType<typeof rawPeer>>[] = []
  try {
    const a = await rawPeer(port, 'a', 3)
    const b = await rawPeer(port, 'b', 1)
    const c = await rawPeer(port, 'c', 2)
    peers.push(a, b, c)
    const ids = ['m1', 'm2', 'm3']
    const data = (p: typeof b): Frame[] => p.frames.filter((f) => f.t !== 'welcome')
    a.send(acksFrame('b', ids))
    a.send(acksFrame('c', ids))
    await waitFor(() => { assert.is(data(b).length, 3); assert.is(data(c).length, 1) })
    assert.equal(data(b).map((f) => f.t), ['msg', 'msg', 'msg'])
    assert.equal(data(c).map((f) => f.t), ['batch'])
    for (const [p, name] of [[b, 'b'], [c, 'c']] as const) {
      const envs = wireEnvelopes(data(p)).map((x) => decode(x))
      assert.equal(envs.map((e) => e.inReplyTo), ids)
      assert.ok(envs.every((e) => e.method === ACK_METHOD && e.ids === undefined && e.fromNode === 'a' && e.toNode === name))
      assert.ok(data(p).every((f) => 'from' in f && f.from === 'a'))
    }
    // c again, as apiVersion 3: the same ACK arrives whole.
    const c3 = await rawPeer(port, 'c', 3)
    peers.push(c3)
    a.send(acksFrame('c', ids))
    await waitFor(() => assert.ok(c3.frames.some((f) => f.t === 'acks')))
    const f = c3.frames.find((x) => x.t === 'acks') as Extract<Frame, { t: 'acks' }>
    assert.is(f.from, 'a')
    assert.equal(ackedIds(decode(f.b)), ids)
  } finally {
    for (const p of peers) p.close()
    await hub.close()
  }
})

test('an ACK for a node that is away is dropped, not refused: no nack comes back (it would mark the node away after its `online`)', async () => {
  const { hub, port } = await startHub()
  let a: Awaited<ReturnType<typeof rawPeer>> | undefined
  try {
    a = await rawPeer(port, 'a', 3)
    a.send(acksFrame('b', ['m1', 'm2']))
    a.send({ t: 'msg', id: 'real', to: 'b', b: new Uint8Array([1]) })
    await waitFor(() => assert.ok(a!.frames.some((f) => f.t === 'nack')))
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(a.frames.filter((f) => f.t === 'nack').map((f) => (f as { id: string }).id), ['real'], 'only the message is refused')
    // b comes: a hears it (the refused message made it wait), and an ACK now reaches b whole.
    const b = await rawPeer(port, 'b', 3)
    await waitFor(() => assert.ok(a!.frames.some((f) => f.t === 'online')))
    a.send(acksFrame('b', ['m3', 'm4']))
    await waitFor(() => assert.ok(b.frames.some((f) => f.t === 'acks')))
    b.close()
  } finally {
    a?.close()
    await hub.close()
  }
})

test('a node sends one ACK of many ids per receiver and tick only where its transport can deliver it, else one per id', async () => {
  const published: Outbound[] = []
  let many = true
  const transport = { get manyIdAcks() { return many }, publish: async (m: Outbound) => { published.push(m) } } as unknown as Transport
  let n = 0
  const sender = new AckSender({ self: 'b', transport, ulid: () => `k${n++}`, now: () => 1, charge: (x) => x })
  for (const id of ['m1', 'm2', 'm3']) sender.send('a', id)
  sender.send('z', 'z1')
  await new Promise((r) => setImmediate(r))
  assert.is(published.length, 2, 'one for a (3 ids), one for z (1 id)')
  assert.equal(published[0]!.acks, ['m1', 'm2', 'm3'])
  assert.equal(ackedIds(decode(published[0]!.bytes)), ['m1', 'm2', 'm3'])
  assert.equal(published[1]!.acks, ['z1'], 'a lone ACK is marked as an ACK too')
  const lone = decode(published[1]!.bytes)
  assert.equal([lone.inReplyTo, lone.ids], ['z1', undefined], 'in the single-id form')
  published.length = 0
  many = false
  for (const id of ['m4', 'm5']) sender.send('a', id)
  await new Promise((r) => setImmediate(r))
  assert.equal(published.map((p) => [p.acks, decode(p.bytes).inReplyTo]), [[undefined, 'm4'], [undefined, 'm5']])
})

test('in front of a hub of apiVersion 2 a tcp transport does not offer ACKs of many ids', async () => {
  const socks: net.Socket[] = []
  const frames: Frame[] = []
  const server = net.createServer((s) => {
    socks.push(s)
    const dec = new FrameDecoder()
    s.on('data', (c: Buffer) => { for (const f of dec.push(c)) { frames.push(f); if (f.t === 'hello') s.write(encodeFrame({ t: 'welcome', hub: 'old', apiVersion: 2 })) } })
    s.on('error', () => {})
  })
  const port = await freePort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const a = make('a', port)
  try {
    a.start()
    await waitFor(() => assert.ok(a.connected))
    assert.is(a.manyIdAcks, false)
    const env = makeAcks('a', 'b', ['m1', 'm2'], 'k', 1)
    await a.publish({ id: env.id, to: 'b', method: ACK_METHOD, event: true, bytes: encode(env), acks: ['m1', 'm2'] }).then(() => assert.unreachable('sent'), (err: Error) => assert.match(err.message, /apiVersion < 3/))
    await new Promise((r) => setTimeout(r, 100))
    assert.not.ok(frames.some((f) => f.t === 'acks'), 'no acks frame reached the old hub')
  } finally {
    await a.close(); for (const s of socks) s.destroy(); server.close()
  }
})

test.run()
