/**
 * The receiver's check of an operator's signature (src/signing.ts), made before the ACL and
 * before anything runs (admission.ts refusal()):
 *
 *   signed? ─ no ─▶ required for this method (security.requireSignatures)? ─▶ signature_required
 *     │ yes
 *     ▼
 *   key in security.trustedKeys? ─ no ─▶ key_not_allowed (when required; else read as unsigned)
 *   signature over the fields? ─ no ─▶ signature_invalid
 *   within notBefore … expiresAt? ─ no ─▶ signature_expired
 *   key trusted for this method (its methods patterns)? ─ no ─▶ key_not_allowed
 *
 * A replay of a signed message keeps its id, so the dedup set drops it as a duplicate; past the
 * dedup window its expiresAt refuses it.
 */
import type { KeyObject } from 'node:crypto'
import type { Config } from './config'
import { OutpostError } from './errors'
import { fingerprint, parsePublicKey } from './keys'
import { matches } from './lib/pattern'
import { verifyEnvelope } from './signing'
import type { Envelope } from './wire/envelope'

export interface TrustedKey {
  name: string
  publicKey: KeyObject
  methods: readonly string[]
}

type TrustedKeysConfig = Config['security']['trustedKeys']

/** Parsed keys by fingerprint, per config list (a reload gives a new list, so a new table). */
const tables = new WeakMap<TrustedKeysConfig, ReadonlyMap<string, TrustedKey>>()

/** security.trustedKeys by fingerprint (the config check has made sure each key parses). */
export function trustedKeys(config: Config): ReadonlyMap<string, TrustedKey> {
  const list = config.security.trustedKeys
  let table = tables.get(list)
  if (table === undefined) {
    const m = new Map<string, TrustedKey>()
    for (const k of list) {
      const publicKey = parsePublicKey(k.publicKey, `security.trustedKeys ${k.name}`)
      m.set(fingerprint(publicKey), { name: k.name, publicKey, methods: k.methods ?? ['*'] })
    }
    table = m
    tables.set(list, table)
  }
  return table
}

/**
 * Whether `method` must come signed here. `true` in the config is `['*']`, which covers every
 * method but the sinks (node.hello, error.log, reply.*: what nodes send by themselves); any
 * other pattern covers what it matches, sinks included.
 */
export function signatureRequired(config: Config, method: string, sink: boolean): boolean {
  return config.security.requireSignatures.some((p) => (p === '*' ? !sink : matches(p, method)))
}

/**
 * What the sender can do about an unsigned message. `send --key` signs what `send` submits;
 * a shell, a tunnel and a file transfer (`outpost shell`, `tunnel`, `cp`) are signed only with
 * the api.signingKey of the node that opens them: those commands take no --key; so are the
 * messages of a job, which central makes and signs as each node's turn comes.
 */
function howToSign(env: Envelope): string {
  if (/^(session\.open|tunnel\.|file\.)/.test(env.method)) return `set api.signingKey on ${env.fromNode} (outpost shell, tunnel and cp are signed with that key only; they take no --key)`
  // A job's messages are made and signed by central as each node's turn comes: send --key cannot sign them.
  if (env.replyMethod === 'reply.job') return `it is a job's: set api.signingKey on ${env.fromNode}, which signs each node's message of a job (send --key cannot sign a job)`
  return 'send it with --key FILE, or set api.signingKey on the submitting node'
}

/** Why this node will not run `env` for its signature, or undefined. */
export function signatureRefusal(env: Envelope, config: Config, self: string, now: number, sink: boolean): OutpostError | undefined {
  const required = signatureRequired(config, env.method, sink)
  if (env.sig === undefined || env.keyFingerprint === undefined) {
    if (!required) return undefined
    return new OutpostError('signature_required', `${self} runs ${env.method} only when an operator key signed it (security.requireSignatures); this message from ${env.fromNode} is not signed: ${howToSign(env)}`)
  }
  const key = trustedKeys(config).get(env.keyFingerprint)
  if (key === undefined) {
    if (!required) return undefined
    return new OutpostError('key_not_allowed', `${self} does not trust the key ${env.keyFingerprint} that signed this ${env.method} (it is not in security.trustedKeys)`)
  }
  const verdict = verifyEnvelope(env, key.publicKey)
  if (!verdict.ok) {
    return new OutpostError('signature_invalid', `the signature of ${env.method} ${env.id} by key ${key.name} (${env.keyFingerprint}) does not match the message: it was changed on its way (or signed for another node); nothing ran`)
  }
  if (env.expiresAt !== undefined && now > env.expiresAt) {
    return new OutpostError('signature_expired', `${env.method} ${env.id} was signed to run before ${new Date(env.expiresAt).toISOString()} (expiresAt); it is ${new Date(now).toISOString()} on ${self}`)
  }
  if (env.notBefore !== undefined && now < env.notBefore) {
    return new OutpostError('signature_expired', `${env.method} ${env.id} was signed to run from ${new Date(env.notBefore).toISOString()} (notBefore); it is ${new Date(now).toISOString()} on ${self}`)
  }
  if (!key.methods.some((p) => matches(p, env.method))) {
    return new OutpostError('key_not_allowed', `the key ${key.name} (${env.keyFingerprint}) may not call ${env.method} on ${self} (security.trustedKeys methods: ${key.methods.join(', ')})`)
  }
  return undefined
}

/** Keys that decide who may do what here: changed remotely only by a message signed for it. */
const GUARDED = ['trustedKeys', 'requireSignatures'] as const

/**
 * Why config.set / config.deploy / config.rollback (`method`) may not change security.trustedKeys
 * or security.requireSignatures as `next` would, or undefined. Such a change must come signed
 * by a key of the running config's trustedKeys allowed to call `method` (its signature was
 * checked before the method ran: signatureRefusal checks every message a trusted key signed).
 * A node that trusts no key and requires none has nothing to protect yet: its first keys come
 * as any config change does (methods.allow).
 */
export function securityChangeRefusal(current: Config, next: Config, env: Envelope, method: string, self: string): OutpostError | undefined {
  const changed = GUARDED.filter((k) => JSON.stringify(current.security[k]) !== JSON.stringify(next.security[k]))
  if (changed.length === 0) return undefined
  if (current.security.trustedKeys.length === 0 && current.security.requireSignatures.length === 0) return undefined
  const what = changed.map((k) => `security.${k}`).join(' and ')
  if (env.sig === undefined || env.keyFingerprint === undefined) {
    return new OutpostError('signature_required', `${method} would change ${what} on ${self}: that takes a message signed by a key of security.trustedKeys allowed to call ${method}, and this one is not signed; nothing was written`)
  }
  const key = trustedKeys(current).get(env.keyFingerprint)
  if (key === undefined || !key.methods.some((p) => matches(p, method))) {
    return new OutpostError('key_not_allowed', `${method} would change ${what} on ${self}: the key ${key?.name ?? env.keyFingerprint} that signed it is not trusted here for ${method}; nothing was written`)
  }
  return undefined
}

/** The guard a config method hands src/config/remote.ts: throws what securityChangeRefusal says. */
export function securityGuard(ctx: { config: Config; env: Envelope; node: string }, method: string): (next: Config) => void {
  return (next) => {
    const why = securityChangeRefusal(ctx.config, next, ctx.env, method, ctx.node)
    if (why) throw why
  }
}
