/**
 * Signing on the way out, with an operator key: `outpost send --key FILE` (src/cli/sign-drafts.ts)
 * and the socket and HTTP APIs with api.signingKey (signPrepared). The signature covers the
 * stamped envelope, one receiver each, so every copy of a fanned-out message is verifiable on
 * its own; a copy chosen by a selector also carries and signs that selector.
 *
 *   drafts ─ node.prepare (ids, fromNode, defaults) ─▶ Signer.sign each (expiresAt, keyFingerprint, sig)
 */
import type { KeyObject } from 'node:crypto'
import { fingerprint, readKeyFile } from './keys'
import { BATCH, signEnvelopes } from './signing'
import type { Envelope } from './wire/envelope'

/**
 * A signed message without an expiresAt of its own runs until its ttl has passed, plus this
 * much for the clocks of sender and receiver to disagree, but at most DEDUP_S − CLOCK_SKEW_S:
 * within the receivers' dedup window (24 h) a replay is a duplicate, past expiresAt it is
 * refused, so no replay falls between the two.
 */
export const CLOCK_SKEW_S = 300
const DEDUP_S = 24 * 3600

export class Signer {
  readonly fingerprint: string
  private readonly privateKey: KeyObject

  constructor(privateKey: KeyObject, publicKey: KeyObject) {
    this.privateKey = privateKey
    this.fingerprint = fingerprint(publicKey)
  }

  static fromFile(file: string): Signer {
    const pair = readKeyFile(file)
    return new Signer(pair.privateKey, pair.publicKey)
  }

  /**
   * Sign a stamped envelope in place, unless it is signed already (its submitter signed it).
   * `ttl` is the delivery default for an envelope without one.
   */
  sign(env: Envelope, now: number, ttl: number): Envelope {
    this.signAll([env], now, ttl)
    return env
  }

  /** Sign stamped envelopes in place, one signature per BATCH of them (src/signing.ts); those signed already are kept. */
  signAll(envs: readonly Envelope[], now: number, ttl: number): void {
    const todo = envs.filter((e) => e.sig === undefined)
    for (const e of todo) e.expiresAt ??= now + Math.min((e.ttl ?? ttl) + CLOCK_SKEW_S, DEDUP_S - CLOCK_SKEW_S) * 1000
    for (let i = 0; i < todo.length; i += BATCH) signEnvelopes(todo.slice(i, i + BATCH), this.privateKey, this.fingerprint)
  }
}

/** Signers by key file, read once (a changed file is read again after a restart). */
const byFile = new Map<string, Signer>()

/** The Signer of api.signingKey, or undefined when it is not set; key_invalid when it cannot be read. */
export function apiSigner(file: string | null): Signer | undefined {
  if (file === null) return undefined
  let s = byFile.get(file)
  if (s === undefined) {
    s = Signer.fromFile(file)
    byFile.set(file, s)
  }
  return s
}
