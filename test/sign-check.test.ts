/** The receiver's signature check (src/sign-check.ts) and its config keys, on envelopes signed by src/signer.ts. */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parseConfig } from '../src/config'
import { generateKeyPair, publicKeyText } from '../src/keys'
import { signatureRefusal } from '../src/sign-check'
import { Signer } from '../src/signer'
import { BATCH } from '../src/signing'
import { decode, encode, type Envelope } from '../src/wire/envelope'
import { ulid } from '../src/wire/ulid'
import { throwsCode } from './helpers'

const ops = generateKeyPair()
const viewer = generateKeyPair()
const NOW = 1_800_000_000_000

function config(requireSignatures: string) {
  return parseConfig([
    'node: { name: ship1, central: central }',
    'security:',
    `  requireSignatures: ${requireSignatures}`,
    '  trustedKeys:',
    `    - { name: ops, publicKey: "${publicKeyText(ops.publicKey)}" }`,
    `    - { name: viewer, publicKey: "${publicKeyText(viewer.publicKey)}", methods: ["info.*"] }`,
  ].join('\n'), 'outpost.yaml')
}

function signed(key = ops, extra: Partial<Envelope> = {}): Envelope {
  const env: Envelope = { id: ulid(), toNode: 'ship1', fromNode: 'central', method: 'cli.run', methodArgs: ['uptime'], replyMethod: 'reply.file.append', createdAt: NOW, ttl: 60, ...extra }
  // Through the wire codec, as a receiver sees it.
  return decode(encode(new Signer(key.privateKey, key.publicKey).sign(env, NOW, 60)))
}

const code = (env: Envelope, cfg = config('true'), now = NOW, sink = false): string | undefined => signatureRefusal(env, cfg, 'ship1', now, sink)?.code

test('sign check - config: requireSignatures takes true, false or a list; a trusted key must be ed25519', () => {
  assert.equal(config('true').security.requireSignatures, ['*'])
  assert.equal(config('false').security.requireSignatures, [])
  assert.equal(config('["cli.*", "config.*"]').security.requireSignatures, ['cli.*', 'config.*'])
  throwsCode(() => parseConfig('security:\n  trustedKeys:\n    - { name: ops, publicKey: "ssh-ed25519 AAAA" }\n', 'outpost.yaml'), 'config_invalid')
})

test('sign check - a signed message passes; tampered args, another receiver, another id or a stripped signature do not', () => {
  const good = signed()
  assert.is(code(good), undefined)
  assert.is(code({ ...good, methodArgs: ['rm', '-rf', '/'] }), 'signature_invalid')
  assert.is(code({ ...good, toNode: 'ship2' }), 'signature_invalid')
  assert.is(code({ ...good, id: ulid() }), 'signature_invalid')
  assert.is(code({ ...good, data: 'more' }), 'signature_invalid')
  assert.is(code({ ...good, expiresAt: good.expiresAt! + 3_600_000 }), 'signature_invalid')
  const { sig: _sig, keyFingerprint: _fp, ...stripped } = good
  assert.is(code(stripped), 'signature_required')
  // The selector a copy was chosen by is signed with it.
  const selected = signed(ops, { selector: 'role=db' })
  assert.is(code(selected), undefined)
  assert.is(code({ ...selected, selector: 'role=web' }), 'signature_invalid')
  const { selector: _sel, ...unselected } = selected
  assert.is(code(unselected), 'signature_invalid')
  // A signature swapped in from another message of the same key: still not this message's.
  assert.is(code({ ...good, sig: signed().sig! }), 'signature_invalid')
})

test('sign check - expiry, notBefore, keys not trusted or not for this method', () => {
  const good = signed()
  assert.ok(good.expiresAt! > NOW)
  assert.is(code(good, config('true'), good.expiresAt! + 1), 'signature_expired')
  assert.is(code(signed(ops, { notBefore: NOW + 60_000 })), 'signature_expired')
  assert.is(code(signed(generateKeyPair())), 'key_not_allowed')
  assert.is(code(signed(viewer)), 'key_not_allowed')
  assert.is(code(signed(viewer, { method: 'info.os', methodArgs: [] })), undefined)
})

test('sign check - what requireSignatures covers: true spares sinks; a list covers what it names; off still checks a trusted signature', () => {
  const unsigned: Envelope = { id: ulid(), toNode: 'ship1', fromNode: 'central', method: 'cli.run', createdAt: NOW }
  assert.is(code(unsigned), 'signature_required')
  assert.is(code({ ...unsigned, method: 'node.hello' }, config('true'), NOW, true), undefined)
  assert.is(code({ ...unsigned, method: 'reply.file.append' }, config('["reply.*"]'), NOW, true), 'signature_required')
  assert.is(code({ ...unsigned, method: 'info.os' }, config('["cli.*"]')), undefined)
  assert.is(code(unsigned, config('false')), undefined)
  assert.is(code({ ...signed(), methodArgs: ['x'] }, config('false')), 'signature_invalid')
  // Not required and an unknown key: read as unsigned.
  assert.is(code(signed(generateKeyPair()), config('false')), undefined)
})

test('sign check - a batch: one signature per BATCH (32) envelopes, each verifiable alone; tampering one or swapping paths is refused', () => {
  const signer = new Signer(ops.privateKey, ops.publicKey)
  const envs: Envelope[] = Array.from({ length: 101 }, (_, i) => ({ id: ulid(), toNode: `ship${i}`, fromNode: 'central', method: 'cli.run', methodArgs: ['echo', String(i)], createdAt: NOW, ttl: 60 }))
  signer.signAll(envs, NOW, 60)
  assert.is(BATCH, 32)
  assert.is(new Set(envs.map((e) => e.sig)).size, 4)
  assert.ok(envs.every((e) => e.sigPath !== undefined))
  const at = (e: Envelope, cfg = config('true')) => signatureRefusal(decode(encode(e)), cfg, e.toNode, NOW, false)?.code
  for (const e of envs) assert.is(at(e), undefined)
  assert.is(at({ ...envs[5]!, methodArgs: ['echo', 'pwned'] }), 'signature_invalid')
  assert.is(at({ ...envs[5]!, sigPath: envs[6]!.sigPath! }), 'signature_invalid')
  assert.is(at({ ...envs[5]!, toNode: 'ship6' }), 'signature_invalid')
  assert.is(at({ ...envs[5]!, sigPath: envs[5]!.sigPath!.slice(0, 44) }), 'signature_invalid')
  const { sigPath: _p, ...pathless } = envs[5]!
  assert.is(at(pathless), 'signature_invalid')
  // The last tree holds 5: its odd one out goes up twice as it is; it, and a lone envelope (no path), verify too.
  assert.is(at(envs[100]!), undefined)
  assert.is(at({ ...envs[100]!, methodArgs: [] }), 'signature_invalid')
  assert.is(signed().sigPath, undefined)
})


test('sign check - signature_required says how to sign what was refused: --key for a send, api.signingKey for a shell, a transfer or a job', () => {
  const unsigned = (extra: Partial<Envelope>): Envelope => ({ id: ulid(), toNode: 'ship1', fromNode: 'central', method: 'cli.run', methodArgs: ['uptime'], replyMethod: 'reply.file.append', createdAt: NOW, ttl: 60, ...extra })
  const why = (env: Envelope): string => signatureRefusal(env, config('true'), 'ship1', NOW, false)?.message ?? ''
  assert.match(why(unsigned({})), /send it with --key FILE/)
  for (const method of ['session.open', 'tunnel.open', 'tunnel.listen', 'file.put', 'file.get']) {
    assert.match(why(unsigned({ method })), /set api\.signingKey on central/, method)
    assert.not.match(why(unsigned({ method })), /--key FILE/, method)
  }
  // A job's message (its replies go to reply.job): central signs it, send --key cannot.
  const job = why(unsigned({ replyMethod: 'reply.job', replyMethodArgs: ['01JOB'] }))
  assert.match(job, /set api\.signingKey on central/)
  assert.not.match(job, /--key FILE/)
})

test.run()
