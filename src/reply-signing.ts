/**
 * Replies signed by the node that answers, with its own key (<dataDir>/node.key), and checked by
 * central against the key it pinned for that node (node-list.ts): a hub or broker cannot make
 * central believe a command ran, or what it printed.
 *
 *   dispatcher replyEnvelope ─ signReply (node key) ─▶ outbox ─▶ … ─▶ central's dispatcher
 *     ─ replyRefusal: pinned key for fromNode? ─ none ─▶ taken (not pinned yet: first sight)
 *                     unsigned, and its node never said it signs replies (older) ─▶ taken
 *                                              └ verifies? ─ no ─▶ reply_forged: logged, counted, dropped
 */
import type { KeyObject } from 'node:crypto'
import { OutpostError } from './errors'
import { fingerprint, parsePublicKey } from './keys'
import { signEnvelope, verifyEnvelope } from './signing'
import type { Envelope } from './wire/envelope'

export interface ReplySigning {
  /** Sign a reply this node built. */
  signReply: (env: Envelope) => void
  /** Why a reply that came from another node is not taken, or undefined. */
  replyRefusal: (env: Envelope) => OutpostError | undefined
}

/**
 * `pinned`: the key central pinned for a node, and whether that node said it signs its replies
 * (undefined on nodes that keep no list, and for a node not pinned yet). An unsigned reply from
 * a node that never said so (an older outpost) is taken; a signed one is checked all the same.
 */
export function replySigning(privateKey: KeyObject, publicKey: KeyObject, pinned: (node: string) => { publicKey: string; strict: boolean } | undefined): ReplySigning {
  const own = fingerprint(publicKey)
  const keys = new Map<string, KeyObject | null>()
  const keyOf = (text: string): KeyObject | null => {
    let k = keys.get(text)
    if (k === undefined) {
      try { k = parsePublicKey(text) } catch { k = null }
      keys.set(text, k)
    }
    return k
  }
  return {
    signReply: (env) => { signEnvelope(env, privateKey, own) },
    replyRefusal: (env) => {
      const p = pinned(env.fromNode)
      if (p === undefined || (env.sig === undefined && !p.strict)) return undefined
      const text = p.publicKey
      const key = keyOf(text)
      if (key !== null && verifyEnvelope(env, key).ok) return undefined
      const what = env.sig === undefined ? 'it is not signed' : env.keyFingerprint === fingerprint(text) ? 'its signature does not match its content' : `it is signed by ${env.keyFingerprint ?? 'no key'}`
      return new OutpostError('reply_forged', `refused a reply claiming to come from ${env.fromNode} to ${env.inReplyTo ?? '?'}: ${what}, and ${env.fromNode}'s pinned key is ${fingerprint(text)}; it was dropped, not taken as the reply`)
    },
  }
}
