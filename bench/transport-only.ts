/**
 * The broker transports alone, without nodes: `node --import tsx bench/transport-only.ts nats|mqtt`
 * (COMPRESS=off to compare). Transport A publishes 100k events of ~250 bytes (as delivery does,
 * 500 at a time) to transport B through a real broker, both in this process; prints the CPU
 * (user + system) this process spent per message: what the transports and their clients cost at
 * both ends, apart from the outbox, the dispatcher and the rest of a node. PUBLISH=each: by
 * `publish`, a promise a message (delivery before `publishAll`); default: by `publishAll`, 500 a
 * call, as delivery's pump hands them over now. Not part of `npm run bench`.
 */
import { Mosquitto, NatsServer } from '../test/fixtures/brokers'
import { TRANSPORTS } from '../transports/index'
import { encode } from '../src/wire/envelope'
import { ulid } from '../src/wire/ulid'
import type { Outbound, Transport, TransportOptions } from '../src/transport'

const kind = process.argv[2] === 'mqtt' ? 'mqtt' : 'nats'
const compress = process.env.COMPRESS === 'off' ? 'off' : 'auto'
const each = process.env.PUBLISH === 'each'
const N = 100_000
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

function event(i: number): Outbound {
  const env = { id: ulid(), fromNode: 'nodeA', toNode: 'nodeB', method: 'reply.file.append', directory: 'bench', fileName: 'events.log', ackTimeout: 0, createdAt: Date.now(), data: `${i} ${'x'.repeat(195)}\n` }
  return { id: env.id, to: 'nodeB', method: env.method, event: true, bytes: encode(env) }
}

async function main(): Promise<void> {
  const broker = kind === 'mqtt' ? await Mosquitto.create() : await NatsServer.create()
  await broker.start()
  const plugin = TRANSPORTS.get(kind)!
  const section = kind === 'mqtt' ? { username: null, password: null, topicPrefix: 'outpost', window: 1000 } : { user: null, pass: null, token: null, nkeySeed: null, creds: null, subjectPrefix: 'outpost' }
  const make = (node: string): Transport => plugin.create({ node, servers: [broker.url], token: null, tls: { ca: null, cert: null, key: null }, version: 'bench', log: () => {}, compress, section } as unknown as TransportOptions<never>)
  const b = make('nodeB')
  const a = make('nodeA')
  b.start()
  a.start()
  while (!a.connected || !b.connected) await sleep(20)
  let got = 0
  void (async () => { for await (const _m of b.messages()) got++ })()
  // Until A knows B's api version (presence, or NATS's probe).
  while ((a.peerApi?.('nodeB') ?? 0) < 2) { await a.publish(event(0)); await sleep(50) }
  const msgs = Array.from({ length: N }, (_, i) => event(i))
  await sleep(200)
  const base = got
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < N; i += 500) await (each ? Promise.all(msgs.slice(i, i + 500).map((m) => a.publish(m))) : a.publishAll!(msgs.slice(i, i + 500)))
  while (got < base + N) await sleep(5)
  const c = process.cpuUsage(c0)
  const ms = performance.now() - t0
  console.log(`${kind} compress=${compress} ${each ? 'publish' : 'publishAll'}: ${N} events, ${((c.user + c.system) / N).toFixed(2)} µs CPU a message (A and B transports), ${((N / ms) * 1000).toFixed(0)} msg/s`)
  await a.close()
  await b.close()
  await broker.destroy()
}

main().then(() => process.exit(0), (err: unknown) => { console.error(err); process.exit(1) })
