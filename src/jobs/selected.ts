/**
 * The receiver's side of a selector: a message central addressed by a selector carries it
 * (envelope field `selector`), and the node checks it against its own labels and facts of now
 * before anything runs. Labels change at run time (config.set node.labels.*): a node that no
 * longer matches answers not_selected instead of running the message.
 */
import { OutpostError } from '../errors'
import { facts } from '../labels'
import { matches, parseSelector } from '../selector'
import type { Envelope } from '../wire/envelope'

/** This node's facts, worked out once: they do not change while it runs. */
let own: Record<string, string> | undefined

/** Why this node (`self`, with `labels`) is not one `env.selector` picks, or undefined when it is. */
export function notSelected(env: Pick<Envelope, 'selector' | 'method' | 'id'>, self: string, labels: Record<string, string>): OutpostError | undefined {
  if (env.selector === undefined) return undefined
  let ok: boolean
  try {
    own ??= facts()
    ok = matches(parseSelector(env.selector), { name: self, labels, facts: own })
  } catch (err) {
    // A selector this node cannot read (a newer grammar): it cannot say it matches.
    return new OutpostError('not_selected', `${self} cannot check the selector ${JSON.stringify(env.selector)} of ${env.method} ${env.id}: ${(err as Error).message}; nothing ran`)
  }
  if (ok) return undefined
  const shown = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',') || 'none'
  return new OutpostError('not_selected', `${self} no longer matches the selector ${JSON.stringify(env.selector)} it was sent ${env.method} ${env.id} for (its labels now: ${shown}); nothing ran`)
}
