/** Signed commands end to end (real hub, real nodes): send --key and api.signingKey sign, the receiver checks. */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { generateKeyPair, publicKeyText, writeKeyFile } from '../src/keys'
import { BIN, Cluster, editYaml, freePort, section, sendVia } from './fixtures/cluster'

/** Operator keys in the cluster's folder: file and public key. */
function makeKey(c: Cluster, name: string): { file: string; publicKey: string } {
  const pair = generateKeyPair()
  const file = path.join(c.dir, `${name}.key`)
  writeKeyFile(file, pair)
  return { file, publicKey: publicKeyText(pair.publicKey) }
}

function send(c: Cluster, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'send', '--config', c.node('central').config, ...args], { encoding: 'utf8', timeout: 30_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

test('signed commands - ship1 requires signatures: unsigned, unknown key, key not allowed and expired are refused; send --key runs', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    const ops = makeKey(c, 'ops')
    const viewer = makeKey(c, 'viewer')
    const stranger = makeKey(c, 'stranger')
    editYaml(c.node('ship1').config, (doc) => {
      section(doc, 'security').requireSignatures = true
      section(doc, 'security').trustedKeys = [{ name: 'ops', publicKey: ops.publicKey, methods: ['*'] }, { name: 'viewer', publicKey: viewer.publicKey, methods: ['info.*'] }]
    })
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const mark = (n: string): string => path.join(c.dir, `ran-${n}`)

    const noKey = send(c, ['--key', path.join(c.dir, 'missing.key'), '--to', 'ship1', 'cli.run', '--', 'touch', mark('unsigned')])
    assert.is(noKey.status, 2, noKey.stderr)
    assert.match(noKey.stderr, /key_invalid/)

    const unsigned = send(c, ['--to', 'ship1', 'cli.run', '--', 'touch', mark('unsigned')])
    assert.is(unsigned.status, 3, unsigned.stderr)
    assert.match(unsigned.stderr, /signature_required/)

    const stranged = send(c, ['--key', stranger.file, '--to', 'ship1', 'cli.run', '--', 'touch', mark('stranger')])
    assert.is(stranged.status, 3, stranged.stderr)
    assert.match(stranged.stderr, /key_not_allowed: .*not in security\.trustedKeys/)

    const viewed = send(c, ['--key', viewer.file, '--to', 'ship1', 'cli.run', '--', 'touch', mark('viewer')])
    assert.is(viewed.status, 3, viewed.stderr)
    assert.match(viewed.stderr, /key_not_allowed: the key viewer .* may not call cli\.run/)
    const info = send(c, ['--key', viewer.file, '--to', 'ship1', 'info.os'])
    assert.is(info.status, 0, info.stderr)

    // A signed message past its expiresAt (here set by the sender, as a replay kept too long would be).
    const msgs = path.join(c.dir, 'expired.json')
    fs.writeFileSync(msgs, JSON.stringify([{ toNode: 'ship1', method: 'cli.run', methodArgs: ['touch', mark('expired')], expiresAt: Date.now() - 1000 }]))
    const expired = send(c, ['--key', ops.file, '--file', msgs])
    assert.is(expired.status, 3, expired.stderr)
    assert.match(expired.stderr, /signature_expired/)

    const ok = send(c, ['--key', ops.file, '--to', 'ship1', 'cli.run', '--', 'sh', '-c', `touch ${mark('ops')}; echo ran`])
    assert.is(ok.status, 0, ok.stderr)
    assert.match(ok.stdout, 'ran')
    // A selector is resolved and signed at the sender, each copy carrying it.
    const bySelector = send(c, ['--key', ops.file, '--to', 'ship*', 'cli.run', '--', 'echo', 'selected'])
    assert.is(bySelector.status, 0, bySelector.stderr)
    assert.match(bySelector.stdout, 'selected')

    for (const n of ['unsigned', 'stranger', 'viewer', 'expired']) assert.not.ok(fs.existsSync(mark(n)), `${n} ran`)
    assert.ok(fs.existsSync(mark('ops')))
  } finally {
    await c.destroy()
  }
})

test('signed commands - api.signingKey signs what the socket API submits; its key is checked like any other', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    const ops = makeKey(c, 'ops')
    const viewer = makeKey(c, 'viewer')
    editYaml(c.node('ship1').config, (doc) => {
      section(doc, 'security').requireSignatures = ['cli.*']
      section(doc, 'security').trustedKeys = [{ name: 'ops', publicKey: ops.publicKey }, { name: 'viewer', publicKey: viewer.publicKey, methods: ['info.*'] }]
    })
    const httpPort = await freePort()
    editYaml(c.node('central').config, (doc) => { Object.assign(section(doc, 'api'), { signingKey: ops.file, http: `127.0.0.1:${httpPort}`, token: 'tok-signed-http-0123456789' }) })
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo', 'signed by the api'] }])
    assert.is(r.replies.length, 1)
    assert.is(r.replies[0]!.error, undefined, JSON.stringify(r.replies[0]))
    assert.match(String(r.replies[0]!.data), 'signed by the api')

    // Addressed by a selector: central resolves it, each copy carries it and is signed with it.
    const bySelector = await sendVia(c.node('central').socket, [{ toNodes: ['ship*'], method: 'cli.run', methodArgs: ['echo', 'by selector'] }])
    assert.is(bySelector.replies.length, 1)
    assert.is(bySelector.replies[0]!.error, undefined, JSON.stringify(bySelector.replies[0]))
    assert.match(String(bySelector.replies[0]!.data), 'by selector')

    // And what the HTTP API takes.
    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/messages?wait=1&timeout=30`, { method: 'POST', headers: { authorization: 'Bearer tok-signed-http-0123456789', 'content-type': 'application/json' }, body: JSON.stringify({ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo', 'over http'] }) })
    const body = await res.json() as { replies: { data?: string; error?: unknown }[] }
    assert.is(body.replies[0]!.error, undefined, JSON.stringify(body))
    assert.match(String(body.replies[0]!.data), 'over http')

    // A job: central makes each node's message as it starts, and signs it with api.signingKey.
    const job = send(c, ['--batch', '1', '--to', 'ship*', 'cli.run', '--', 'echo', 'signed job'])
    assert.is(job.status, 0, job.stderr + job.stdout)
    assert.match(job.stdout, /ship1 +ok\n.*ok 1 \(job done\)/, job.stdout)
    // --key cannot sign a job's messages (central makes them): a usage error, nothing sent.
    const keyed = send(c, ['--key', ops.file, '--batch', '1', '--to', 'ship1', 'cli.run', '--', 'echo', 'x'])
    assert.is(keyed.status, 2, keyed.stderr)
    assert.match(keyed.stderr, /--key cannot sign a job/)

    // The same request from ship1's own socket (no signingKey there) is refused by ship1: cli.* needs a signature.
    const own = await sendVia(c.node('ship1').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo', 'x'] }])
    assert.is((own.replies[0]!.error as { code: string }).code, 'signature_required')
    // info.* is not in requireSignatures: unsigned runs.
    const info = await sendVia(c.node('ship1').socket, [{ toNode: 'ship1', method: 'info.os' }])
    assert.is(info.replies[0]!.error, undefined)
  } finally {
    await c.destroy()
  }
})

test('signed commands - trustedKeys change only by a config.* message signed by a key allowed it; a revoked key stops working at once', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    const ops = makeKey(c, 'ops')
    const old = makeKey(c, 'old')
    const shipConfig = c.node('ship1').config
    editYaml(shipConfig, (doc) => {
      section(doc, 'security').requireSignatures = ['cli.*']
      section(doc, 'security').trustedKeys = [{ name: 'ops', publicKey: ops.publicKey }, { name: 'old', publicKey: old.publicKey, methods: ['cli.*'] }]
    })
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const before = fs.readFileSync(shipConfig, 'utf8')
    assert.is(send(c, ['--key', old.file, '--to', 'ship1', 'cli.run', '--', 'true']).status, 0)

    // config.* needs no signature here (requireSignatures: cli.*), but a change of the security keys does.
    const unsigned = send(c, ['--to', 'ship1', 'config.set', '--', 'security.requireSignatures', 'false'])
    assert.is(unsigned.status, 3, unsigned.stderr)
    assert.match(unsigned.stderr, /signature_required: config\.set would change security\.requireSignatures on ship1/)
    const byOld = send(c, ['--key', old.file, '--to', 'ship1', 'config.set', '--', 'security.trustedKeys', '[]'])
    assert.is(byOld.status, 3, byOld.stderr)
    assert.match(byOld.stderr, /key_not_allowed/)
    // A whole document without the keys: the same.
    const doc = path.join(c.dir, 'deploy.yaml')
    const { security: _security, ...withoutKeys } = YAML.parse(before) as Record<string, unknown>
    fs.writeFileSync(doc, YAML.stringify(withoutKeys))
    assert.not.match(fs.readFileSync(doc, 'utf8'), 'trustedKeys')
    const deployed = send(c, ['--to', 'ship1', '--data', `@${doc}`, 'config.deploy', '--', 'd1'])
    assert.is(deployed.status, 3, deployed.stderr)
    assert.match(deployed.stderr, /signature_required: config\.deploy would change security\.trustedKeys and security\.requireSignatures/)
    assert.is(fs.readFileSync(shipConfig, 'utf8'), before)
    // Other keys change unsigned as before.
    assert.is(send(c, ['--to', 'ship1', 'config.set', '--', 'methods.timeout', '77']).status, 0)

    // ops revokes old.
    const revoke = send(c, ['--key', ops.file, '--to', 'ship1', 'config.set', '--', 'security.trustedKeys', `[{name: ops, publicKey: "${ops.publicKey}"}]`])
    assert.is(revoke.status, 0, revoke.stderr)
    assert.not.match(fs.readFileSync(shipConfig, 'utf8'), old.publicKey)
    const revoked = send(c, ['--key', old.file, '--to', 'ship1', 'cli.run', '--', 'true'])
    assert.is(revoked.status, 3, revoked.stderr)
    assert.match(revoked.stderr, /key_not_allowed: .*not in security\.trustedKeys/)
    assert.is(send(c, ['--key', ops.file, '--to', 'ship1', 'cli.run', '--', 'true']).status, 0)
  } finally {
    await c.destroy()
  }
})

test.run()
