/**
 * After a restart: the replies a crash caught while their reply method ran (a reply is its
 * request's only outcome, SPEC §1), and which of them already landed. Each reply method is asked
 * once for all of its replies, before any runs again: replies to one file land together (a
 * turn's appends are one write, methods/reply-file.ts), so one reply alone cannot tell, and a
 * run again would change what the next one finds.
 */
import type { Method, MethodContext } from './method'
import type { Envelope } from './wire/envelope'

/** Inbox ids of the `caught` replies (in the order they came) whose effect is in place. */
export async function landedReplies(caught: readonly { inboxId: string; env: Envelope }[], methods: ReadonlyMap<string, Method>, ctxOf: (env: Envelope) => MethodContext): Promise<Set<string>> {
  const byMethod = new Map<Method, { inboxId: string; ctx: MethodContext }[]>()
  for (const { inboxId, env } of caught) {
    const m = methods.get(env.method)
    if (m?.kind !== 'unary' || (m.landed === undefined && m.landedAll === undefined)) continue
    const list = byMethod.get(m)
    if (list === undefined) byMethod.set(m, [{ inboxId, ctx: ctxOf(env) }])
    else list.push({ inboxId, ctx: ctxOf(env) })
  }
  const landed = new Set<string>()
  for (const [m, list] of byMethod) {
    if (m.kind !== 'unary') continue
    const ctxs = list.map((x) => x.ctx)
    const says = m.landedAll !== undefined
      ? await m.landedAll(ctxs).catch(() => ctxs.map(() => false))
      : await Promise.all(ctxs.map((ctx) => m.landed!(ctx).catch(() => false)))
    for (const [i, x] of list.entries()) if (says[i] === true) landed.add(x.inboxId)
  }
  return landed
}
