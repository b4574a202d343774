/**
 * publishAll on the brokers (many messages at once, from delivery's pump), with a real mosquitto
 * and a real nats-server: transports in this process, a receiver of api version 4 (batches) or
 * 1 (test/fixtures/v1/: one envelope a publish), and a raw subscriber counting what the broker
 * carried. Every message arrives, in order, one outcome each; to a new receiver they go in one
 * batch, the first included; what publish held for the end of the tick goes first, and a call
 * waiting for MQTT's window is not overtaken by the next; a broker
 * that goes away while the call waits for MQTT's window fails exactly the messages not handed
 * over; through delivery, a broker killed mid-stream loses nothing and runs nothing twice.
 */
import { decode, encode } from '@msgpack/msgpack'
import mqtt from 'mqtt'
import { connect } from 'nats'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { parseConfig } from '../../src/config'
import { isOutpostError } from '../../src/errors'
import type { Inbound, Outbound, Transport, TransportOptions, TransportPlugin } from '../../src/transport'
import { isBatch } from '../../transports/broker-batch'
import { envelopesOf } from '../../transports/broker-payload'
import { TRANSPORTS } from '../../transports/index'
import { fleet, mark } from '../fixtures/broker-fleet'
import { Mosquitto, NatsServer, type Broker } from '../fixtures/brokers'
import { sleep, until } from '../fixtures/inprocess'
import oldMqtt from '../fixtures/v1/mqtt'
import oldNats from '../fixtures/v1/nats'

type Kind = 'mqtt' | 'nats'

const out = (i: number, to = 'b', size = 200): Outbound => ({ id: `p${i}`, to, method: 'x', event: false, bytes: encode({ i, pad: 'x'.repeat(size) }) })
const numbers = (got: Inbound[]): number[] => got.map((m) => (decode(m.bytes) as { i: number }).i)

function make(kind: Kind, node: string, url: string, old = false, section: Record<string, unknown> = {}): Transport {
  const config = parseConfig(YAML.stringify({ node: { name: node }, dataDir: '/nonexistent', transport: { kind, servers: [url], [kind]: section } }), `${node}.yaml`)
  const plugin = (old ? (kind === 'mqtt' ? oldMqtt : oldNats) : TRANSPORTS.get(kind)!) as TransportPlugin
  const options: TransportOptions = { node, servers: config.transport.servers, token: null, tls: config.transport.tls, version: '0.0.0', section: (config.transport as Record<string, unknown>)[kind], log: () => {} }
  return plugin.create(options as TransportOptions<never>)
}

function collect<T>(it: AsyncIterable<T>): T[] {
  const items: T[] = []
  void (async () => { for await (const x of it) items.push(x) })()
  return items
}

/** A raw subscriber to everything published to `to`: per publish, whether a batch and how many envelopes. */
async function carried(kind: Kind, url: string, to: string): Promise<{ pubs: { batch: boolean; n: number }[]; close(): Promise<unknown> }> {
  const pubs: { batch: boolean; n: number }[] = []
  const take = (data: Uint8Array): void => { pubs.push({ batch: isBatch(data), n: envelopesOf(data).length }) }
  if (kind === 'nats') {
    const nc = await connect({ servers: url })
    nc.subscribe(`outpost.${to}.>`, { callback: (_e, m) => { const p = m.subject.split('.'); if (p[2] !== '_api' && p[2] !== '_nr') take(m.data) } })
    await nc.flush()
    return { pubs, close: () => nc.close() }
  }
  const c = mqtt.connect(url, { clientId: `counter-${process.pid}` })
  await new Promise((r) => c.once('connect', r))
  c.on('message', (_topic, payload) => take(payload))
  await c.subscribeAsync(`outpost/${to}/#`, { qos: 1 })
  return { pubs, close: () => c.endAsync() }
}

interface Pair { broker: Broker; a: Transport; b: Transport; got: Inbound[]; close(): Promise<void> }

/** A broker, sender `a` and receiver `b` (old: api version 1), connected, `a` knowing `b`'s version (or, old, having asked). */
async function pair(kind: Kind, old: boolean, section: Record<string, unknown> = {}): Promise<Pair> {
  const broker: Broker = kind === 'mqtt' ? await Mosquitto.create() : await NatsServer.create()
  await broker.start()
  const a = make(kind, 'a', broker.url, false, section)
  a.start()
  await until(() => a.connected, 10_000, 'a connected')
  const b = make(kind, 'b', broker.url, old)
  const got = collect(b.messages())
  b.start()
  await until(() => b.connected, 10_000, 'b connected')
  if (!old) await until(() => (a.peerApi?.('b') ?? 1) >= 2, 10_000, 'b\'s version known')
  else {
    // The first message asks an old node (NATS's probe, unanswered); MQTT's presence says 1.
    await a.publish(out(-1))
    await until(() => got.length === 1, 10_000, 'the first message')
    got.length = 0
  }
  return { broker, a, b, got, close: async () => { await a.close(); await b.close(); await broker.destroy() } }
}

for (const kind of ['mqtt', 'nats'] as const) {
  test(`${kind} publishAll: not connected, every message gets its not_connected`, async () => {
    const a = make(kind, 'a', kind === 'mqtt' ? 'mqtt://127.0.0.1:1' : 'nats://127.0.0.1:1')
    const r = await a.publishAll!([out(0), out(1)])
    assert.is(r?.length, 2)
    assert.ok(r!.every((e) => isOutpostError(e) && e.code === 'not_connected'))
    await a.close()
  })

  test(`${kind} publishAll to a node of api version 2+: one batch, first message included, in order, one outcome each, written once`, async () => {
    const p = await pair(kind, false)
    const seen = await carried(kind, p.broker.url, 'b')
    try {
      let written = 0
      const msgs = Array.from({ length: 10 }, (_, i) => out(i))
      const r = await p.a.publishAll!(msgs, () => written++)
      assert.is(r, undefined)
      await until(() => p.got.length === 10, 10_000, 'ten messages at b')
      assert.equal(numbers(p.got), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
      await until(() => seen.pubs.length >= 1, 5_000, 'the publish seen')
      await sleep(100)
      assert.equal(seen.pubs, [{ batch: true, n: 10 }])
      await until(() => written === 1, 5_000, 'written called')
      await sleep(50)
      assert.is(written, 1)
    } finally {
      await seen.close()
      await p.close()
    }
  })

  test(`${kind} publishAll to a node of api version 1: one envelope a publish, in order`, async () => {
    const p = await pair(kind, true)
    const seen = await carried(kind, p.broker.url, 'b')
    try {
      const r = await p.a.publishAll!(Array.from({ length: 6 }, (_, i) => out(i)))
      assert.is(r, undefined)
      await until(() => p.got.length === 6, 10_000, 'six messages at b')
      assert.equal(numbers(p.got), [0, 1, 2, 3, 4, 5])
      await until(() => seen.pubs.length >= 6, 5_000, 'the publishes seen')
      assert.ok(seen.pubs.every((s) => !s.batch && s.n === 1), JSON.stringify(seen.pubs))
    } finally {
      await seen.close()
      await p.close()
    }
  })

  test(`${kind} publishAll: what publish held for the end of the tick goes first (order per receiver)`, async () => {
    const p = await pair(kind, false)
    try {
      // The first goes at once, the second waits for the end of the tick; publishAll must not overtake it.
      const one = p.a.publish(out(0))
      const two = p.a.publish(out(1))
      const all = p.a.publishAll!([out(2), out(3)])
      await Promise.all([one, two, all])
      await until(() => p.got.length === 4, 10_000, 'four messages at b')
      assert.equal(numbers(p.got), [0, 1, 2, 3])
    } finally {
      await p.close()
    }
  })
}

test('mqtt publishAll: a call waiting for the window is not overtaken by the next one (order per receiver)', async () => {
  // Window 2, one envelope a publish (an old receiver): the first call waits for PUBACKs while the second comes.
  const p = await pair('mqtt', true, { window: 2 })
  try {
    const first = p.a.publishAll!([0, 1, 2, 3, 4].map((i) => out(i)))
    const second = p.a.publishAll!([5, 6, 7].map((i) => out(i)))
    assert.equal(await Promise.all([first, second]), [undefined, undefined])
    await until(() => p.got.length === 8, 10_000, 'eight messages at b')
    assert.equal(numbers(p.got), [0, 1, 2, 3, 4, 5, 6, 7])
  } finally {
    await p.close()
  }
})

test('mqtt publishAll: the broker gone while the call waits for the window fails exactly the messages not handed over', async () => {
  // Window 1: the first message is handed over, the call waits for its PUBACK (the broker is stopped).
  const p = await pair('mqtt', true, { window: 1 })
  try {
    p.broker.child!.kill('SIGSTOP')
    const call = p.a.publishAll!(Array.from({ length: 5 }, (_, i) => out(i)))
    await sleep(300)
    await p.broker.stop('SIGKILL')
    const r = await call
    assert.ok(r !== undefined)
    assert.is(r![0], undefined, 'the first was handed over')
    assert.ok(r!.slice(1).every((e) => isOutpostError(e) && e.code === 'not_connected'), String(r))
    // Back again: what failed goes again and arrives.
    await p.broker.start()
    await until(() => p.a.connected && p.b.connected, 15_000, 'both back')
    const again = await p.a.publishAll!([1, 2, 3, 4].map((i) => out(i)))
    assert.is(again, undefined)
    await until(() => [1, 2, 3, 4].every((i) => numbers(p.got).includes(i)), 10_000, 'the four at b')
    assert.equal(numbers(p.got).filter((i) => i > 0), [1, 2, 3, 4])
  } finally {
    p.broker.child?.kill('SIGCONT')
    await p.close()
  }
})

for (const kind of ['mqtt', 'nats'] as const) {
  test(`${kind} - through delivery's publishAll, the broker killed mid-stream and started again: nothing lost, nothing run twice`, async () => {
    const f = await fleet(kind)
    try {
      const central = await f.start('central')
      await f.start('shipnew')
      await mark(central, 'shipnew', 1)
      await until(() => (central.transport.peerApi?.('shipnew') ?? 1) >= 2, 5_000, 'versions known')
      // What delivery handed over together, and what of it the transport did not take.
      const t = central.transport
      const publishAll = t.publishAll?.bind(t)
      assert.ok(publishAll !== undefined, 'the transport has publishAll')
      let calls = 0
      let refused = 0
      t.publishAll = async (msgs, written) => {
        calls++
        const r = await publishAll!(msgs, written)
        refused += r?.filter((e) => e !== undefined).length ?? 0
        return r
      }
      const N = 400
      const done = mark(central, 'shipnew', N, 90_000)
      await until(() => f.runs.length > 20, 20_000, 'the first runs')
      await f.broker.stop('SIGKILL')
      await sleep(500)
      await f.broker.start()
      const ids = await done
      for (const id of ids) assert.is(f.runs.filter((r) => r === `shipnew:${id}`).length, 1, `${id} ran once`)
      await until(() => [...f.nodes.values()].every((n) => n.outbox.stats().count === 0), 20_000, 'every outbox empty')
      assert.ok(calls > 0, `${calls} publishAll calls (${refused} messages refused)`)
    } finally {
      await f.destroy()
    }
  })
}

test.run()
