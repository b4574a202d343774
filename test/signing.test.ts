import crypto from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { fingerprint, generateKeyPair } from '../src/keys'
import { canonicalBytes, envelopeFields, sign, signEnvelopes, verify, verifyEnvelope, type SignedFields } from '../src/signing'
import type { Envelope } from '../src/wire/envelope'

const ops = generateKeyPair()

/** Every covered field set. */
const FULL: SignedFields = {
  id: '01JB0000000000000000000000', fromNode: 'central', toNode: 'ship1', selector: 'role=db', method: 'cli.run',
  methodArgs: ['uname', '-a'], data: new Uint8Array([1, 2, 3]), replyMethod: 'reply.file', replyMethodArgs: ['x'],
  methodTimeout: 30, notBefore: 1_700_000_000_000, expiresAt: 1_700_000_600_000, directory: 'out', fileName: 'u.log',
  operation: { opCmd: 'startProc', opArg: { method: 'file.tail', args: ['a'] } },
}

/** A different value for each covered field, of its own type. */
const CHANGED: { [K in keyof SignedFields]-?: SignedFields[K] } = {
  id: '01JB0000000000000000000001', fromNode: 'ship2', toNode: 'ship2', selector: 'role=web', method: 'cli.stream',
  methodArgs: ['uname -a'], data: new Uint8Array([1, 2, 4]), replyMethod: 'reply.console', replyMethodArgs: ['y'],
  methodTimeout: 31, notBefore: 1_700_000_000_001, expiresAt: 1_700_000_600_001, directory: 'etc', fileName: 'passwd',
  operation: { opCmd: 'startProc', opArg: { method: 'file.tail', args: ['b'] } },
}

const OPTIONAL = Object.keys(FULL).filter((k) => !['id', 'fromNode', 'method'].includes(k)) as (keyof SignedFields)[]

test('signing - a signature verifies over the fields it was made for, and names its key', () => {
  const s = sign(FULL, ops.privateKey)
  assert.is(s.keyFingerprint, fingerprint(ops.publicKey))
  assert.is(Buffer.from(s.sig, 'base64').length, 64)
  assert.equal(verify(FULL, s, ops.publicKey), { ok: true })
  const bare: SignedFields = { id: FULL.id, fromNode: 'central', method: 'node.ping' }
  assert.equal(verify(bare, sign(bare, ops.privateKey), ops.publicKey), { ok: true })
})

test('signing - a change to any covered field breaks the signature', () => {
  const s = sign(FULL, ops.privateKey)
  for (const k of Object.keys(CHANGED) as (keyof SignedFields)[]) {
    const changed = { ...FULL, [k]: CHANGED[k] } as SignedFields
    assert.equal(verify(changed, s, ops.publicKey), { ok: false, reason: 'bad_signature' }, `changing ${k}`)
  }
})

test('signing - removing a covered field, or adding one that was not signed, breaks the signature', () => {
  const full = sign(FULL, ops.privateKey)
  const bare: SignedFields = { id: FULL.id, fromNode: FULL.fromNode, method: FULL.method }
  const bareSig = sign(bare, ops.privateKey)
  for (const k of OPTIONAL) {
    const without = { ...FULL }
    delete without[k]
    assert.equal(verify(without, full, ops.publicKey), { ok: false, reason: 'bad_signature' }, `removing ${k}`)
    assert.equal(verify({ ...bare, [k]: FULL[k] } as SignedFields, bareSig, ops.publicKey), { ok: false, reason: 'bad_signature' }, `adding ${k}`)
  }
  // Absent and empty are different messages.
  assert.equal(verify({ ...bare, methodArgs: [] }, bareSig, ops.publicKey), { ok: false, reason: 'bad_signature' })
  assert.equal(verify({ ...bare, data: '' }, bareSig, ops.publicKey), { ok: false, reason: 'bad_signature' })
})

test('signing - a value cannot move between fields or list items without breaking the signature', () => {
  const a: SignedFields = { id: 'i', fromNode: 'central', method: 'cli.run', methodArgs: ['rm', '-rf /tmp/x'] }
  const s = sign(a, ops.privateKey)
  assert.not.ok(verify({ ...a, methodArgs: ['rm', '-rf', '/tmp/x'] }, s, ops.publicKey).ok)
  assert.not.ok(verify({ ...a, methodArgs: ['rm -rf /tmp/x'] }, s, ops.publicKey).ok)
  const b: SignedFields = { id: 'i', fromNode: 'central', method: 'cli.run', toNode: 'ship1' }
  assert.not.ok(verify({ id: 'i', fromNode: 'central', method: 'cli.run', selector: 'ship1' }, sign(b, ops.privateKey), ops.publicKey).ok)
  const c: SignedFields = { id: 'i', fromNode: 'central', method: 'x', replyMethodArgs: ['a'] }
  assert.not.ok(verify({ id: 'i', fromNode: 'central', method: 'x', methodArgs: ['a'] }, sign(c, ops.privateKey), ops.publicKey).ok)
})

test('signing - another key, a forged fingerprint or a damaged signature does not verify', () => {
  const s = sign(FULL, ops.privateKey)
  const other = generateKeyPair()
  assert.equal(verify(FULL, s, other.publicKey), { ok: false, reason: 'key_mismatch' })
  // Another key's signature that claims ops's fingerprint: checked with ops's key, it fails.
  const forged = { ...sign(FULL, other.privateKey), keyFingerprint: s.keyFingerprint }
  assert.equal(verify(FULL, forged, ops.publicKey), { ok: false, reason: 'bad_signature' })
  const bytes = Buffer.from(s.sig, 'base64')
  bytes[10] = bytes[10]! ^ 1
  assert.equal(verify(FULL, { ...s, sig: bytes.toString('base64') }, ops.publicKey), { ok: false, reason: 'bad_signature' })
  assert.equal(verify(FULL, { ...s, sig: s.sig.slice(0, 40) }, ops.publicKey), { ok: false, reason: 'bad_signature' })
  assert.equal(verify(FULL, { ...s, sig: 'not base64!' }, ops.publicKey), { ok: false, reason: 'bad_signature' })
})

test('signing - the fingerprint is inside the signed bytes: the same fields under another fingerprint differ', () => {
  assert.is.not(canonicalBytes(FULL, 'SHA256:0000000000000000').toString(), canonicalBytes(FULL, 'SHA256:0000000000000001').toString())
})

test('signing - the encoding does not depend on how the fields were built', () => {
  const fp = fingerprint(ops.publicKey)
  const reordered = Object.fromEntries(Object.entries(FULL).reverse()) as unknown as SignedFields
  const op = { opArg: { args: ['a'], method: 'file.tail' }, opCmd: 'startProc' }
  assert.equal(canonicalBytes({ ...reordered, operation: op }, fp), canonicalBytes(FULL, fp))
  // data: a string and its UTF-8 bytes are the same data.
  const text: SignedFields = { id: 'i', fromNode: 'central', method: 'x', data: 'héllo' }
  assert.equal(verify({ ...text, data: new TextEncoder().encode('héllo') }, sign(text, ops.privateKey), ops.publicKey), { ok: true })
  // The data is covered by its SHA-256, not carried in the bytes.
  const big = crypto.randomBytes(100_000)
  assert.ok(canonicalBytes({ ...text, data: big }, fp).length < 1000)
})

test('signing - fields outside the signature (how the message travels) do not break it', () => {
  const s = sign(FULL, ops.privateKey)
  const travelled = { ...FULL, ackTimeout: 9, retries: 2, ttl: 60, createdAt: 5 } as SignedFields
  assert.equal(verify(travelled, s, ops.publicKey), { ok: true })
})

test('signing - an operation key named __proto__ is data like any other', () => {
  const a: SignedFields = { id: 'i', fromNode: 'central', method: 'op.start', operation: JSON.parse('{"opCmd":"startProc","opArg":{"__proto__":{"x":1}}}') as NonNullable<SignedFields['operation']> }
  const b: SignedFields = { ...a, operation: { opCmd: 'startProc', opArg: {} } }
  assert.not.ok(verify(b, sign(a, ops.privateKey), ops.publicKey).ok)
})


test('signing - a batch signs exactly the documented tree: leaves 0x00 ‖ canonical bytes, nodes 0x01 ‖ left ‖ right, root under its tag', () => {
  // Worked out here with createHash, apart from src/signing.ts's faster hashing: the bytes signed must be these.
  const h = (...parts: (Buffer | string)[]): Buffer => { const x = crypto.createHash('sha256'); for (const p of parts) x.update(p); return x.digest() }
  const envs: Envelope[] = Array.from({ length: 3 }, (_, i) => ({ id: `01JB000000000000000000000${i}`, fromNode: 'central', toNode: 'ship1', method: 'cli.run', methodArgs: ['echo', String(i)], data: 'héllo', createdAt: 1, expiresAt: 2 }))
  signEnvelopes(envs, ops.privateKey)
  const fp = fingerprint(ops.publicKey)
  const leaves = envs.map((e) => h(Buffer.from([0]), canonicalBytes(envelopeFields(e), fp)))
  // Three leaves: the first two pair up; the third goes up as it is.
  const root = h(Buffer.from([1]), h(Buffer.from([1]), leaves[0]!, leaves[1]!), leaves[2]!)
  assert.ok(crypto.verify(null, Buffer.concat([Buffer.from('outpost-sig-root/1\n'), root]), ops.publicKey, Buffer.from(envs[0]!.sig!, 'base64')))
  assert.equal(Buffer.from(envs[0]!.sigPath!, 'base64'), Buffer.concat([Buffer.from([1]), leaves[1]!, Buffer.from([1]), leaves[2]!]))
  assert.equal(Buffer.from(envs[2]!.sigPath!, 'base64'), Buffer.concat([Buffer.from([0]), h(Buffer.from([1]), leaves[0]!, leaves[1]!)]))
  // The data is covered by its SHA-256 (of its UTF-8 bytes) inside the canonical bytes.
  assert.ok(canonicalBytes(envelopeFields(envs[0]!), fp).toString().includes(h(Buffer.from('héllo', 'utf8')).toString('hex')))
  for (const e of envs) assert.equal(verifyEnvelope(e, ops.publicKey), { ok: true })
})

test.run()
