/**
 * ed25519 key pairs: the operator's (`outpost keys gen`) and each node's own (<dataDir>/node.key,
 * made at first start). A private key file is PKCS#8 PEM, mode 0600, written atomically. A
 * public key is shown and configured as `ed25519:<base64 of the raw 32 bytes>`; its fingerprint
 * is `SHA256:` and the first 16 hex digits of the SHA-256 of those 32 bytes.
 */
import crypto, { type KeyObject } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { OutpostError } from './errors'
import { writeFileAtomic } from './lib/atomic-file'

export const PUBLIC_KEY_PREFIX = 'ed25519:'
/** The DER prefix of an ed25519 SubjectPublicKeyInfo; the raw key follows it. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

export interface KeyPair {
  privateKey: KeyObject
  publicKey: KeyObject
}

export function generateKeyPair(): KeyPair {
  return crypto.generateKeyPairSync('ed25519')
}

/** The 32 raw bytes of an ed25519 public key. */
export function rawPublicKey(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' })
  return der.subarray(SPKI_PREFIX.length)
}

/** `ed25519:<base64>`: the form `keys show` prints and config takes. */
export function publicKeyText(key: KeyObject): string {
  return PUBLIC_KEY_PREFIX + rawPublicKey(key).toString('base64')
}

/** `SHA256:<16 hex>` of a public key, given as a KeyObject or in its `ed25519:` text form. */
export function fingerprint(key: KeyObject | string): string {
  const raw = typeof key === 'string' ? rawPublicKey(parsePublicKey(key)) : rawPublicKey(key)
  return 'SHA256:' + crypto.createHash('sha256').update(raw).digest('hex').slice(0, 16)
}

/** Read `ed25519:<base64>`; anything else is key_invalid (`what` names where it came from). */
export function parsePublicKey(text: string, what = 'public key'): KeyObject {
  const raw = text.startsWith(PUBLIC_KEY_PREFIX) ? Buffer.from(text.slice(PUBLIC_KEY_PREFIX.length), 'base64') : undefined
  if (raw === undefined || raw.length !== 32 || raw.toString('base64') !== text.slice(PUBLIC_KEY_PREFIX.length)) {
    throw new OutpostError('key_invalid', `${what} must be ed25519: followed by the base64 of 32 bytes (as \`outpost keys show\` prints it); got ${JSON.stringify(text.slice(0, 60))}`)
  }
  return crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
}

/** Write a private key file (0600, atomically); an existing file is kept unless `force`. */
export function writeKeyFile(file: string, pair: KeyPair, force = false): void {
  let isDir = false
  try { isDir = fs.statSync(file).isDirectory() } catch { /* not there: written below */ }
  if (isDir) throw new OutpostError('usage', `${file} is a directory: name the key file to write, e.g. --out ${path.join(file, 'operator.key')}`)
  if (!force && fs.existsSync(file)) throw new OutpostError('key_exists', `${file} exists already; use --force to overwrite it (its old key is lost then)`)
  const pem = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  try {
    writeFileAtomic(file, pem, 0o600)
  } catch (err) {
    throw new OutpostError('io', `cannot write the key file ${file}: ${(err as Error).message}`, { cause: err })
  }
}

/** Read a private key file; a missing, unreadable or non-ed25519 file is key_invalid. */
export function readKeyFile(file: string): KeyPair {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message
    throw new OutpostError('key_invalid', `cannot read the key file ${file}: ${why}`, { cause: err })
  }
  let privateKey: KeyObject
  try {
    privateKey = crypto.createPrivateKey(text)
  } catch (err) {
    throw new OutpostError('key_invalid', `${file} is not a private key file (PEM, as \`outpost keys gen\` writes)`, { cause: err })
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new OutpostError('key_invalid', `${file} holds a ${privateKey.asymmetricKeyType ?? 'unknown'} key; outpost keys are ed25519`)
  return { privateKey, publicKey: crypto.createPublicKey(privateKey) }
}

/**
 * This node's own key pair, <dataDir>/node.key: read, or made at first start. A file that is
 * there but unreadable is an error, never replaced (a new key would be refused by central).
 */
export function nodeKey(dataDir: string): KeyPair & { created: boolean } {
  const file = path.join(dataDir, 'node.key')
  if (fs.existsSync(file)) return { ...readKeyFile(file), created: false }
  const pair = generateKeyPair()
  writeKeyFile(file, pair)
  return { ...pair, created: true }
}
