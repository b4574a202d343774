/**
 * What an operator meets in the first hour, with real processes: a node the hub refuses, the
 * node inside `outpost hub`, and `outpost nodes` following the hub's presence.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { encodeFrame, FrameDecoder } from '../src/wire/framing'
import { hashToken } from '../src/hub'
import { BIN, Cluster, editYaml, freePort, Proc, section, sendVia, tmpDir } from './fixtures/cluster'

function cli(args: string[]): Promise<{ status: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => { out += d })
    child.stderr.on('data', (d: Buffer) => { err += d })
    child.on('close', (status) => resolve({ status, out, err }))
  })
}

test('first hour - a node with a wrong token says so in one line, and send tells the waiting client at once, then exits 3 at its ttl', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    editYaml(c.node('ship1').config, (doc) => { section(doc, 'transport').token = 'not-the-token' })
    await c.startHub()
    await c.start('central')
    const ship1 = await c.start('ship1', false)
    await ship1.waitFor(/auth_failed|token is wrong/)
    const sent = await cli(['send', '--config', c.node('ship1').config, '--to', 'central', '--ttl', '2', 'node.ping'])
    assert.is(sent.status, 3, sent.out + sent.err)
    // Told before the ttl ran out why nothing comes: this node is not connected, and why.
    assert.match(sent.err, /ship1 is not connected: .*(token|unknown)/)
    assert.match(sent.err, /ttl/)
    // It retries every 10 s: after the second refusal, still one error line.
    const from = ship1.output.length
    await ship1.waitFor(/reconnect|auth_failed|token is wrong/, 15_000, from)
    await new Promise((r) => setTimeout(r, 500))
    const refusals = ship1.output.split('\n').filter((l) => / error /.test(l) && /token is wrong|auth_failed/.test(l))
    assert.is(refusals.length, 1, ship1.output)
  } finally {
    await c.destroy()
  }
})

test('first hour - `outpost nodes` on central says at once that a node went away (the hub tells central)', async () => {
  // A long heartbeat: only the hub's presence can tell central that ship1 left.
  const c = await Cluster.create(['ship1'], { hello: { interval: 3600 } })
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const nodes = (): Promise<{ name: string; online: boolean }[]> =>
      cli(['nodes', '--json', '--config', c.node('central').config]).then((r) => JSON.parse(r.out) as { name: string; online: boolean }[])
    const until = async (want: boolean): Promise<void> => {
      for (let i = 0; i < 100; i++) {
        const ship1 = (await nodes()).find((n) => n.name === 'ship1')
        if (ship1?.online === want) return
        await new Promise((r) => setTimeout(r, 100))
      }
      assert.unreachable(`ship1 never became online=${want}: ${JSON.stringify(await nodes())}`)
    }
    await until(true)
    await c.node('ship1').proc!.stop('SIGKILL')
    await until(false)
    await c.start('ship1')
    await until(true)
  } finally {
    await c.destroy()
  }
})

test('first hour - `outpost hub` with node.name runs that node in its own process: no token, no dial, messages both ways', async () => {
  const dir = tmpDir()
  const port = await freePort()
  const hubFile = path.join(dir, 'hub.yaml')
  const shipFile = path.join(dir, 'ship1.yaml')
  fs.writeFileSync(hubFile, YAML.stringify({ node: { name: 'central' }, dataDir: path.join(dir, 'central'), hub: { listen: `127.0.0.1:${port}`, tokens: { ship1: hashToken('s1'), central: hashToken('c1') } }, hello: { interval: 1 } }))
  fs.writeFileSync(shipFile, YAML.stringify({ node: { name: 'ship1', central: 'central' }, dataDir: path.join(dir, 'ship1'), transport: { servers: [`tcp://127.0.0.1:${port}`], token: 's1' }, hello: { interval: 1 } }))
  const hub = new Proc(['hub', '--config', hubFile])
  const ship = new Proc(['agent', '--config', shipFile])
  try {
    await hub.waitFor(/attached to the hub in this process as central/)
    // Its API socket comes up just after the attach (the attach is the transport's first step).
    await hub.waitFor(/api: listening on .*central/)
    await ship.waitFor(/connected to tcp/)
    await ship.waitFor(/api: listening on/)
    // central → ship1, and ship1 → central (central is no socket: the hub hands frames over in-process).
    const there = await sendVia(path.join(dir, 'central', 'outpost.sock'), [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo from-central'] }])
    assert.match(String(there.replies[0]?.data), /from-central/)
    // ship1 may not call central (methods.allow: central and itself), so central's answer is its refusal.
    const back = await sendVia(path.join(dir, 'ship1', 'outpost.sock'), [{ toNode: 'central', method: 'node.ping' }])
    assert.is((back.replies[0]?.error as { code: string } | undefined)?.code, 'denied', JSON.stringify(back))
    assert.is(back.replies[0]?.fromNode, 'central')
    assert.not.match(hub.output, /unknown here|auth_failed/)
    // A TCP hello in central's name, even with a token the hub knows, is refused while central is attached here.
    const answer = await new Promise<Buffer>((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1', () => sock.write(encodeFrame({ t: 'hello', node: 'central', token: 'c1', version: '0.0.0', apiVersion: 1 })))
      let got = Buffer.alloc(0)
      sock.on('data', (d: Buffer) => { got = Buffer.concat([got, d]) })
      sock.on('close', () => resolve(got))
      sock.on('error', reject)
    })
    const [frame] = new FrameDecoder().push(answer)
    assert.equal(frame && frame.t === 'error' ? frame.code : frame, 'auth_failed')
    assert.match(hub.output, /runs inside this hub's process/)
    // central is still attached and its messages still go.
    const again = await sendVia(path.join(dir, 'central', 'outpost.sock'), [{ toNode: 'ship1', method: 'node.ping' }])
    assert.match(String(again.replies[0]?.data), /^pong ship1/)
  } finally {
    await ship.stop()
    await hub.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('first hour - send of a message that gets no reply (a sink such as REQHello, an event) ends when it is delivered, exit 0', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const file = path.join(c.dir, 'msgs.json')
    fs.writeFileSync(file, JSON.stringify([
      { toNode: 'central', method: 'REQHello', ACKTimeout: 5 },
      { toNode: 'ship1', method: 'REQCliCommand', methodArgs: ['echo', 'with-a-reply'], ACKTimeout: 5 },
    ]))
    const both = await cli(['send', '--config', c.node('central').config, '--file', file])
    assert.is(both.status, 0, both.out + both.err)
    assert.match(both.out, /with-a-reply/)
    assert.match(both.err, /central: delivered \(node\.hello sends no reply\)/)
    const event = await cli(['send', '--config', c.node('central').config, '--to', 'ship1', '--ack-timeout', '0', '--json', 'node.ping'])
    assert.is(event.status, 0, event.out + event.err)
    const records = event.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.ok(records.some((r) => (r.delivered as { toNode?: string } | undefined)?.toNode === 'ship1'), event.out)
    assert.equal(records.at(-1), { done: true, exitCode: 0 })
  } finally {
    await c.destroy()
  }
})

test.run()
