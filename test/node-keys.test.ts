/** Each node's own key: made at first start, sent with node.hello, pinned by central (real processes). */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { connect } from 'nats'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { fingerprint, generateKeyPair, publicKeyText, readKeyFile, writeKeyFile } from '../src/keys'
import type { NodeInfo } from '../src/node-list'
import { encode } from '../src/wire/envelope'
import { ulid } from '../src/wire/ulid'
import { BIN, Cluster, editYaml, section } from './fixtures/cluster'

/** central's node list, over its socket. */
function nodesOf(socket: string): Promise<NodeInfo[]> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socket)
    let buf = ''
    s.setEncoding('utf8')
    s.on('connect', () => s.write('{"op":"nodes"}\n'))
    s.on('data', (d: string) => { buf += d; if (buf.includes('\n')) { s.destroy(); resolve((JSON.parse(buf) as { nodes: NodeInfo[] }).nodes) } })
    s.on('error', reject)
  })
}

/** The key central lists for `name`, once it lists one. */
async function listedKey(c: Cluster, name: string): Promise<string> {
  const central = c.node('central')
  const end = Date.now() + 10_000
  for (;;) {
    const n = (await nodesOf(central.socket)).find((x) => x.name === name)
    if (n?.publicKey !== undefined) return n.publicKey
    if (Date.now() > end) throw new Error(`central never listed ${name}'s key:\n${central.proc?.output.slice(-2000)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

test('node keys - a node makes node.key (0600) at first start, reuses it, and central pins it; a new key is refused', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    const ship1 = c.node('ship1')
    const first = await c.start('ship1')
    const file = path.join(ship1.dataDir, 'node.key')
    assert.is(fs.statSync(file).mode & 0o777, 0o600)
    const key = publicKeyText(readKeyFile(file).publicKey)
    assert.match(first.output, 'node key made')
    assert.not.match(first.output, 'PRIVATE KEY')
    assert.is(await listedKey(c, 'ship1'), key)

    // A restart keeps the same key, and central takes its hellos.
    const pem = fs.readFileSync(file, 'utf8')
    await first.stop()
    const second = await c.start('ship1')
    assert.is(fs.readFileSync(file, 'utf8'), pem)
    assert.not.match(second.output, 'node key made')

    // The CLI shows the pinned key's fingerprint.
    const cli = spawnSync(process.execPath, [BIN, 'nodes', '--json', '--config', c.node('central').config], { encoding: 'utf8' })
    assert.is(cli.status, 0, cli.stderr)
    const listed = (JSON.parse(cli.stdout) as NodeInfo[]).find((n) => n.name === 'ship1')!
    assert.is(listed.keyFingerprint, fingerprint(key))
    assert.is(listed.publicKey, key)

    // ship1 comes back with another key (as a forger holding its token would): refused, logged, the pin stays.
    await second.stop()
    const forged = generateKeyPair()
    writeKeyFile(file, forged, true)
    const from = c.node('central').proc!.output.length
    await c.start('ship1')
    await c.node('central').proc!.waitFor(/refused node\.hello from ship1: it carries key SHA256:[0-9a-f]{16}, but ship1's key is SHA256:/, 10_000, from)
    assert.match(c.node('central').proc!.output.slice(from), fingerprint(publicKeyText(forged.publicKey)))
    assert.match(c.node('central').proc!.output.slice(from), 'key_changed')
    assert.is(await listedKey(c, 'ship1'), key)
  } finally {
    await c.destroy()
  }
})

test('node keys - a key set in security.nodeKeys is pinned up front: a node with another key is refused', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    const provisioned = publicKeyText(generateKeyPair().publicKey)
    editYaml(c.node('central').config, (doc) => { section(doc, 'security').nodeKeys = { ship1: provisioned } })
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const central = c.node('central').proc!
    await central.waitFor(/refused node\.hello from ship1: .*\(set in security\.nodeKeys\)/)
    assert.is(await listedKey(c, 'ship1'), provisioned)
    assert.not.match(central.output, /refused node\.hello from central/)
  } finally {
    await c.destroy()
  }
})

test('node keys - on NATS, a hello for ship1 forged by a client with broker rights is refused and the pin stays', async () => {
  const c = await Cluster.create(['ship1'], {}, 'nats')
  try {
    await c.startServer()
    await c.start('central')
    await c.start('ship1')
    const key = publicKeyText(readKeyFile(path.join(c.node('ship1').dataDir, 'node.key')).publicKey)
    assert.is(await listedKey(c, 'ship1'), key)
    // The broker cannot vouch for fromNode: anyone with its credentials can claim to be ship1.
    const creds = (YAML.parse(fs.readFileSync(c.node('ship1').config, 'utf8')) as { transport: { nats: { user: string; pass: string } } }).transport.nats
    const nc = await connect({ servers: c.broker!.url, user: creds.user, pass: creds.pass })
    const forged = publicKeyText(generateKeyPair().publicKey)
    const env = { id: ulid(), toNode: 'central', fromNode: 'ship1', method: 'node.hello', createdAt: Date.now(), ackTimeout: 0, data: JSON.stringify({ version: '6.6.6', publicKey: forged }) }
    nc.publish('outpost.central.node.hello.EventNACK', encode(env))
    await nc.flush()
    await nc.close()
    await c.node('central').proc!.waitFor(new RegExp(`refused node\\.hello from ship1: it carries key ${fingerprint(forged)}, but ship1's key is ${fingerprint(key)}`))
    const listed = (await nodesOf(c.node('central').socket)).find((n) => n.name === 'ship1')!
    assert.is(listed.publicKey, key)
    assert.is.not(listed.version, '6.6.6')
  } finally {
    await c.destroy()
  }
})

test.run()
