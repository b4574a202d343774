/**
 * The transport contract, in this process, for every transport in transports/index.ts: two
 * transports made from the plugin as the node makes them (options from a parsed config), on the
 * real thing each needs (the outpost hub, mosquitto, nats-server; a bus for memory).
 * A transport added to the registry is tested here without another line.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { parseConfig } from '../../src/config'
import { isOutpostError } from '../../src/errors'
import { Hub, hashToken } from '../../src/hub'
import type { Inbound, Transport, TransportEvent, TransportOptions } from '../../src/transport'
import { TRANSPORT_LIST } from '../../transports/index'
import { Mosquitto, NatsServer, type Broker } from '../fixtures/brokers'
import { freePort } from '../fixtures/ports'

const TOKENS: Record<string, string> = { a: 'token-of-a', b: 'token-of-b' }

/** What a transport kind needs running, and the transport section of each node's config. */
async function serve(kind: string): Promise<{ transport: (node: string) => Record<string, unknown>; stop(): Promise<void> }> {
  switch (kind) {
    case 'tcp': {
      const port = await freePort()
      const hub = await Hub.start({ listen: `127.0.0.1:${port}`, tokens: { a: hashToken(TOKENS.a!), b: hashToken(TOKENS.b!) }, log: () => {} })
      return { transport: (node) => ({ kind, servers: [`tcp://127.0.0.1:${port}`], token: TOKENS[node] }), stop: () => hub.close() }
    }
    case 'mqtt': {
      const broker: Broker = await (await Mosquitto.create({ users: TOKENS })).start()
      return { transport: (node) => ({ kind, servers: [broker.url], mqtt: { username: node, password: TOKENS[node] } }), stop: () => broker.destroy() }
    }
    case 'nats': {
      const broker: Broker = await (await NatsServer.create()).start()
      return { transport: () => ({ kind, servers: [broker.url] }), stop: () => broker.destroy() }
    }
    case 'memory': {
      const bus = `contract-${Math.random().toString(36).slice(2)}`
      return { transport: () => ({ kind, servers: [`memory://${bus}`] }), stop: async () => {} }
    }
    default:
      throw new Error(`no server set-up for transport ${kind}: add one here`)
  }
}

/** A transport of `kind` for `node`, with the options the node runtime would give it. */
function make(kind: string, node: string, section: Record<string, unknown>): Transport {
  const plugin = TRANSPORT_LIST.find((p) => p.kind === kind)!
  const config = parseConfig(YAML.stringify({ node: { name: node }, dataDir: '/nonexistent', transport: section }), `${node}.yaml`)
  const options: TransportOptions = {
    node, servers: config.transport.servers, token: config.transport.token, tls: config.transport.tls, version: '0.0.0',
    section: (config.transport as Record<string, unknown>)[kind], log: () => {},
  }
  return plugin.create(options as TransportOptions<never>)
}

/** Collects what an async iterable yields, until it ends. */
function collect<T>(it: AsyncIterable<T>): { items: T[]; ended: Promise<void> } {
  const items: T[] = []
  const ended = (async () => { for await (const x of it) items.push(x) })()
  return { items, ended }
}

async function until(fn: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

for (const { kind } of TRANSPORT_LIST) {
  test(`${kind} - publish before connecting is refused with not_connected; start twice and close twice are harmless; the queues end at close`, async () => {
    const server = await serve(kind)
    const a = make(kind, 'a', server.transport('a'))
    try {
      const err = await a.publish({ id: 'x', to: 'b', method: 'node.ping', event: false, bytes: new Uint8Array([1]) }).then(() => undefined, (e: unknown) => e)
      assert.ok(isOutpostError(err) && err.code === 'not_connected', String(err))
      const events = collect<TransportEvent>(a.events())
      const messages = collect<Inbound>(a.messages())
      a.start()
      a.start()
      await until(() => a.connected, 10_000, `${kind} to connect`)
      assert.is(events.items.filter((e) => e.type === 'connected').length, 1)
      await Promise.all([a.close(), a.close()])
      await a.close()
      assert.is(a.connected, false)
      await Promise.race([Promise.all([events.ended, messages.ended]), new Promise((_, reject) => setTimeout(() => reject(new Error('queues did not end')), 5000))])
    } finally {
      await a.close()
      await server.stop()
    }
  })

  test(`${kind} - 200 messages from a to b arrive whole and in order, a 100 KiB one among them`, async () => {
    const server = await serve(kind)
    const a = make(kind, 'a', server.transport('a'))
    const b = make(kind, 'b', server.transport('b'))
    try {
      const got = collect<Inbound>(b.messages())
      a.start()
      b.start()
      await until(() => a.connected && b.connected, 10_000, `${kind} to connect`)
      // Brokers need a moment for b's subscription to be in place everywhere.
      await new Promise((r) => setTimeout(r, 200))
      const sent: Uint8Array[] = []
      for (let i = 0; i < 200; i++) {
        const size = i === 100 ? 100 * 1024 : 50 + i
        // The first byte of a MessagePack map, as every envelope starts (broker transports tell parts by it).
        const bytes = new Uint8Array(size).map((_, j) => (j === 0 ? 0x81 : (i + j) & 0xff))
        sent.push(bytes)
        await a.publish({ id: `m${String(i).padStart(3, '0')}`, to: 'b', method: 'cli.run', event: false, bytes })
      }
      await until(() => got.items.length >= 200, 20_000, '200 messages at b')
      for (const [i, m] of got.items.entries()) {
        assert.equal(Buffer.from(m.bytes), Buffer.from(sent[i]!), `message ${i}`)
        // Where the transport vouches for the sender, it is a.
        if (m.from !== undefined) assert.is(m.from, 'a')
      }
    } finally {
      await a.close()
      await b.close()
      await server.stop()
    }
  })
}

test.run()
