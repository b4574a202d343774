import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { fingerprint, generateKeyPair, nodeKey, parsePublicKey, publicKeyText, rawPublicKey, readKeyFile, writeKeyFile } from '../src/keys'
import { throwsCode } from './helpers'
import { tmpDir } from './fixtures/ports'

test('keys - a public key is ed25519: and the base64 of its raw 32 bytes, and parses back to the same key', () => {
  const pair = generateKeyPair()
  const text = publicKeyText(pair.publicKey)
  assert.match(text, /^ed25519:[A-Za-z0-9+/]{43}=$/)
  // The raw bytes are what node:crypto's own JWK export calls x.
  const x = pair.publicKey.export({ format: 'jwk' }).x!
  assert.is(Buffer.from(text.slice(8), 'base64').toString('base64url'), x)
  assert.equal(rawPublicKey(parsePublicKey(text)), rawPublicKey(pair.publicKey))
})

test('keys - the fingerprint is SHA256: and the first 16 hex digits of the sha256 of the raw key', () => {
  const pair = generateKeyPair()
  const want = 'SHA256:' + crypto.createHash('sha256').update(rawPublicKey(pair.publicKey)).digest('hex').slice(0, 16)
  assert.is(fingerprint(pair.publicKey), want)
  assert.is(fingerprint(publicKeyText(pair.publicKey)), want)
  assert.is.not(fingerprint(generateKeyPair().publicKey), want)
})

test('keys - a public key in any other form is key_invalid', () => {
  const good = publicKeyText(generateKeyPair().publicKey)
  throwsCode(() => parsePublicKey(good.slice(8)), 'key_invalid', 'ed25519:')
  throwsCode(() => parsePublicKey('ed25519:' + Buffer.alloc(31).toString('base64')), 'key_invalid')
  throwsCode(() => parsePublicKey('ed25519:not base64!'), 'key_invalid')
  throwsCode(() => parsePublicKey('rsa:' + good.slice(8)), 'key_invalid')
})

test('keys - a key file is written with mode 0600, read back to the same pair, and not overwritten without force', () => {
  const file = path.join(tmpDir(), 'sub', 'op.key')
  const pair = generateKeyPair()
  writeKeyFile(file, pair)
  assert.is(fs.statSync(file).mode & 0o777, 0o600)
  assert.match(fs.readFileSync(file, 'utf8'), /^-----BEGIN PRIVATE KEY-----/)
  assert.is(publicKeyText(readKeyFile(file).publicKey), publicKeyText(pair.publicKey))
  throwsCode(() => writeKeyFile(file, generateKeyPair()), 'key_exists', file, '--force')
  assert.is(publicKeyText(readKeyFile(file).publicKey), publicKeyText(pair.publicKey))
  const other = generateKeyPair()
  writeKeyFile(file, other, true)
  assert.is(publicKeyText(readKeyFile(file).publicKey), publicKeyText(other.publicKey))
  assert.is(fs.statSync(file).mode & 0o777, 0o600)
  assert.equal(fs.readdirSync(path.dirname(file)), ['op.key'], 'no temporary file left')
})

test('keys - a missing file, a non-key file or a key of another type is key_invalid', () => {
  const dir = tmpDir()
  throwsCode(() => readKeyFile(path.join(dir, 'none.key')), 'key_invalid', 'no such file')
  fs.writeFileSync(path.join(dir, 'junk.key'), 'hello\n')
  throwsCode(() => readKeyFile(path.join(dir, 'junk.key')), 'key_invalid', 'not a private key file')
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  fs.writeFileSync(path.join(dir, 'rsa.key'), rsa)
  throwsCode(() => readKeyFile(path.join(dir, 'rsa.key')), 'key_invalid', 'rsa', 'ed25519')
})

test('keys - a node key is made once in the data dir (0600) and the same one is read after', () => {
  const dir = tmpDir()
  const first = nodeKey(dir)
  assert.ok(first.created)
  assert.is(fs.statSync(path.join(dir, 'node.key')).mode & 0o777, 0o600)
  const again = nodeKey(dir)
  assert.not.ok(again.created)
  assert.is(publicKeyText(again.publicKey), publicKeyText(first.publicKey))
  // A damaged node.key is an error, never silently replaced by a new key.
  fs.writeFileSync(path.join(dir, 'node.key'), 'garbage')
  throwsCode(() => nodeKey(dir), 'key_invalid')
  assert.is(fs.readFileSync(path.join(dir, 'node.key'), 'utf8'), 'garbage')
})

test.run()
