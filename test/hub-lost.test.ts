/**
 * Messages the hub forwarded on a connection that then went (a receiver SIGKILLed with them in
 * its socket, or replaced by its own reconnect) are lost with it, and nothing refused them: the
 * hub wakes their senders (`online`) when the receiver is back, so they send again at once
 * instead of waiting out their ACK timers (minutes for a file chunk, whatever `ackTimeout` says).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Hub, hashToken } from '../src/hub'
import { encode } from '../src/wire/envelope'
import { Cluster, sendVia } from './fixtures/cluster'
import { freePort } from './fixtures/ports'
import { rawPeer, TOKENS, waitFor } from './fixtures/wire-peers'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function startHub(): Promise<{ hub: Hub; port: number }> {
  const port = await freePort()
  const tokens = Object.fromEntries(Object.entries(TOKENS).map(([n, t]) => [n, hashToken(t)]))
  return { hub: await Hub.start({ listen: `127.0.0.1:${port}`, tokens, log: () => {} }), port }
}

const msg = (id: string): { t: 'msg'; id: string; to: string; b: Uint8Array } =>
  ({ t: 'msg', id, to: 'b', b: encode({ id, fromNode: 'a', toNode: 'b', method: 'node.ping', createdAt: 1 }) })

test('hub - a receiver that closes with messages forwarded to it: their sender gets `online` when it is back (closed, or replaced)', async () => {
  const { hub, port } = await startHub()
  try {
    const a = await rawPeer(port, 'a', 3)
    // Closed, then back.
    let b = await rawPeer(port, 'b', 3)
    a.send(msg('01HZZZZZZZZZZZZZZZZZZZZZZ1'))
    await waitFor(() => assert.ok(b.frames.some((f) => f.t === 'msg')))
    b.close()
    await sleep(200)
    b = await rawPeer(port, 'b', 3)
    await waitFor(() => assert.ok(a.frames.some((f) => f.t === 'online' && f.node === 'b'), 'a is told b is back'))
    // Replaced by a newer connection of its own while the old one looks alive.
    const seen = a.frames.length
    a.send(msg('01HZZZZZZZZZZZZZZZZZZZZZZ2'))
    await waitFor(() => assert.ok(b.frames.some((f) => f.t === 'msg' && f.id === '01HZZZZZZZZZZZZZZZZZZZZZZ2')))
    const again = await rawPeer(port, 'b', 3)
    await waitFor(() => assert.ok(a.frames.slice(seen).some((f) => f.t === 'online' && f.node === 'b'), 'a is told b is back again'))
    // A receiver nobody sent to wakes nobody.
    const c = await rawPeer(port, 'c', 3)
    c.close()
    await sleep(200)
    const before = a.frames.length
    const c2 = await rawPeer(port, 'c', 3)
    await sleep(300)
    assert.not.ok(a.frames.slice(before).some((f) => f.t === 'online'))
    for (const p of [a, b, again, c2]) p.close()
  } finally {
    await hub.close()
  }
})

test('hub - a node SIGKILLed with messages in its socket gets them again as soon as it is back, not after their ACK timeout', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    let ship1 = await c.start('ship1')
    const socket = c.node('central').socket
    assert.is((await sendVia(socket, [{ toNode: 'ship1', method: 'node.ping' }])).replies.length, 1)
    // Frozen, the node takes nothing from its socket: the hub forwards into it, nothing is ACKed.
    ship1.child.kill('SIGSTOP')
    const pings = Array.from({ length: 5 }, () => ({ toNode: 'ship1', method: 'node.ping', ackTimeout: 600 }))
    const waiting = sendVia(socket, pings, { ms: 60_000 })
    await sleep(1500)
    ship1.child.kill('SIGKILL')
    await ship1.exited
    ship1 = await c.start('ship1')
    const r = await waiting
    assert.is(r.accepted.length, 5)
    assert.is(r.replies.length, 5, 'every ping answered well before its 600 s ACK timeout')
  } finally {
    await c.destroy()
  }
})

test.run()
