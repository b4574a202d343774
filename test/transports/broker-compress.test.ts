/**
 * Compressed batched payloads on the brokers (api version 4, transport.compress auto), with a
 * real mosquitto and a real nats-server: nodes in this process (central, a new ship, a ship with
 * compress off, an old ship running api version 1's transport) and a raw subscriber on the broker
 * that sees every payload as it crossed. Compressed payloads go only between nodes that
 * announced version 4, arrive intact and once; a decompression bomb is refused
 * (compressed_too_large) and only that payload is lost to the receiver.
 */
import zlib from 'node:zlib'
import mqtt from 'mqtt'
import { connect } from 'nats'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { fleet, mark, observe, type Seen } from '../fixtures/broker-fleet'
import { until } from '../fixtures/inprocess'

/** Text that deflate shrinks about threefold, different for each i. */
function text(i: number, n = 400): string {
  const words = 'alpha beta gamma delta sensor reading ok warn temp volt 12 34 56 78 90 node'.split(' ')
  let x = i + 1
  let s = `${i}:`
  while (s.length < n) {
    x = (x * 1103515245 + 12345) % 2147483648
    s += `${words[(x >>> 16) % words.length]!} `
  }
  return s.slice(0, n)
}

const commands = (seen: Seen[], to: string): Seen[] => seen.filter((s) => s.to === to && s.envs.some((e) => e.method === 'test.mark'))

for (const kind of ['mqtt', 'nats'] as const) {
  test(`${kind} - batches go compressed between nodes of api version 4, and arrive intact, once; never to an old node or from or to one with compress off`, async () => {
    const f = await fleet(kind)
    const obs = await observe(kind, f.broker.url)
    try {
      await f.start('shipold', true)
      const central = await f.start('central')
      const shipnew = await f.start('shipnew')
      await f.start('shipoff', false, { compress: 'off' })
      for (const to of ['shipnew', 'shipold', 'shipoff']) await mark(central, to, 1)
      await until(() => central.transport.peerApi?.('shipnew') === 4 && shipnew.transport.peerApi?.('central') === 4 && central.transport.peerApi?.('shipoff') === 3, 5_000, 'versions known')
      const from = obs.seen.length
      const N = 60
      const [toNew, toOld, toOff] = await Promise.all([mark(central, 'shipnew', N, 30_000, text), mark(central, 'shipold', N, 30_000, text), mark(central, 'shipoff', N, 30_000, text)])
      // Once each, on the right node, with the data it was sent.
      for (const [node, ids] of [['shipnew', toNew], ['shipold', toOld], ['shipoff', toOff]] as const) {
        ids.forEach((id, i) => {
          assert.is(f.runs.filter((r) => r === `${node}:${id}`).length, 1, `${id} ran once on ${node}`)
          assert.is(f.data.get(id), text(i), `${id} arrived intact`)
        })
      }
      await until(() => [...f.nodes.values()].every((n) => n.outbox.stats().count === 0), 10_000, 'every outbox empty')
      const seen = obs.seen.slice(from)
      // To the new ship: compressed batches on the broker, carrying every command.
      const toNewPubs = commands(seen, 'shipnew')
      const packed = toNewPubs.filter((s) => s.compressed && s.batch && s.envs.length > 1)
      assert.ok(packed.length > 0, `${toNewPubs.length} publishes to shipnew, none a compressed batch`)
      const carried = new Set(toNewPubs.flatMap((s) => s.envs.map((e) => e.id)))
      assert.ok(toNew.every((id) => carried.has(id)))
      // Its ACKs of many ids back to central: compressed too.
      assert.ok(seen.some((s) => s.to === 'central' && s.compressed && s.envs.some((e) => e.fromNode === 'shipnew' && (e.ids?.length ?? 0) > 1)), 'shipnew ACKs of many ids compressed')
      // The old ship and the ship with compress off get nothing compressed (the latter still gets batches);
      // what the ship with compress off sends (its ACKs of many ids, well past 1 KiB) is never compressed.
      assert.ok(seen.filter((s) => s.to === 'shipold').every((s) => !s.compressed && !s.batch))
      assert.ok(seen.filter((s) => s.to === 'shipoff').every((s) => !s.compressed))
      assert.ok(commands(seen, 'shipoff').some((s) => s.batch))
      const offAcks = seen.filter((s) => s.envs.some((e) => e.fromNode === 'shipoff'))
      assert.ok(offAcks.some((s) => s.envs.some((e) => (e.ids?.length ?? 0) > 40)) && offAcks.every((s) => !s.compressed))
      assert.equal(f.warnings.get('shipold') ?? [], [])
    } finally {
      await obs.close()
      await f.destroy()
    }
  })

  test(`${kind} - a decompression bomb is refused (compressed_too_large): that payload alone, what follows arrives`, async () => {
    const f = await fleet(kind)
    try {
      const central = await f.start('central')
      await f.start('shipnew')
      await mark(central, 'shipnew', 1)
      // 16 MiB of zeros deflate to ~16 KiB: [2, deflated] as a compressed payload says.
      const z = zlib.deflateRawSync(Buffer.alloc(16 * 1024 * 1024), { level: 9 })
      const bomb = Buffer.concat([Buffer.from([0x92, 0x02, 0xc5, z.length >> 8, z.length & 0xff]), z])
      if (kind === 'nats') {
        const nc = await connect({ servers: f.broker.url })
        nc.publish('outpost.shipnew._batch.CommandACK', bomb)
        await nc.flush()
        await nc.close()
      } else {
        const c = mqtt.connect(f.broker.url, { clientId: `bomber-${process.pid}` })
        await new Promise((r) => c.once('connect', r))
        await c.publishAsync('outpost/shipnew/_batch/CommandACK', bomb, { qos: 1 })
        await c.endAsync()
      }
      await until(() => (f.warnings.get('shipnew') ?? []).some((l) => l.includes('compressed_too_large')), 10_000, 'the bomb refused')
      const ids = await mark(central, 'shipnew', 30, 30_000, text)
      ids.forEach((id, i) => assert.is(f.data.get(id), text(i)))
      assert.is((f.warnings.get('shipnew') ?? []).length, 1, (f.warnings.get('shipnew') ?? []).join('\n'))
    } finally {
      await f.destroy()
    }
  })
}

test.run()
