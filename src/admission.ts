/**
 * Whether a message may run here: the checks the dispatcher (dispatcher.ts) makes before a
 * method runs, and the handler switches they read (op.stop, op.start).
 *
 *   request ─▶ expected by a part of this node (a file it pulls)? ─ yes ─▶ no signature or ACL check
 *           ─▶ operator's signature (sign-check.ts) ─ bad ─▶ signature_* / key_not_allowed
 *           ─▶ methods.allow ─ no ─▶ denied
 *           ─▶ a method of ours? ─ no ─▶ method_unknown
 *           ─▶ selector still matches our labels (jobs/selected.ts)? ─ no ─▶ not_selected
 *           ─▶ methods.enabled and not op.stop? ─ no ─▶ method_disabled
 *   reply   ─▶ from another node: signed with its pinned key (reply-signing.ts)? ─ no ─▶ reply_forged
 *           ─▶ a method of ours? ─ no ─▶ method_unknown (authorised by requester.ts, not methods.allow)
 */
import type { Config } from './config'
import { OutpostError } from './errors'
import type { MessageEventSink } from './events'
import type { LogFn } from './log'
import { matches } from './lib/pattern'
import type { Method } from './method'
import type { ReplySigning } from './reply-signing'
import { signatureRefusal } from './sign-check'
import { notSelected } from './jobs/selected'
import type { Envelope } from './wire/envelope'

/** The part of the dispatcher's options these checks read (the same object: a config change is seen). */
export interface AdmissionOptions {
  self: string
  config: Config
  methods: ReadonlyMap<string, Method>
  onReply: (env: Envelope) => boolean
  events?: MessageEventSink
  report?: (error: { code: string; message: string }) => void
  admit?: (env: Envelope) => boolean
  log: LogFn
  now: () => number
  replySigning?: ReplySigning
}

export class Admission {
  private readonly o: AdmissionOptions
  /** Handlers switched off at run time (op.stop), in memory only. */
  private readonly switchedOff = new Set<string>()
  /** Native method names by name and alias. */
  private readonly names: ReadonlyMap<string, string>

  constructor(o: AdmissionOptions, names: ReadonlyMap<string, string>) {
    this.o = o
    this.names = names
  }

  /** Whether a handler may run: listed in methods.enabled and not switched off by op.stop. */
  enabled(name: string): boolean {
    return listed(this.o.config.methods.enabled, name) && !this.switchedOff.has(name)
  }

  setEnabled(given: string, on: boolean): void {
    const name = this.names.get(given) ?? given
    const method = this.o.methods.get(name)
    if (method === undefined) throw new OutpostError('method_unknown', `${this.o.self} has no method ${name}`)
    if (!on) {
      if (method.alwaysOn === true) throw new OutpostError('method_failed', `${name} cannot be switched off (op.* is how handlers are switched on again)`)
      this.switchedOff.add(name)
      return
    }
    if (!listed(this.o.config.methods.enabled, name)) {
      throw new OutpostError('method_disabled', `${name} is switched off in the config of ${this.o.self} (methods.enabled); op.start only undoes op.stop`)
    }
    this.switchedOff.delete(name)
  }

  /**
   * A reply from another node whose signature does not verify against its pinned key: logged
   * (and in the audit log), reported to error.log, dropped. Whoever waits for the reply gets an
   * error reply saying so instead of what the forged one said.
   */
  badSignature(env: Envelope): boolean {
    const why = env.fromNode === this.o.self ? undefined : this.o.replySigning?.replyRefusal(env)
    if (why === undefined) return false
    this.o.log('warn', `dispatch: ${why.message}`, { id: env.id, from: env.fromNode, method: env.method, code: why.code })
    this.o.events?.({ type: 'denied', id: env.id, fromNode: env.fromNode, method: env.method, error: why.toJSON() })
    this.o.report?.(why.toJSON())
    this.o.onReply({ id: env.id, toNode: env.toNode, fromNode: env.fromNode, method: env.method, inReplyTo: env.inReplyTo!, final: true, createdAt: env.createdAt, error: why.toJSON() })
    return true
  }

  /** Why this node will not run env, or undefined. */
  refusal(env: Envelope): OutpostError | undefined {
    const { config, self } = this.o
    // A part of a transfer this node asked for itself (a pull): its own request was the signed one.
    const admitted = env.inReplyTo === undefined && this.o.admit?.(env) === true
    // An operator's signature first (sign-check.ts): a tampered message is refused whatever the ACL says.
    if (env.inReplyTo === undefined && !admitted) {
      const bad = signatureRefusal(env, config, self, this.o.now(), this.o.methods.get(env.method)?.sink === true)
      if (bad) return bad
    }
    // A reply is authorised by this node's record of its request (forged()), not by methods.allow.
    if (env.inReplyTo === undefined && !allowed(config, self, env.fromNode, env.method) && !admitted) {
      return new OutpostError('denied', `${self} does not let ${env.fromNode} call ${env.method} (methods.allow)`)
    }
    if (!this.o.methods.has(env.method)) return new OutpostError('method_unknown', `${self} has no method ${env.method}`)
    // Addressed by a selector: this node must still match it with its labels of now.
    if (env.selector !== undefined && env.inReplyTo === undefined) {
      const no = notSelected(env, self, config.node.labels)
      if (no !== undefined) return no
    }
    // A reply answers a request this node sent: it is handled whatever methods.enabled lists.
    if (env.inReplyTo === undefined && !this.enabled(env.method)) {
      return new OutpostError('method_disabled', this.switchedOff.has(env.method)
        ? `${env.method} is switched off on ${self} (op.stop)`
        : `${env.method} is switched off on ${self} (methods.enabled: ${config.methods.enabled.join(', ')})`)
    }
    return undefined
  }
}

/** SPEC §5: by default only the central node and the node itself may call anything. */
export function allowed(config: Config, self: string, from: string, method: string): boolean {
  const rules = config.methods.allow
  const central = config.node.central
  // Asked for every message, of a few (sender, method) pairs: each answer is kept, per rules array.
  let memo = allowMemos.get(rules)
  if (memo === undefined || memo.central !== central || memo.self !== self || memo.size >= MEMO_MAX) {
    memo = { central, self, size: 0, byFrom: new Map() }
    allowMemos.set(rules, memo)
  }
  let byMethod = memo.byFrom.get(from)
  if (byMethod === undefined) memo.byFrom.set(from, (byMethod = new Map()))
  let yes = byMethod.get(method)
  if (yes === undefined) {
    yes = rules.some((rule) =>
      rule.from.some((f) => f === '*' || f === from || (f === '$central' && from === central) || (f === '$self' && from === self)) &&
      (rule.methods ?? ['*']).some((p) => matches(p, method)))
    byMethod.set(method, yes)
    memo.size++
  }
  return yes
}

/** Whether a pattern of `patterns` (methods.enabled) matches `name`; kept per list like allowed(). */
function listed(patterns: readonly string[], name: string): boolean {
  let memo = listMemos.get(patterns)
  if (memo === undefined || memo.size >= MEMO_MAX) listMemos.set(patterns, (memo = new Map()))
  let yes = memo.get(name)
  if (yes === undefined) memo.set(name, (yes = patterns.some((p) => matches(p, name))))
  return yes
}

/**
 * Answers kept per config list. A config change replaces the lists (applyLive clones what
 * changed), so an old list's answers are never read again and go with it. Bounded: a fleet's
 * worth of senders, then it starts afresh.
 */
const MEMO_MAX = 16_384
const allowMemos = new WeakMap<Config['methods']['allow'], { central: string; self: string; size: number; byFrom: Map<string, Map<string, boolean>> }>()
const listMemos = new WeakMap<readonly string[], Map<string, boolean>>()
