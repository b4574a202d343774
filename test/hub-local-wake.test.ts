/**
 * `outpost hub` with node.name listens before its own node (central, no token in hub.tokens) has
 * started and attached. A node that connects in between and sends to central is told `nack
 * offline`, and waits for `online` before it sends to central again: the hub must know central
 * is coming (HubOptions.locals), or it keeps no waiter for it and that node never sends to
 * central again until it reconnects (found after an `agent.restart` of the README's hub).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Hub, hashToken } from '../src/hub'
import { encode } from '../src/wire/envelope'
import type { Frame } from '../src/wire/framing'
import { freePort } from './fixtures/ports'
import { rawPeer, TOKENS, waitFor } from './fixtures/wire-peers'

test('hub - a sender told the in-process node is away (not attached yet) gets `online` when it attaches', async () => {
  const port = await freePort()
  const tokens = Object.fromEntries(Object.entries(TOKENS).map(([n, t]) => [n, hashToken(t)]))
  const hub = await Hub.start({ listen: `127.0.0.1:${port}`, tokens, log: () => {}, locals: ['central'] })
  try {
    const a = await rawPeer(port, 'a', 3)
    const id = '01HZZZZZZZZZZZZZZZZZZZZZZ1'
    a.send({ t: 'msg', id, to: 'central', b: encode({ id, fromNode: 'a', toNode: 'central', method: 'node.ping', createdAt: 1 }) })
    await waitFor(() => assert.ok(a.frames.some((f) => f.t === 'nack' && f.id === id && f.reason === 'offline'), 'central is not attached yet'))
    const got: Frame[] = []
    const link = hub.attach('central', (f) => got.push(f), () => {})
    await waitFor(() => assert.ok(a.frames.some((f) => f.t === 'online' && f.node === 'central'), 'a is told central is there now'))
    link.close()
    a.close()
  } finally {
    await hub.close()
  }
})

test.run()
