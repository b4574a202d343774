/**
 * Who waits for replies at this node: the local APIs watch the ids they submitted (submit.ts)
 * or every reply (the HTTP API's stream). The dispatcher hands each reply that arrives here to
 * `deliver`, which says whether anybody took it.
 */
import type { Envelope } from './wire/envelope'

type Listener = (env: Envelope) => void

export class ReplyWatch {
  private readonly byId = new Map<string, Set<Listener>>()
  private readonly all = new Set<Listener>()

  /** Call `fn` with every reply (and error reply) to any of `ids`; returns the unsubscribe. */
  watch(ids: string[], fn: Listener): () => void {
    for (const id of ids) {
      let set = this.byId.get(id)
      if (set === undefined) this.byId.set(id, (set = new Set()))
      set.add(fn)
    }
    return () => {
      for (const id of ids) {
        const set = this.byId.get(id)
        set?.delete(fn)
        if (set?.size === 0) this.byId.delete(id)
      }
    }
  }

  /** Call `fn` with every reply that arrives at this node; returns the unsubscribe. */
  watchAll(fn: Listener): () => void {
    this.all.add(fn)
    return () => { this.all.delete(fn) }
  }

  /** A reply arrived: hand it to its watchers; whether anybody took it. */
  deliver(env: Envelope): boolean {
    const waiting = this.byId.get(env.inReplyTo ?? '')
    // Counted first: a watcher that got its last reply unsubscribes while it is called.
    const handed = (waiting?.size ?? 0) > 0 || this.all.size > 0
    for (const w of waiting ?? []) w(env)
    for (const w of this.all) w(env)
    return handed
  }
}
