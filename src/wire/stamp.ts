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
  const out: Envelope[] = []
  stampInto(draft, ctx, out)
  return out
}

/** stamp(), the envelopes pushed onto `out` (a request's many drafts: no array each). */
export function stampInto(draft: MessageDraft, ctx: StampContext, out: Envelope[]): void {
  const now = ctx.now ?? Date.now
  const makeId = ctx.ulid ?? defaultUlid
  const { toNodes, toNode, id, createdAt } = draft
  const at = createdAt ?? now()
  // One receiver (the usual submit): no list of targets to build.
  if (toNodes === undefined) {
    if (toNode !== undefined) out.push(copy(draft, ctx, toNode, id !== undefined ? id : makeId(), at))
    return
  }
  const targets = [...new Set([...(toNode !== undefined ? [toNode] : []), ...toNodes])]
  for (const [i, node] of targets.entries()) out.push(copy(draft, ctx, node, i === 0 && id !== undefined ? id : makeId(), at))
}

/** The envelope for one receiver: the draft without its addressing fields, stamped. */
function copy(draft: MessageDraft, ctx: StampContext, node: string, id: string, at: number): Envelope {
  // A copy without the addressing fields (a rest pattern does the same, several times slower).
  const env: Record<string, unknown> = {}
  for (const k in draft) if (k !== 'toNodes' && k !== 'toNode' && k !== 'id' && k !== 'createdAt') env[k] = (draft as Record<string, unknown>)[k]
  env.id = id
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
}
