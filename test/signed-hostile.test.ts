/**
 * Signed commands against a hostile middle (real processes): a hub that rewrites, redirects,
 * replays and strips signed commands (test/fixtures/hostile-hub.ts), and on MQTT and NATS a
 * client with the broker's credentials publishing tampered copies. None of it runs; the honest
 * path works on all three transports.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import mqtt from 'mqtt'
import { connect } from 'nats'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { generateKeyPair, publicKeyText, writeKeyFile } from '../src/keys'
import { decode, encode, type Envelope } from '../src/wire/envelope'
import { ulid } from '../src/wire/ulid'
import { Subjects } from '../transports/subjects'
import { BIN, Cluster, editYaml, freePort, section, type Kind } from './fixtures/cluster'
import { HostileHub, type Routed } from './fixtures/hostile-hub'
import { eventually, readOr } from './helpers'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** A cluster whose ships run only what the ops key signed. */
async function signedCluster(kind: Kind, ships: string[]): Promise<{ c: Cluster; key: string; attacker: string }> {
  const c = await Cluster.create(ships, {}, kind)
  const ops = generateKeyPair()
  const key = path.join(c.dir, 'ops.key')
  writeKeyFile(key, ops)
  // The attacker's own key: not trusted anywhere.
  const attacker = path.join(c.dir, 'attacker.key')
  writeKeyFile(attacker, generateKeyPair())
  for (const s of ships) {
    editYaml(c.node(s).config, (doc) => {
      section(doc, 'security').requireSignatures = true
      section(doc, 'security').trustedKeys = [{ name: 'ops', publicKey: publicKeyText(ops.publicKey) }]
    })
  }
  return { c, key, attacker }
}

/** `outpost send` from central; not spawnSync: the hostile hub lives in this process and must keep routing. */
function send(c: Cluster, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, 'send', '--config', c.node('central').config, '--allow-unknown', ...args], { timeout: 30_000 })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    p.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}

/** The lines of a file (none when it is not there). */
const lines = (file: string): string[] => readOr(file).split('\n').filter(Boolean)

/** The code a node's audit log gives the refusal of message `id`, once it has one. */
function refusedAs(c: Cluster, node: string, id: string): Promise<string> {
  return eventually(`${node} to refuse ${id}`, () => {
    for (const l of lines(path.join(c.node(node).dataDir, 'audit.log'))) {
      const e = JSON.parse(l) as { event: string; id: string; error?: { code: string } }
      if (e.event === 'denied' && e.id === id) return e.error?.code
    }
    return undefined
  })
}

const isCommand = (m: Routed): boolean => m.env.method === 'cli.run' && m.from === 'central'

test('signed hostile - a hub that rewrites args, redirects, replays or strips a signed command runs none of it', async () => {
  const { c, key } = await signedCluster('tcp', ['ship1', 'ship2'])
  const metrics = await freePort()
  editYaml(c.node('central').config, (doc) => { section(doc, 'api').metrics = `127.0.0.1:${metrics}` })
  const hub = await HostileHub.start(c.port)
  try {
    await c.start('central')
    await c.start('ship1')
    await c.start('ship2')
    const marker = path.join(c.dir, 'marker')
    const echo = (word: string): string[] => ['cli.run', '--', 'sh', '-c', `echo ${word} >> ${marker}`]

    // Honest: runs once.
    const honest = await send(c, ['--key', key, '--to', 'ship1', ...echo('honest')])
    assert.is(honest.status, 0, honest.stderr)
    assert.equal(lines(marker), ['honest'])
    const ran = hub.seen.find(isCommand)!

    // Replayed after it ran, as it was: a duplicate (ACKed again), not run again.
    const acks = (): number => hub.seen.filter((m) => m.from === 'ship1' && m.env.inReplyTo === ran.env.id && m.env.method === 'ack').length
    const before = acks()
    hub.inject(ran)
    await eventually('the replay to be ACKed', () => (acks() > before ? true : undefined))
    // Replayed with a new id (so not a duplicate): the id is signed.
    const renamed = HostileHub.rewrite(ran, (e) => ({ ...e, id: ulid() }))
    hub.inject(renamed)
    assert.is(await refusedAs(c, 'ship1', renamed.env.id), 'signature_invalid')

    // Args rewritten on the way.
    hub.tamper = (m) => [isCommand(m) ? HostileHub.rewrite(m, (e) => ({ ...e, methodArgs: ['sh', '-c', `echo pwned >> ${marker}`] })) : m]
    const rewritten = await send(c, ['--key', key, '--to', 'ship1', ...echo('honest2')])
    assert.is(rewritten.status, 3, rewritten.stderr)
    assert.match(rewritten.stderr, /ship1: signature_invalid/)

    // Signature stripped.
    hub.tamper = (m) => [isCommand(m) ? HostileHub.rewrite(m, ({ sig: _s, keyFingerprint: _k, ...e }) => e as Envelope) : m]
    const stripped = await send(c, ['--key', key, '--to', 'ship1', ...echo('stripped')])
    assert.is(stripped.status, 3, stripped.stderr)
    assert.match(stripped.stderr, /ship1: signature_required/)

    // Redirected: delivered to ship1 as sent, and a copy to ship2 (which trusts the same key).
    let copy: Routed | undefined
    hub.tamper = (m) => {
      if (!isCommand(m)) return [m]
      copy = HostileHub.rewrite(m, (e) => ({ ...e, toNode: 'ship2' }))
      return [m, copy]
    }
    const redirected = await send(c, ['--key', key, '--to', 'ship1', ...echo('once')])
    assert.is(redirected.status, 0, redirected.stderr)
    assert.is(await refusedAs(c, 'ship2', copy!.env.id), 'signature_invalid')

    await sleep(300)
    assert.equal(lines(marker), ['honest', 'once'])

    // A forged reply: ship1's answer rewritten on its way back. Central checks it against ship1's pinned key.
    hub.tamper = (m) => [m.from === 'ship1' && m.env.inReplyTo !== undefined && m.env.method !== 'ack' ? HostileHub.rewrite(m, (e) => ({ ...e, data: 'all is well\n' })) : m]
    const forged = await send(c, ['--key', key, '--to', 'ship1', 'cli.run', '--', 'echo', 'the truth'])
    assert.is(forged.status, 1, forged.stderr)
    assert.match(forged.stderr, /ship1: reply_forged: .*signature does not match/)
    assert.not.match(forged.stdout, 'all is well')
    // Unsigned (a node without the key, or one stripped on the way): the same.
    hub.tamper = (m) => [m.from === 'ship1' && m.env.inReplyTo !== undefined && m.env.method !== 'ack' ? HostileHub.rewrite(m, ({ sig: _s, keyFingerprint: _k, ...e }) => ({ ...e, data: 'all is well\n' }) as Envelope) : m]
    const unsigned = await send(c, ['--key', key, '--to', 'ship1', 'cli.run', '--', 'echo', 'the truth'])
    assert.is(unsigned.status, 1, unsigned.stderr)
    assert.match(unsigned.stderr, /ship1: reply_forged: .*not signed/)
    assert.match(c.node('central').proc!.output, /refused a reply claiming to come from ship1/)
    const scraped = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text()
    assert.match(scraped, /outpost_signature_refusals_total\{method="reply\.file\.append",code="reply_forged"\} 2/)
  } finally {
    await c.destroy()
    await hub.close()
  }
})

/** A client holding the broker's credentials: publish envelope bytes addressed to `to`. */
async function brokerClient(c: Cluster, kind: 'mqtt' | 'nats'): Promise<{ publish(env: Envelope): Promise<void>; captured: Envelope[]; close(): Promise<void> }> {
  const captured: Envelope[] = []
  const cfg = (YAML.parse(fs.readFileSync(c.node('ship2').config, 'utf8')) as { transport: { mqtt?: { username: string; password: string }; nats?: { user: string; pass: string } } }).transport
  const subjects = new Subjects(kind, 'outpost')
  if (kind === 'nats') {
    const nc = await connect({ servers: c.broker!.url, user: cfg.nats!.user, pass: cfg.nats!.pass })
    const sub = nc.subscribe(subjects.inbox('ship1'))
    void (async () => { for await (const m of sub) { try { captured.push(decode(m.data)) } catch { /* a part or not an envelope */ } } })()
    return {
      captured,
      publish: async (env) => { nc.publish(subjects.message(env.toNode, env.method, false), encode(env)); await nc.flush() },
      close: () => nc.close(),
    }
  }
  const client = await mqtt.connectAsync(c.broker!.url, { username: 'ship2', password: cfg.mqtt!.password, clientId: `mallory-${Date.now()}` })
  await client.subscribeAsync(subjects.inbox('ship1'), { qos: 1 })
  client.on('message', (_t, payload) => { try { captured.push(decode(payload)) } catch { /* not an envelope */ } })
  return {
    captured,
    publish: async (env) => { await client.publishAsync(subjects.message(env.toNode, env.method, false), Buffer.from(encode(env)), { qos: 1 }) },
    close: async () => { await client.endAsync() },
  }
}

for (const kind of ['mqtt', 'nats'] as const) {
  test(`signed hostile - ${kind}: the honest path runs; a client with broker rights publishing tampered, stripped or self-signed copies runs nothing`, async () => {
    const { c, key, attacker } = await signedCluster(kind, ['ship1', 'ship2'])
    try {
      await c.startServer()
      await c.start('central')
      await c.start('ship1')
      await c.start('ship2')
      const bad = await brokerClient(c, kind)
      const marker = path.join(c.dir, 'marker')
      const honest = await send(c, ['--key', key, '--to', 'ship1', 'cli.run', '--', 'sh', '-c', `echo honest >> ${marker}`])
      assert.is(honest.status, 0, honest.stderr)
      assert.equal(lines(marker), ['honest'])
      const ran = await eventually('the signed command to be seen on the broker', () => bad.captured.find((e) => e.method === 'cli.run'))
      assert.ok(ran.sig !== undefined)

      // The same bytes again: a duplicate.
      await bad.publish(ran)
      // Its args changed (a new id, or it would be a duplicate): refused.
      const tampered = { ...ran, id: ulid(), methodArgs: ['sh', '-c', `echo pwned >> ${marker}`] }
      await bad.publish(tampered)
      assert.is(await refusedAs(c, 'ship1', tampered.id), 'signature_invalid')
      // Sent to ship2 instead.
      const moved = { ...ran, toNode: 'ship2' }
      await bad.publish(moved)
      assert.is(await refusedAs(c, 'ship2', moved.id), 'signature_invalid')
      // Stripped of its signature.
      const { sig: _s, keyFingerprint: _k, ...rest } = { ...ran, id: ulid() }
      await bad.publish(rest as Envelope)
      assert.is(await refusedAs(c, 'ship1', rest.id), 'signature_required')
      await bad.close()
      // A command signed by the attacker's own key, through central's API.
      const own = await send(c, ['--key', attacker, '--to', 'ship1', 'cli.run', '--', 'sh', '-c', `echo attacker >> ${marker}`])
      assert.is(own.status, 3, own.stderr)
      assert.match(own.stderr, /key_not_allowed/)
      await sleep(300)
      assert.equal(lines(marker), ['honest'])
    } finally {
      await c.destroy()
    }
  })
}

test.run()
