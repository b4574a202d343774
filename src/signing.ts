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
  return Buffer.from(canonicalText(f, keyFingerprint), 'utf8')
}

/** canonicalBytes as the string whose UTF-8 bytes they are (hashed as it is, without a copy). */
function canonicalText(f: SignedFields, keyFingerprint: string): string {
  const dataHash = f.data === undefined ? null : sha256hex(f.data)
  return JSON.stringify([
    TAG, f.id, f.fromNode, f.toNode ?? null, f.selector ?? null, f.method, f.methodArgs ?? null, dataHash,
    f.replyMethod ?? null, f.replyMethodArgs ?? null, f.methodTimeout ?? null, f.notBefore ?? null, f.expiresAt ?? null,
    f.directory ?? null, f.fileName ?? null, f.operation === undefined ? null : sortKeys(f.operation), keyFingerprint,
  ])
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
  const keyFingerprint = fingerprintOf(publicKey)
  if (signature.keyFingerprint !== keyFingerprint) return { ok: false, reason: 'key_mismatch' }
  const sig = Buffer.from(signature.sig, 'base64')
  // ed25519 signatures are 64 bytes; anything else (or base64 that is not) cannot verify.
  if (sig.length !== 64 || sig.toString('base64') !== signature.sig) return { ok: false, reason: 'bad_signature' }
  return crypto.verify(null, canonicalBytes(f, keyFingerprint), publicKey, sig) ? { ok: true } : { ok: false, reason: 'bad_signature' }
}

/** Fingerprints of the keys checked against, worked out once per key (an export and a hash each time otherwise). */
const FINGERPRINTS = new WeakMap<KeyObject, string>()

function fingerprintOf(key: KeyObject): string {
  let fp = FINGERPRINTS.get(key)
  if (fp === undefined) FINGERPRINTS.set(key, fp = fingerprint(key))
  return fp
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
      stderr: env.stderr === undefined ? null : sha256hex(env.stderr),
    },
  }
  return { ...envelopeFields(env), operation: outcome }
}

/*
 * Envelopes are signed in batches: one ed25519 signature over the root of a hash tree of the
 * batch's envelopes (each leaf the SHA-256 of its canonical bytes), and each envelope carries
 * the sibling hashes from its leaf to the root (sigPath). A receiver folds its envelope up to
 * the root and checks the signature once per batch (roots it has checked are remembered), so a
 * request of thousands of messages costs one signature and a few hashes each. One envelope
 * alone is a batch of one: no sigPath, the root is its leaf.
 */
const ROOT_TAG = Buffer.from('outpost-sig-root/1\n')
const LEAF = Buffer.from([0])
const INNER = Buffer.from([1])
/**
 * Envelopes per tree: 5 levels of path (220 characters), one signature check per 32 messages.
 * Larger batches check fewer signatures but carry longer paths in every message: 16 → 32 cut
 * the check at the receiver by a quarter for 44 bytes more per message; 64 saved little more
 * (docs/performance.md).
 */
export const BATCH = 32
/** Longest path a receiver folds (a batch of up to 2^16). */
const MAX_PATH = 16

/*
 * SHA-256 in one call where Node has crypto.hash (20.12 on): a Hash object costs about as much
 * as the hashing of a message's few hundred bytes, and a message takes three to six of them.
 * Node 20.11 has none, and makes one each time. The bytes hashed are the same either way.
 */
const oneShot = typeof (crypto as { hash?: unknown }).hash === 'function' ? crypto.hash : undefined

/** SHA-256 of bytes, or of a string's UTF-8 bytes, in hex. */
function sha256hex(data: Uint8Array | string): string {
  if (oneShot !== undefined) return oneShot('sha256', data, 'hex')
  return (typeof data === 'string' ? crypto.createHash('sha256').update(data, 'utf8') : crypto.createHash('sha256').update(data)).digest('hex')
}

/** An inner node: SHA-256 of INNER, left, right (65 bytes, put together in one buffer reused). */
const PAIR = Buffer.alloc(65, INNER)
function inner(left: Buffer, right: Buffer): Buffer {
  if (oneShot === undefined) return crypto.createHash('sha256').update(INNER).update(left).update(right).digest()
  left.copy(PAIR, 1)
  right.copy(PAIR, 33)
  return oneShot('sha256', PAIR, 'buffer')
}

/** A leaf: SHA-256 of LEAF (a zero byte, which is also the UTF-8 of "\0") and the canonical bytes. */
function leafOf(env: Envelope, fp: string): Buffer {
  const text = canonicalText(env.inReplyTo !== undefined ? replyFields(env) : envelopeFields(env), fp)
  if (oneShot !== undefined) return oneShot('sha256', `\0${text}`, 'buffer')
  return crypto.createHash('sha256').update(LEAF).update(text, 'utf8').digest()
}

/** One step of a path: a side byte (1: the sibling is on the right; 0: on the left) and the sibling's hash. */
const STEP = 33

/**
 * Sign envelopes in place with one signature (keyFingerprint, sig and, for more than one,
 * sigPath set): requests, or a reply. At most BATCH at a time (Signer cuts larger lists).
 */
export function signEnvelopes(envs: readonly Envelope[], privateKey: KeyObject, keyFingerprint?: string): void {
  if (envs.length === 0) return
  const fp = keyFingerprint ?? fingerprintOf(crypto.createPublicKey(privateKey))
  for (const e of envs) e.keyFingerprint = fp
  // levels[0] the leaves; a node at i goes up to i >> 1; an odd one out goes up as it is.
  const levels: Buffer[][] = [envs.map((e) => leafOf(e, fp))]
  for (let level = levels[0]!; level.length > 1; ) {
    const next: Buffer[] = []
    for (let i = 0; i < level.length; i += 2) next.push(i + 1 < level.length ? inner(level[i]!, level[i + 1]!) : level[i]!)
    levels.push(next)
    level = next
  }
  const sig = crypto.sign(null, Buffer.concat([ROOT_TAG, levels[levels.length - 1]![0]!]), privateKey).toString('base64')
  const path = Buffer.allocUnsafe(STEP * (levels.length - 1))
  envs.forEach((e, leaf) => {
    e.sig = sig
    let at = 0
    for (let l = 0, i = leaf; l < levels.length - 1; l++, i >>= 1) {
      const sibling = levels[l]![i ^ 1]
      if (sibling === undefined) continue
      path[at] = i & 1 ? 0 : 1
      sibling.copy(path, at + 1)
      at += STEP
    }
    if (at > 0) e.sigPath = path.toString('base64', 0, at)
  })
}

/** Sign one envelope in place, as a request or as a reply. */
export function signEnvelope(env: Envelope, privateKey: KeyObject, keyFingerprint?: string): Envelope {
  signEnvelopes([env], privateKey, keyFingerprint)
  return env
}

/**
 * Tree nodes known to lie under a root whose signature was checked, per key (node hash → that
 * root's signature): the nodes a checked envelope folded through and the siblings its path
 * gave, all of which lead to that root. Folding stops at the first known node, so after the
 * first envelope of a batch most cost their leaf and a hash or none. A changed field changes
 * the leaf, which then folds to a root no signature was checked for (LEAF and INNER prefixes
 * keep a leaf from passing for an inner node). Bounded.
 */
const CHECKED = new WeakMap<KeyObject, Generations>()
/** Nodes per generation: the newer one is kept whole when it turns over, so 4096 to 8192 are known. */
const CHECKED_MAX = 4096

/**
 * Two maps, the newer taking what is added; when it is full it becomes the older (the older is
 * dropped). Dropping the oldest entry one at a time instead walks the Map's deleted slots on
 * every insert, which cost more than the hashing it saves.
 */
class Generations {
  private young = new Map<string, string>()
  private old = new Map<string, string>()
  get(k: string): string | undefined { return this.young.get(k) ?? this.old.get(k) }
  set(k: string, v: string): void {
    if (this.young.size >= CHECKED_MAX) { this.old = this.young; this.young = new Map() }
    this.young.set(k, v)
  }
}

/** Whether an envelope's signature is `publicKey`'s over its fields (and its batch's root). */
export function verifyEnvelope(env: Envelope, publicKey: KeyObject): Verdict {
  if (env.keyFingerprint === undefined || env.sig === undefined) return { ok: false, reason: 'bad_signature' }
  const fp = fingerprintOf(publicKey)
  if (env.keyFingerprint !== fp) return { ok: false, reason: 'key_mismatch' }
  let checked = CHECKED.get(publicKey)
  if (checked === undefined) CHECKED.set(publicKey, checked = new Generations())
  let h = leafOf(env, fp)
  let node = h.toString('latin1')
  if (checked.get(node) === env.sig) return { ok: true }
  // The path is not signed: it only has to lead this leaf to a signed root, whatever its spelling.
  const path = env.sigPath === undefined ? EMPTY : Buffer.from(env.sigPath, 'base64')
  if (env.sigPath !== undefined && (path.length === 0 || path.length % STEP !== 0 || path.length > STEP * MAX_PATH)) return { ok: false, reason: 'bad_signature' }
  const seen = [node]
  for (let at = 0; at < path.length; at += STEP) {
    const sibling = path.subarray(at + 1, at + STEP)
    if (path[at] === 1) h = inner(h, sibling)
    else if (path[at] === 0) h = inner(sibling, h)
    else return { ok: false, reason: 'bad_signature' }
    node = h.toString('latin1')
    // Known under a checked root, signed with this same signature: the rest of the path is what it was.
    if (checked.get(node) === env.sig) return remember(checked, seen, env.sig)
    seen.push(sibling.toString('latin1'), node)
  }
  const sig = Buffer.from(env.sig, 'base64')
  if (sig.length !== 64 || sig.toString('base64') !== env.sig) return { ok: false, reason: 'bad_signature' }
  if (!crypto.verify(null, Buffer.concat([ROOT_TAG, h]), publicKey, sig)) return { ok: false, reason: 'bad_signature' }
  return remember(checked, seen, env.sig)
}

const EMPTY = Buffer.alloc(0)

/** Note tree nodes as lying under the root `sig` signed (checked just now). */
function remember(checked: Generations, nodes: readonly string[], sig: string): Verdict {
  for (const n of nodes) checked.set(n, sig)
  return { ok: true }
}
