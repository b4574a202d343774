/**
 * Batched payloads and ACKs of many ids on the brokers (api version 2), with a real mosquitto
 * and a real nats-server: nodes in this process (central, a new ship and an old ship running
 * api version 1's transport, test/fixtures/v1/), and a raw subscriber on the broker that sees
 * every publish. Old and new nodes in one fleet both ways; fewer publishes than messages to a new
 * node and none batched to the old one; ACKs of many ids clear the sender's outbox; a broker
 * killed mid-batch loses nothing and runs nothing twice.
 */
import { connect } from 'nats'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { fleet, mark, observe, type Seen } from '../fixtures/broker-fleet'
import { sleep, until } from '../fixtures/inprocess'

const ackIds = (s: Seen): number[] => s.envs.filter((e) => e.method === 'ack').map((e) => e.ids?.length ?? 1)

for (const kind of ['mqtt', 'nats'] as const) {
  test(`${kind} - old and new nodes in one fleet: batches only to the new one, ACKs of many ids only between new ones, every message once both ways`, async () => {
    const f = await fleet(kind)
    const obs = await observe(kind, f.broker.url)
    try {
      // shipold first: on NATS, central has not heard its presence and asks it (the probe).
      await f.start('shipold', true)
      const central = await f.start('central')
      await f.start('shipnew')
      // Each side learns the other's version (presence, or NATS's probe on first contact).
      await mark(central, 'shipnew', 1)
      await mark(central, 'shipold', 1)
      await until(() => (central.transport.peerApi?.('shipnew') ?? 1) >= 2 && (f.nodes.get('shipnew')!.transport.peerApi?.('central') ?? 1) >= 2, 5_000, 'versions known')
      assert.is(central.transport.peerApi?.('shipold') ?? 1, 1)
      const from = obs.seen.length
      const N = 60
      const [toNew, toOld] = await Promise.all([mark(central, 'shipnew', N), mark(central, 'shipold', N)])
      // Once each, on the right node.
      for (const id of toNew) assert.is(f.runs.filter((r) => r === `shipnew:${id}`).length, 1)
      for (const id of toOld) assert.is(f.runs.filter((r) => r === `shipold:${id}`).length, 1)
      await until(() => [...f.nodes.values()].every((n) => n.outbox.stats().count === 0), 10_000, 'every outbox empty')
      const seen = obs.seen.slice(from)
      const commandsTo = (to: string): Seen[] => seen.filter((s) => s.to === to && s.envs.some((e) => e.method === 'test.mark'))
      // To the new ship: fewer publishes than commands, at least one a batch.
      const toNewPubs = commandsTo('shipnew')
      assert.ok(toNewPubs.length < N, `${toNewPubs.length} publishes carried ${N} commands to shipnew`)
      assert.ok(toNewPubs.some((s) => s.batch && s.envs.length > 1))
      // To the old ship: one envelope per publish, no ACK naming many ids.
      assert.is(commandsTo('shipold').length, N)
      assert.ok(seen.filter((s) => s.to === 'shipold').every((s) => !s.batch && ackIds(s).every((k) => k === 1)))
      // The new ship's ACKs to central: fewer envelopes than commands, some naming many ids.
      const newAcks = seen.filter((s) => s.to === 'central').flatMap((s) => s.envs.filter((e) => e.method === 'ack' && e.fromNode === 'shipnew'))
      assert.ok(newAcks.length < N && newAcks.some((e) => (e.ids?.length ?? 0) > 1), `${newAcks.length} ACK envelopes from shipnew`)
      // The old ship's: one per id, none batched.
      const oldAcks = seen.filter((s) => s.to === 'central' && s.envs.some((e) => e.fromNode === 'shipold'))
      assert.ok(oldAcks.every((s) => !s.batch && s.envs.length === 1 && s.envs[0]!.ids === undefined))
      assert.ok(oldAcks.filter((s) => s.envs[0]!.method === 'ack').length >= N)
      // The old ship took everything sent to it (NATS's version probe included) without a word.
      assert.equal(f.warnings.get('shipold') ?? [], [])
    } finally {
      await obs.close()
      await f.destroy()
    }
  })

  test(`${kind} - the broker killed mid-batch and started again: nothing lost, nothing run twice`, async () => {
    const f = await fleet(kind)
    try {
      const central = await f.start('central')
      await f.start('shipnew')
      await mark(central, 'shipnew', 1)
      await until(() => (central.transport.peerApi?.('shipnew') ?? 1) >= 2, 5_000, 'versions known')
      const N = 400
      const done = mark(central, 'shipnew', N, 90_000)
      await until(() => f.runs.length > 20, 20_000, 'the first runs')
      assert.ok(f.runs.length < N + 1, 'killed before the end')
      await f.broker.stop('SIGKILL')
      await sleep(500)
      await f.broker.start()
      const ids = await done
      for (const id of ids) assert.is(f.runs.filter((r) => r === `shipnew:${id}`).length, 1, `${id} ran once`)
      await until(() => [...f.nodes.values()].every((n) => n.outbox.stats().count === 0), 20_000, 'every outbox empty')
    } finally {
      await f.destroy()
    }
  })
}

test('nats - a forged answer to the version probe (an old node said to take batches) costs one ackTimeout, then every message arrives once', async () => {
  const f = await fleet('nats')
  const nc = await connect({ servers: f.broker.url })
  try {
    await f.start('shipold', true)
    // Anyone with the broker may answer for shipold: the broker does not vouch for senders.
    let forged = 0
    nc.subscribe('outpost.shipold._api.*', { callback: (_e, m) => { forged++; m.respond(new TextEncoder().encode('2')) } })
    await nc.flush()
    const central = await f.start('central')
    await mark(central, 'shipold', 1)
    await until(() => central.transport.peerApi?.('shipold') === 2, 5_000, 'the forged answer taken')
    const ids = await mark(central, 'shipold', 30, 40_000)
    assert.ok(forged >= 1)
    for (const id of ids) assert.is(f.runs.filter((r) => r === `shipold:${id}`).length, 1, `${id} ran once`)
  } finally {
    await nc.close()
    await f.destroy()
  }
})

test.run()
