/**
 * Signatures over what a message makes happen: a canonical encoding of every field that decides
 * what runs and where, signed with an ed25519 key (src/keys.ts). Not yet used on the message
 * path: signEnvelope() at the submitting node or the CLI (send --key, api.signingKey); the
 * receiver's check is src/sign-check.ts.
 *
 *   fields ─▶ canonicalBytes (fixed order, data by its SHA-256, the key's fingerprint) ─▶ ed25519
 *
 * The encoding is a JSON array in a fixed order: a version tag, then one slot per field, null
 * when the field is absent. An array has no key order to disagree on, and JSON.stringify writes
 * strings, whole numbers and lists of strings one way only; the one free-form field
 * (`operation`) is written with its keys sorted. Fields outside the signature (ackTimeout,
 * retries, ttl, createdAt …) change how a message travels, not what it does.
 */
import crypto, { type KeyObject } from 'node:crypto'
import { fingerprint } from './keys'
import type { Envelope } from './wire/envelope'

/** Names this encoding; a later one gets another tag, so no bytes mean two things. */
const TAG = 'outpost-sig/1'

/** The fields a signature covers. */
export interface SignedFields {
  id: string
  fromNode: string
  /** One receiver; or `selector`, the nodes chosen by label when fanned out by central. */
  toNode?: string
  selector?: string
  method: string
  methodArgs?: readonly string[]
  /** Covered by its SHA-256; a string counts as its UTF-8 bytes. */
  data?: Uint8Array | string
  replyMethod?: string
  replyMethodArgs?: readonly string[]
  methodTimeout?: number
  /** Epoch milliseconds outside which the message must not run. */
  notBefore?: number
  expiresAt?: number
  /** Where a reply file is written on the reply's receiver. */
  directory?: string
  fileName?: string
  /** steward's op command (`{ opCmd, opArg }`): decides what op.* does. */
  operation?: { opCmd: string; opArg?: unknown }
}

/** A signature and the fingerprint of the key that made it (`SHA256:<16 hex>`). */
export interface Signature {
  keyFingerprint: string
  /** base64 of the 64-byte ed25519 signature. */
  sig: string
}

export type Verdict = { ok: true } | { ok: false; reason: 'key_mismatch' | 'bad_signature' }

/** The bytes that are signed: the fields in their fixed order, and the signing key's fingerprint. */
export function canonicalBytes(f: SignedFields, keyFingerprint: string): Buffer {
  const slot = <T>(v: T | undefined): T | null => (v === undefined ? null : v)
  const dataHash = f.data === undefined ? null : crypto.createHash('sha256').update(typeof f.data === 'string' ? Buffer.from(f.data, 'utf8') : f.data).digest('hex')
  const parts = [
    TAG, f.id, f.fromNode, slot(f.toNode), slot(f.selector), f.method, slot(f.methodArgs), dataHash,
    slot(f.replyMethod), slot(f.replyMethodArgs), slot(f.methodTimeout), slot(f.notBefore), slot(f.expiresAt),
    slot(f.directory), slot(f.fileName), f.operation === undefined ? null : sortKeys(f.operation), keyFingerprint,
  ]
  return Buffer.from(JSON.stringify(parts), 'utf8')
}

/** Sign `f` with an ed25519 private key. */
export function sign(f: SignedFields, privateKey: KeyObject): Signature {
  const keyFingerprint = fingerprint(crypto.createPublicKey(privateKey))
  return { keyFingerprint, sig: crypto.sign(null, canonicalBytes(f, keyFingerprint), privateKey).toString('base64') }
}

/**
 * Whether `signature` is `publicKey`'s over exactly these fields. A signature that names
 * another key's fingerprint is refused before any check (key_mismatch).
 */
export function verify(f: SignedFields, signature: Signature, publicKey: KeyObject): Verdict {
  const keyFingerprint = fingerprint(publicKey)
  if (signature.keyFingerprint !== keyFingerprint) return { ok: false, reason: 'key_mismatch' }
  const sig = Buffer.from(signature.sig, 'base64')
  // ed25519 signatures are 64 bytes; anything else (or base64 that is not) cannot verify.
  if (sig.length !== 64 || sig.toString('base64') !== signature.sig) return { ok: false, reason: 'bad_signature' }
  return crypto.verify(null, canonicalBytes(f, keyFingerprint), publicKey, sig) ? { ok: true } : { ok: false, reason: 'bad_signature' }
}

/** A JSON value with every object's keys sorted, so equal values encode alike. */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys)
  if (v === null || typeof v !== 'object') return v
  const out: Record<string, unknown> = {}
  // defineProperty: a key named __proto__ stays a key, not the object's prototype.
  for (const k of Object.keys(v).sort()) Object.defineProperty(out, k, { value: sortKeys((v as Record<string, unknown>)[k]), enumerable: true })
  return out
}

/** The signed fields of an envelope (a draft stamped with its id and receiver). */
export function envelopeFields(env: Envelope): SignedFields {
  const f: SignedFields = { id: env.id, fromNode: env.fromNode, toNode: env.toNode, method: env.method }
  if (env.selector !== undefined) f.selector = env.selector
  if (env.methodArgs !== undefined) f.methodArgs = env.methodArgs
  if (env.data !== undefined) f.data = env.data
  if (env.replyMethod !== undefined) f.replyMethod = env.replyMethod
  if (env.replyMethodArgs !== undefined) f.replyMethodArgs = env.replyMethodArgs
  if (env.methodTimeout !== undefined) f.methodTimeout = env.methodTimeout
  if (env.notBefore !== undefined) f.notBefore = env.notBefore
  if (env.expiresAt !== undefined) f.expiresAt = env.expiresAt
  if (env.directory !== undefined) f.directory = env.directory
  if (env.fileName !== undefined) f.fileName = env.fileName
  if (env.operation !== undefined) f.operation = env.operation
  return f
}

/** The reply slots a signature of a reply also covers: what it says happened. */
export function replyFields(env: Envelope): SignedFields {
  // A reply's outcome (inReplyTo, exitCode, error, stderr, seq, final) rides in the free-form slot.
  const outcome: { opCmd: string; opArg?: unknown } = {
    opCmd: 'reply',
    opArg: {
      inReplyTo: env.inReplyTo ?? null, exitCode: env.exitCode ?? null, error: env.error ?? null, seq: env.seq ?? null, final: env.final ?? null,
      stderr: env.stderr === undefined ? null : crypto.createHash('sha256').update(typeof env.stderr === 'string' ? Buffer.from(env.stderr, 'utf8') : env.stderr).digest('hex'),
    },
  }
  return { ...envelopeFields(env), operation: outcome }
}

/** Sign an envelope in place (keyFingerprint and sig set), as a request or as a reply. */
export function signEnvelope(env: Envelope, privateKey: KeyObject, keyFingerprint?: string): Envelope {
  const fields = env.inReplyTo !== undefined ? replyFields(env) : envelopeFields(env)
  const fp = keyFingerprint ?? fingerprint(crypto.createPublicKey(privateKey))
  env.keyFingerprint = fp
  env.sig = crypto.sign(null, canonicalBytes(fields, fp), privateKey).toString('base64')
  return env
}

/** Whether an envelope's signature is `publicKey`'s over its fields. */
export function verifyEnvelope(env: Envelope, publicKey: KeyObject): Verdict {
  if (env.keyFingerprint === undefined || env.sig === undefined) return { ok: false, reason: 'bad_signature' }
  return verify(env.inReplyTo !== undefined ? replyFields(env) : envelopeFields(env), { keyFingerprint: env.keyFingerprint, sig: env.sig }, publicKey)
}
