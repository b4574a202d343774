/**
 * The TCP transport against real hubs (SPEC §3): TLS with the CA in the node's config, an
 * untrusted server certificate, client certificates, redirects to another hub, the server
 * list tried in order, every address of a host name. (What every transport must do is in
 * test/contract.)
 * Real processes on loopback (test/fixtures/cluster.ts) with the PEM files of
 * test/fixtures/tls (test-only keys).
 */
import dns from 'node:dns/promises'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import tcp from '../../transports/tcp'
import { Cluster, Proc, editYaml, freePort, section, sendVia, status } from '../fixtures/cluster'
import { encodeFrame, FrameDecoder } from '../../src/wire/framing'

const TLS = path.join(__dirname, '..', 'fixtures', 'tls')
const pem = (name: string): string => path.join(TLS, name)

/** Point a node at these servers, with this transport.tls (nothing set when omitted). */
function setTransport(c: Cluster, name: string, servers: string[], tls?: { ca?: string; cert?: string; key?: string }): void {
  editYaml(c.node(name).config, (doc) => {
    const t = section(doc, 'transport')
    t.servers = servers
    if (tls) t.tls = { ...tls }
  })
}

/** Give the cluster's hub these hub.tls settings. */
function setHubTls(c: Cluster, tls: { cert: string; key: string; ca?: string; requireClientCert?: boolean }): void {
  editYaml(path.join(c.dir, 'hub.yaml'), (doc) => { section(doc, 'hub').tls = { ...tls } })
}

/** central → ship1 → central: node.ping gets ship1's answer. */
async function roundTrip(c: Cluster, to = 'ship1'): Promise<void> {
  const r = await sendVia(c.node('central').socket, [{ toNode: to, method: 'node.ping' }], { ms: 20_000 })
  assert.is(r.accepted.length, 1)
  assert.is(r.replies.length, 1, `one reply to node.ping, got ${JSON.stringify(r.replies)}`)
  const reply = r.replies[0]!
  assert.is(reply.fromNode, to)
  assert.is(reply.error, undefined, JSON.stringify(reply.error))
  assert.match(String(reply.data), new RegExp(`^pong ${to} `))
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Poll a node's status for ms: true if it was ever connected. */
async function everConnected(c: Cluster, name: string, ms: number): Promise<boolean> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    const s = await status(c.node(name).socket).catch(() => undefined)
    if (s?.connected) return true
    await sleep(100)
  }
  return false
}

function alive(p: Proc | undefined): boolean {
  return p !== undefined && p.child.exitCode === null && p.child.signalCode === null
}

test('tcp - a node reaches the hub over TLS with the CA in its config', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    setHubTls(c, { cert: pem('server.pem'), key: pem('server.key') })
    // One node by IP address (the certificate's IP SAN), one by name (its DNS SAN).
    setTransport(c, 'central', [`tls://127.0.0.1:${c.port}`], { ca: pem('ca.pem') })
    setTransport(c, 'ship1', [`tls://localhost:${c.port}`], { ca: pem('ca.pem') })
    const hub = await c.startHub()
    await hub.waitFor(/hub listening on [^\n]*\(TLS\)/, 5000)
    const central = await c.start('central')
    const ship1 = await c.start('ship1')
    await central.waitFor(new RegExp(`connected to tls://127\\.0\\.0\\.1:${c.port}`), 5000)
    await ship1.waitFor(new RegExp(`connected to tls://localhost:${c.port}`), 5000)
    await hub.waitFor(/ship1 connected from/)
    await roundTrip(c)
  } finally {
    await c.destroy()
  }
})

test("tcp - a node that does not trust the hub's certificate does not connect", async () => {
  const c = await Cluster.create(['ship1'])
  try {
    setHubTls(c, { cert: pem('server.pem'), key: pem('server.key') })
    setTransport(c, 'central', [`tls://127.0.0.1:${c.port}`], { ca: pem('ca.pem') })
    setTransport(c, 'ship1', [`tls://127.0.0.1:${c.port}`], { ca: pem('other-ca.pem') })
    const hub = await c.startHub()
    // The hub works for a node that trusts it…
    await c.start('central')
    // …but not for one whose CA did not sign its certificate.
    const ship1 = await c.start('ship1', false)
    assert.not.ok(await everConnected(c, 'ship1', 3000), 'ship1 must not connect to a hub it does not trust')
    // The node says which server and why.
    await ship1.waitFor(new RegExp(`tls://127\\.0\\.0\\.1:${c.port}[^\\n]*certificate`, 'i'), 5000)
    assert.not.match(ship1.output, /connected to tls:/)
    assert.not.match(hub.output, /ship1 connected from/)
    assert.ok(alive(ship1), 'the node keeps running (and retrying)')
  } finally {
    await c.destroy()
  }
})

test('tcp - a hub that requires client certificates refuses a node without one and accepts one with one', async () => {
  const c = await Cluster.create(['ship1', 'ship2'])
  try {
    setHubTls(c, { cert: pem('server.pem'), key: pem('server.key'), ca: pem('ca.pem'), requireClientCert: true })
    const withCert = { ca: pem('ca.pem'), cert: pem('client.pem'), key: pem('client.key') }
    setTransport(c, 'central', [`tls://127.0.0.1:${c.port}`], withCert)
    setTransport(c, 'ship1', [`tls://127.0.0.1:${c.port}`], withCert)
    setTransport(c, 'ship2', [`tls://127.0.0.1:${c.port}`], { ca: pem('ca.pem') })
    const hub = await c.startHub()
    await c.start('central')
    await c.start('ship1')
    await hub.waitFor(/ship1 connected from/)
    await roundTrip(c)

    const ship2 = await c.start('ship2', false)
    assert.not.ok(await everConnected(c, 'ship2', 3000), 'ship2 has no client certificate: the hub must refuse it')
    await ship2.waitFor(new RegExp(`tls://127\\.0\\.0\\.1:${c.port}[^\\n]*certificate`, 'i'), 5000)
    assert.not.match(ship2.output, /connected to tls:/)
    assert.not.match(hub.output, /ship2 connected from/)
    assert.ok(alive(ship2))
    assert.ok(alive(hub))
    // The refusal touched nobody else.
    await roundTrip(c)
  } finally {
    await c.destroy()
  }
})

test('tcp - a redirect rule sends a node to another hub', async () => {
  // The cluster's own hub is hub2 (central connects there); hub1 only redirects ship1.
  const c = await Cluster.create(['ship1'])
  let hub1: Proc | undefined
  try {
    const hub2Port = c.port
    const hub1Port = await freePort()
    const hub2Config = YAML.parse(fs.readFileSync(path.join(c.dir, 'hub.yaml'), 'utf8')) as { hub: { tokens: Record<string, string> } }
    const hub1Config = path.join(c.dir, 'hub1.yaml')
    fs.writeFileSync(hub1Config, YAML.stringify({
      dataDir: path.join(c.dir, 'hub1'),
      hub: {
        listen: `127.0.0.1:${hub1Port}`,
        tokens: hub2Config.hub.tokens,
        redirect: [{ nodes: ['ship1'], servers: [`tcp://127.0.0.1:${hub2Port}`] }],
      },
      log: { level: 'debug' },
    }))
    setTransport(c, 'ship1', [`tcp://127.0.0.1:${hub1Port}`])

    const hub2 = await c.startHub()
    hub1 = new Proc(['hub', '--config', hub1Config])
    await hub1.waitFor(/hub listening on/)
    await c.start('central')
    await hub2.waitFor(/central connected from/)
    const ship1 = await c.start('ship1')
    await hub1.waitFor(new RegExp(`redirecting ship1 to tcp://127\\.0\\.0\\.1:${hub2Port}`), 5000)
    await hub2.waitFor(/ship1 connected from/)
    assert.not.match(hub1.output, /ship1 connected from/)
    await ship1.waitFor(new RegExp(`connected to tcp://127\\.0\\.0\\.1:${hub2Port}`), 5000)
    await roundTrip(c)
  } finally {
    await hub1?.stop('SIGKILL')
    await c.destroy()
  }
})

/**
 * A stand-in hub on `port`: welcomes every hello (kept in `hellos`, node names in order), then,
 * 300 ms later, redirects that connection to `target(n)` for the n-th hello, if it names one.
 */
async function redirectingHub(port: number, target: (n: number) => string | undefined): Promise<{ hellos: string[]; close(): Promise<void> }> {
  const hellos: string[] = []
  const fake = net.createServer((sock) => {
    const dec = new FrameDecoder()
    sock.on('error', () => {})
    sock.on('data', (d: Buffer) => {
      for (const f of dec.push(d)) {
        if (f.t !== 'hello') continue
        hellos.push(f.node)
        sock.write(encodeFrame({ t: 'welcome', hub: 'fake', apiVersion: 1 }))
        const to = target(hellos.length)
        if (to !== undefined) setTimeout(() => sock.write(encodeFrame({ t: 'redirect', servers: [to] })), 300)
      }
    })
  })
  await new Promise<void>((resolve) => fake.listen(port, '127.0.0.1', resolve))
  return { hellos, close: () => new Promise<void>((resolve) => fake.close(() => resolve())) }
}

test('tcp - a redirect after the welcome moves a connected node to the hub it names', async () => {
  // A stand-in hub welcomes ship1, then redirects it to the cluster's real hub (it was ignored once welcomed).
  const c = await Cluster.create(['ship1'])
  const fakePort = await freePort()
  const { hellos, close } = await redirectingHub(fakePort, () => `tcp://127.0.0.1:${c.port}`)
  try {
    setTransport(c, 'ship1', [`tcp://127.0.0.1:${fakePort}`])
    const hub = await c.startHub()
    await c.start('central')
    const ship1 = await c.start('ship1', false)
    await ship1.waitFor(new RegExp(`connected to tcp://127\\.0\\.0\\.1:${fakePort}`), 5000)
    await ship1.waitFor(new RegExp(`redirects to tcp://127\\.0\\.0\\.1:${c.port}`), 5000)
    await hub.waitFor(/ship1 connected from/, 5000)
    assert.equal(hellos, ['ship1'])
    await roundTrip(c)
  } finally {
    await close()
    await c.destroy()
  }
})

test('tcp - a node redirected to a hub it cannot reach goes back to its configured servers', async () => {
  // Its only configured server welcomes it, then redirects it to a port nobody listens on; once back, it is welcomed and kept.
  const c = await Cluster.create(['ship1'])
  const fakePort = await freePort()
  const dead = await freePort()
  const { hellos, close } = await redirectingHub(fakePort, (n) => (n === 1 ? `tcp://127.0.0.1:${dead}` : undefined))
  try {
    setTransport(c, 'ship1', [`tcp://127.0.0.1:${fakePort}`])
    const ship1 = await c.start('ship1', false)
    await ship1.waitFor(new RegExp(`redirects to tcp://127\\.0\\.0\\.1:${dead}`), 5000)
    for (const end = Date.now() + 20_000; hellos.length < 2; await new Promise((r) => setTimeout(r, 50))) assert.ok(Date.now() < end, `ship1 never came back to its configured hub:\n${ship1.output.slice(-2000)}`)
    assert.equal(hellos, ['ship1', 'ship1'])
  } finally {
    await close()
    await c.destroy()
  }
})

test('tcp - a hub reached over TLS cannot redirect a node to plain tcp://: its token never goes out in clear', async () => {
  const c = await Cluster.create(['ship1'])
  const plainPort = await freePort()
  const hellos: string[] = []
  const plain = net.createServer((sock) => {
    const dec = new FrameDecoder()
    sock.on('error', () => {})
    sock.on('data', (d: Buffer) => { for (const f of dec.push(d)) if (f.t === 'hello') hellos.push(`${f.node} ${f.token}`) })
  })
  await new Promise<void>((resolve) => plain.listen(plainPort, '127.0.0.1', resolve))
  try {
    setHubTls(c, { cert: pem('server.pem'), key: pem('server.key') })
    editYaml(path.join(c.dir, 'hub.yaml'), (doc) => { section(doc, 'hub').redirect = [{ nodes: ['ship1'], servers: [`tcp://127.0.0.1:${plainPort}`] }] })
    setTransport(c, 'ship1', [`tls://127.0.0.1:${c.port}`], { ca: pem('ca.pem') })
    const hub = await c.startHub()
    const ship1 = await c.start('ship1', false)
    await hub.waitFor(/redirecting ship1 to tcp:/, 5000)
    await ship1.waitFor(/unusable redirect \(tcp:\/\/127\.0\.0\.1:\d+; a hub reached over TLS may redirect only to tls:\/\/\); ignored/, 5000)
    // Redirected again at each reconnection, and each time ignored.
    await hub.waitFor(/redirecting ship1 to tcp:[^\n]*\n[^]*redirecting ship1 to tcp:/, 10_000)
    assert.equal(hellos, [], 'a hello (with its token) reached the plain server')
  } finally {
    await new Promise<void>((resolve) => plain.close(() => resolve()))
    await c.destroy()
  }
})

test('tcp - the servers are tried in order: a dead first server is skipped', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    const dead = await freePort()
    for (const name of ['central', 'ship1']) setTransport(c, name, [`tcp://127.0.0.1:${dead}`, `tcp://127.0.0.1:${c.port}`])
    const hub = await c.startHub()
    await c.start('central')
    const ship1 = await c.start('ship1')
    await ship1.waitFor(new RegExp(`connected to tcp://127\\.0\\.0\\.1:${c.port}`), 5000)
    assert.not.match(ship1.output, new RegExp(`connected to tcp://127\\.0\\.0\\.1:${dead}`))
    await hub.waitFor(/ship1 connected from/)
    await roundTrip(c)
  } finally {
    await c.destroy()
  }
})

test('tcp - a host name is tried at every address it resolves to', async () => {
  // localhost may resolve to ::1 first, where nothing listens: the node must go on to 127.0.0.1.
  const c = await Cluster.create(['ship1'])
  try {
    for (const name of ['central', 'ship1']) setTransport(c, name, [`tcp://localhost:${c.port}`])
    const hub = await c.startHub()
    await c.start('central')
    const ship1 = await c.start('ship1')
    await ship1.waitFor(new RegExp(`connected to tcp://localhost:${c.port} \\(127\\.0\\.0\\.1\\)`), 5000)
    await hub.waitFor(/ship1 connected from/)
    await roundTrip(c)
  } finally {
    await c.destroy()
  }
})

test('tcp - a host name is tried at every address it resolves to, in order (name resolving to ::1 then 127.0.0.1)', async () => {
  // This host's localhost may resolve to 127.0.0.1 alone: make a name resolve to a dead
  // address first, in this process, and run the transport here against a real hub.
  const c = await Cluster.create(['ship1'])
  const name = 'outpost-two-addresses.test'
  const realLookup = dns.lookup
  const fakeLookup = async (host: string, opts?: unknown): Promise<unknown> => {
    if (host === name) return [{ address: '::1', family: 6 }, { address: '127.0.0.1', family: 4 }]
    return (realLookup as (h: string, o?: unknown) => Promise<unknown>)(host, opts)
  }
  dns.lookup = fakeLookup as typeof dns.lookup
  const lines: string[] = []
  const transport = tcp.create({
    node: 'ship1', servers: [`tcp://${name}:${c.port}`], token: c.node('ship1').token,
    tls: { ca: null, cert: null, key: null }, version: '0.0.0', section: {},
    log: (level, message) => { lines.push(`${level} ${message}`) },
  })
  try {
    const hub = await c.startHub()
    transport.start()
    const until = Date.now() + 15_000
    while (!transport.connected && Date.now() < until) await sleep(50)
    const log = lines.join('\n')
    assert.ok(transport.connected, `the transport connects through the second address:\n${log}`)
    const tried = lines.findIndex((l) => l.includes(`(::1)`))
    const connected = lines.findIndex((l) => l.includes(`connected to tcp://${name}:${c.port} (127.0.0.1)`))
    assert.ok(tried >= 0, `::1 was tried:\n${log}`)
    assert.ok(connected > tried, `::1 was tried before 127.0.0.1:\n${log}`)
    await hub.waitFor(/ship1 connected from 127\.0\.0\.1/, 5000)
  } finally {
    dns.lookup = realLookup
    await transport.close()
    await c.destroy()
  }
})

test.run()
