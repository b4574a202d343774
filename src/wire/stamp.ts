/**
 * Stamping a draft (envelope.ts): its id, fromNode and createdAt, and the fan-out of toNodes
 * into one envelope per node, with the node's delivery defaults where the draft has none.
 */
import type { Envelope, MessageDraft } from './envelope'
import { ulid as defaultUlid } from './ulid'

export interface StampContext {
  fromNode: string
  now?: () => number
  ulid?: () => string
  /** Filled in where the draft leaves them out (the node's delivery defaults). */
  defaults?: { ackTimeout: number; retries: number; ttl: number; replyMethod: string }
}

/**
 * Give a draft its id, fromNode and createdAt; fan toNodes out into one envelope per node.
 * Fan-out copies get ids of their own, so each has its own outbox entry and reply.
 */
export function stamp(draft: MessageDraft, ctx: StampContext): Envelope[] {
  const now = ctx.now ?? Date.now
  const makeId = ctx.ulid ?? defaultUlid
  const { toNodes, toNode, id, createdAt } = draft
  const targets = toNodes === undefined ? (toNode !== undefined ? [toNode] : []) : [...new Set([...(toNode !== undefined ? [toNode] : []), ...toNodes])]
  const at = createdAt ?? now()
  return targets.map((node, i) => {
    // A copy without the addressing fields (a rest pattern does the same, several times slower).
    const env: Record<string, unknown> = {}
    for (const k in draft) if (k !== 'toNodes' && k !== 'toNode' && k !== 'id' && k !== 'createdAt') env[k] = (draft as Record<string, unknown>)[k]
    env.id = i === 0 && id !== undefined ? id : makeId()
    env.toNode = node
    env.fromNode = ctx.fromNode
    env.createdAt = at
    const d = ctx.defaults
    if (d !== undefined) {
      env.ackTimeout ??= d.ackTimeout
      env.retries ??= d.retries
      env.ttl ??= d.ttl
      env.replyMethod ??= d.replyMethod
    }
    return env as unknown as Envelope
  })
}
