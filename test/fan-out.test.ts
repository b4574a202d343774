/**
 * Which receivers a request may name (src/submit.ts checkReceivers), with real processes: at
 * most delivery.maxFanOut nodes, and on central only nodes its list has heard of unless
 * allowUnknown / --allow-unknown. A refused request leaves nothing behind: no outbox entry, no
 * reply directory.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { hashToken } from '../src/hub'
import { BIN, Cluster, freePort, Proc, sendVia, status, tmpDir } from './fixtures/cluster'
import { configure } from './fixtures/configure'
import { eventually } from './helpers'

function cli(args: string[]): Promise<{ status: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => { out += d })
    child.stderr.on('data', (d: Buffer) => { err += d })
    child.on('close', (code) => resolve({ status: code, out, err }))
  })
}

/** One request line on a node's socket (or raw text, written then closed): every answer line. */
function ask(socket: string, request: unknown, raw = false): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socket)
    const lines: Record<string, unknown>[] = []
    let buf = ''
    sock.setEncoding('utf8')
    sock.on('connect', () => { if (raw) sock.end(String(request)); else sock.write(JSON.stringify(request) + '\n') })
    sock.on('data', (d: string) => {
      buf += d
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const obj = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>
        buf = buf.slice(nl + 1)
        lines.push(obj)
        if (obj.error !== undefined || obj.accepted !== undefined || obj.nodes !== undefined) { sock.destroy(); resolve(lines) }
      }
    })
    sock.on('close', () => resolve(lines))
    sock.on('error', reject)
  })
}

/** The reply directories under a node's data directory (one per node replies came from). */
function replyDirs(dataDir: string): string[] {
  try { return fs.readdirSync(path.join(dataDir, 'replies')) } catch { return [] }
}

/** Wait until central's list has heard of `name`. */
async function heardOf(socket: string, name: string): Promise<void> {
  let nodes: { name: string }[] = []
  for (let i = 0; i < 200 && !nodes.some((n) => n.name === name); i++) {
    nodes = ((await ask(socket, { op: 'nodes' }))[0]?.nodes ?? []) as { name: string }[]
    if (!nodes.some((n) => n.name === name)) await new Promise((r) => setTimeout(r, 50))
  }
  assert.ok(nodes.some((n) => n.name === name), `central never heard of ${name}: ${JSON.stringify(nodes)}`)
}

let c: Cluster

test.before(async () => {
  c = await Cluster.create(['ship1', 'ship2'], { hello: { interval: 3600 } })
  // ship1 takes at most 3 receivers a request; central keeps the default.
  configure(c, 'ship1', { delivery: { maxFanOut: 3 } })
  await c.startHub()
  await c.start('central')
  await c.start('ship1')
  await heardOf(c.node('central').socket, 'ship1')
})

test.after(async () => {
  await c.destroy()
})

test('fan-out - delivery.maxFanOut + 1 receivers are refused with fan_out_too_large (exit 2) before anything is stored', async () => {
  const central = c.node('central')
  const before = (await status(central.socket)).outbox.count
  const dirsBefore = replyDirs(central.dataDir)
  const names = Array.from({ length: 10_001 }, (_, i) => `made-up-${i}`)
  const file = path.join(c.dir, 'wide.json')
  fs.writeFileSync(file, JSON.stringify([{ toNodes: names, method: 'node.ping', ttl: 1 }]))
  // Even with unknown names allowed, the bound holds.
  const r = await cli(['send', '--config', central.config, '--allow-unknown', '--file', file])
  assert.is(r.status, 2, r.out + r.err)
  assert.match(r.err, /\[fan_out_too_large\]/)
  assert.match(r.err, /addresses 10001 nodes/)
  assert.match(r.err, /delivery\.maxFanOut allows at most 10000/)
  // The same through the socket API.
  const [answer] = await ask(central.socket, { op: 'send', messages: [{ toNodes: names, method: 'node.ping' }], allowUnknown: true, wait: false })
  assert.is((answer?.error as { code?: string } | undefined)?.code, 'fan_out_too_large', JSON.stringify(answer))
  assert.is((await status(central.socket)).outbox.count, before, 'nothing was enqueued')
  assert.equal(replyDirs(central.dataDir), dirsBefore, 'no reply directory was made')
})

test('fan-out - the bound counts each receiver once, over every message of a request (ship1: delivery.maxFanOut 3)', async () => {
  const ship1 = c.node('ship1')
  const before = (await status(ship1.socket)).outbox.count
  const refused = await sendVia(ship1.socket, [{ toNodes: ['central', 'ship1'], method: 'node.ping' }, { toNodes: ['ship8', 'ship9', 'central'], method: 'node.ping', ttl: 1 }], { wait: false })
    .then(() => 'accepted', (err: Error) => err.message)
  assert.match(refused, /fan_out_too_large/)
  assert.match(refused, /addresses 4 nodes; delivery\.maxFanOut allows at most 3/)
  assert.is((await status(ship1.socket)).outbox.count, before, 'nothing was enqueued')
  assert.not.ok(replyDirs(ship1.dataDir).includes('ship8'), 'no reply directory for the refused receiver')
  // Four messages to three nodes: within the bound (ship1 is not central: names are not checked there).
  const ok = await sendVia(ship1.socket, [
    { toNodes: ['central', 'ship1'], method: 'node.ping' }, { toNode: 'central', method: 'node.ping' }, { toNodes: ['ship9', 'central'], method: 'node.ping', ttl: 1 },
  ], { wait: false })
  assert.is(ok.accepted.length, 5)
})

test('fan-out - central refuses names it never heard of (node_unknown, exit 2, a few named and the rest counted); --allow-unknown sends them', async () => {
  const central = c.node('central')
  const to = ['ship1', ...Array.from({ length: 7 }, (_, i) => `nobody-${i}`)].flatMap((n) => ['--to', n])
  const r = await cli(['send', '--config', central.config, ...to, '--ttl', '1', 'node.ping'])
  assert.is(r.status, 2, r.out + r.err)
  assert.match(r.err, /\[node_unknown\]/)
  assert.match(r.err, /7 of the 8 receivers are not nodes central has heard of \(nobody-0, nobody-1, nobody-2, nobody-3, nobody-4 and 2 more\)/)
  assert.match(r.err, /--allow-unknown/)
  assert.not.match(r.err, /^accepted /m)
  const one = await cli(['send', '--config', central.config, '--no-wait', '--to', 'nobody-0', 'node.ping'])
  assert.is(one.status, 2, one.out + one.err)
  assert.match(one.err, /nobody-0 is not a node central has heard of/)
  // A steward array written to the socket is checked the same way.
  const [steward] = await ask(central.socket, JSON.stringify([{ toNode: 'nobody-0', method: 'REQHello' }]), true)
  assert.is((steward?.error as { code?: string } | undefined)?.code, 'node_unknown', JSON.stringify(steward))
  const waiting = (await status(central.socket) as unknown as { outbox: { destinations: { node: string }[] } }).outbox.destinations
  assert.not.ok(waiting.some((d) => d.node.startsWith('nobody-')), `nothing was enqueued: ${JSON.stringify(waiting)}`)
  assert.not.ok(replyDirs(central.dataDir).some((d) => d.startsWith('nobody-')), 'no reply directory for a refused name')

  const sent = await cli(['send', '--config', central.config, '--allow-unknown', '--no-wait', '--ttl', '1', '--to', 'nobody-0', 'node.ping'])
  assert.is(sent.status, 0, sent.out + sent.err)
  assert.match(sent.out, /^[0-9A-Z]{26} nobody-0$/m)
  const [api] = await ask(central.socket, { op: 'send', messages: [{ toNode: 'nobody-1', method: 'node.ping', ttl: 1 }], allowUnknown: true, wait: false })
  assert.equal((api?.accepted as { toNode: string }[] | undefined)?.map((a) => a.toNode), ['nobody-1'], JSON.stringify(api))
  const [bad] = await ask(central.socket, { op: 'send', messages: [{ toNode: 'nobody-1', method: 'node.ping' }], allowUnknown: 'yes' })
  assert.is((bad?.error as { code?: string } | undefined)?.code, 'api_bad_request', JSON.stringify(bad))
})

test('fan-out - central takes itself and the nodes it has heard of; a node becomes known when the hub says it connected, before any heartbeat', async () => {
  const central = c.node('central')
  const known = await sendVia(central.socket, [{ toNodes: ['ship1', 'central'], method: 'node.ping' }])
  assert.equal(known.replies.map((r) => r.fromNode).sort(), ['central', 'ship1'])
  // ship2 has not connected yet: unknown (its heartbeat is an hour away; only the hub's presence can tell).
  const early = await sendVia(central.socket, [{ toNode: 'ship2', method: 'node.ping' }], { wait: false }).then(() => 'accepted', (err: Error) => err.message)
  assert.match(early, /node_unknown/)
  await c.start('ship2')
  await heardOf(central.socket, 'ship2')
  const late = await sendVia(central.socket, [{ toNode: 'ship2', method: 'node.ping' }])
  assert.match(String(late.replies[0]?.data), /^pong ship2/)
})

test('fan-out - a central that starts with no list refuses unknown names saying the list is not known yet; a list saved before counts at start', async () => {
  const d = await Cluster.create(['ship1'])
  try {
    const central = d.node('central')
    // No hub: central is not connected and has heard of nobody.
    await d.start('central', false)
    const r = await cli(['send', '--config', central.config, '--no-wait', '--to', 'ship1', 'node.ping'])
    assert.is(r.status, 2, r.out + r.err)
    assert.match(r.err, /\[node_unknown\]/)
    assert.match(r.err, /node list is not known yet/)
    assert.match(r.err, /--allow-unknown/)
    // The node itself is always known.
    const self = await sendVia(central.socket, [{ toNode: 'central', method: 'node.ping' }])
    assert.match(String(self.replies[0]?.data), /^pong central/)
    await central.proc!.stop()
    // What an earlier run heard of (nodes.json) is known from the start, connected or not.
    fs.writeFileSync(path.join(central.dataDir, 'nodes.json'), JSON.stringify([{ name: 'ship1', online: false, lastSeen: Date.now() - 60_000 }]))
    await d.start('central', false)
    const again = await cli(['send', '--config', central.config, '--no-wait', '--to', 'ship1', 'node.ping'])
    assert.is(again.status, 0, again.out + again.err)
    const other = await cli(['send', '--config', central.config, '--no-wait', '--to', 'ship2', 'node.ping'])
    assert.is(other.status, 2, other.out + other.err)
    assert.match(other.err, /ship2 is not a node central has heard of\. central is not connected now/)
  } finally {
    await d.destroy()
  }
})

test('fan-out - central inside `outpost hub` knows the nodes of hub.tokens before they connect', async () => {
  const dir = tmpDir()
  const port = await freePort()
  const hubFile = path.join(dir, 'hub.yaml')
  fs.writeFileSync(hubFile, YAML.stringify({ node: { name: 'central' }, dataDir: path.join(dir, 'central'), hub: { listen: `127.0.0.1:${port}`, tokens: { ship1: hashToken('s1') } } }))
  const hub = new Proc(['hub', '--config', hubFile])
  try {
    await hub.waitFor(/attached to the hub in this process as central/)
    const socket = path.join(dir, 'central', 'outpost.sock')
    await eventually('central answers on its socket', () => (fs.existsSync(socket) ? true : undefined))
    const declared = await sendVia(socket, [{ toNode: 'ship1', method: 'node.ping', ttl: 1 }], { wait: false })
    assert.equal(declared.accepted.map((a) => a.toNode), ['ship1'])
    const other = await sendVia(socket, [{ toNode: 'ship2', method: 'node.ping' }], { wait: false }).then(() => 'accepted', (err: Error) => err.message)
    assert.match(other, /node_unknown/)
  } finally {
    await hub.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('fan-out - on MQTT central knows a node from its broker presence, before any heartbeat', async () => {
  const m = await Cluster.create(['ship1'], { hello: { interval: 0 } }, 'mqtt')
  try {
    const central = m.node('central')
    await m.startServer()
    await m.start('central')
    const early = await sendVia(central.socket, [{ toNode: 'ship1', method: 'node.ping' }], { wait: false }).then(() => 'accepted', (err: Error) => err.message)
    assert.match(early, /node_unknown/)
    await m.start('ship1')
    let answer = ''
    for (let i = 0; i < 100; i++) {
      answer = await sendVia(central.socket, [{ toNode: 'ship1', method: 'node.ping' }]).then((r) => String(r.replies[0]?.data), (err: Error) => err.message)
      if (!/node_unknown/.test(answer)) break
      await new Promise((r) => setTimeout(r, 100))
    }
    assert.match(answer, /^pong ship1/)
  } finally {
    await m.destroy()
  }
})

test.run()
