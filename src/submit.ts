/**
 * Submitting: how a request from a local API (api/socket.ts, api/http.ts) becomes stored
 * messages whose replies are watched: validate the drafts, check their receivers, prepare
 * (stamp), watch, store.
 *
 *   drafts ─ checkReceivers (selectors → names) ─ node.prepare ─▶ watch ids ─▶ node.submitPrepared (durable) ─▶ sink.accepted
 *          replies ─ SeqOrder (streams in seq order) ─▶ sink.reply … ─▶ sink.done (all final)
 */
import { dataText, parseMessage, type Envelope, type MessageDraft } from './wire/envelope'
import { isSelector, matches, parseSelector } from './selector'
import { OutpostError } from './errors'
import type { OutpostNode } from './node'
import { SeqOrder } from './seq-order'
import { parseSide } from './files/index'
import { apiSigner } from './signer'

/** An envelope as JSON: bytes become UTF-8 text. */
export function envelopeJson(env: Envelope): Record<string, unknown> {
  const out: Record<string, unknown> = { ...env }
  for (const k of ['data', 'stderr'] as const) {
    const v = env[k]
    if (v instanceof Uint8Array) out[k] = dataText(v)
  }
  return out
}

/** Drafts from `messages` of a request: a non-empty array of message objects. */
/** The ids of a withdraw request (socket op withdraw, POST /v1/withdraw): a list of message ids. */
export function withdrawIds(ids: unknown): string[] {
  if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => typeof id === 'string' && id !== '')) throw new OutpostError('api_bad_request', 'api: withdraw needs "ids", a list of message ids (as {"accepted"} named them)')
  return ids as string[]
}

export function parseMessageList(messages: unknown, where = 'messages'): MessageDraft[] {
  if (!Array.isArray(messages) || messages.length === 0) throw new OutpostError('api_bad_request', `api: ${where} must be a non-empty array of messages`)
  return messages.map((m, i) => parseMessage(m, `${where}[${i}]`))
}

/** Unknown names a refusal shows; the rest are counted. */
const SHOWN_UNKNOWN = 5

/**
 * Refuse a request before anything is stamped or stored (so no outbox entry, no reply file),
 * once its selectors are replaced by the names they match (resolveSelectors): more receivers than delivery.maxFanOut (`fan_out_too_large`); and, on the node that keeps the
 * fleet's list (central), a receiver it has never heard of (`node_unknown`) unless
 * `allowUnknown`. Other nodes keep no list of the fleet: only the bound applies there.
 */
export function checkReceivers(node: OutpostNode, drafts: MessageDraft[], allowUnknown: boolean, command = 'send'): void {
  resolveSelectors(node, drafts)
  const names = new Set<string>()
  for (const d of drafts) {
    if (d.toNode !== undefined) names.add(d.toNode)
    for (const n of d.toNodes ?? []) names.add(n)
  }
  const max = node.config.delivery.maxFanOut
  if (names.size > max) {
    throw new OutpostError('fan_out_too_large', `${command}: the request addresses ${names.size} nodes; delivery.maxFanOut allows at most ${max}. Nothing was accepted: split it into smaller requests, or raise delivery.maxFanOut`)
  }
  if (allowUnknown || !node.keepsNodeList) return
  const unknown: string[] = []
  for (const n of names) if (!node.knowsNode(n)) unknown.push(n)
  if (unknown.length === 0) return
  const shown = unknown.slice(0, SHOWN_UNKNOWN).join(', ') + (unknown.length > SHOWN_UNKNOWN ? ` and ${unknown.length - SHOWN_UNKNOWN} more` : '')
  const what = unknown.length === 1 ? `${shown} is not a node` : `${unknown.length} of the ${names.size} receivers are not nodes`
  const why = !node.nodeListSettled
    ? ` ${node.name}'s node list is not known yet: it has heard from no node since it started and has no list saved before (nodes.json), so a node that has not connected cannot be told from a mistyped name.`
    : !node.connection().connected ? ` ${node.name} is not connected now, so nodes that came since are missing from its list.` : ''
  throw new OutpostError('node_unknown', `${command}: ${what} ${node.name} has heard of${unknown.length === 1 ? '' : ` (${shown})`}.${why} Nothing was accepted. Check the names (outpost nodes lists the known ones), or pass --allow-unknown ("allowUnknown": true in an API request) to send to a node that has not said hello yet`)
}

/** `outpost cp` and POST /v1/transfers: the nodes of a copy's two sides are checked as a send's receivers (node_unknown). */
export function checkCopyReceivers(node: OutpostNode, sides: string[], allowUnknown: boolean): void {
  const names = sides.map((s) => parseSide(s).node).filter((n): n is string => n !== undefined && n !== node.name)
  if (names.length > 0) checkReceivers(node, [{ toNodes: names } as MessageDraft], allowUnknown, 'cp')
}

/**
 * Replace each selector in the drafts' toNodes (isSelector; parseMessage checked its grammar)
 * by the names of central's list it matches. A selector that matches nothing, or one given to
 * a node that keeps no list, is refused (`selector_no_match`). Each node a selector picked gets
 * its message with that selector in `selector` (the receiver checks it: not_selected), so a
 * draft with selectors becomes one draft per selector (and one for the nodes it names), in
 * place in `drafts`. A node both named and picked is sent to as named.
 */
export function resolveSelectors(node: OutpostNode, drafts: MessageDraft[]): void {
  for (let i = 0; i < drafts.length; i++) {
    const d = drafts[i]!
    if (d.toNodes === undefined || !d.toNodes.some(isSelector)) continue
    const named = new Set<string>(d.toNode !== undefined ? [d.toNode] : [])
    for (const t of d.toNodes) if (!isSelector(t)) named.add(t)
    const picked = new Map<string, string[]>()
    const taken = new Set(named)
    for (const t of d.toNodes) {
      if (!isSelector(t)) continue
      if (!node.keepsNodeList) {
        throw new OutpostError('selector_no_match', `send: ${node.name} keeps no list of the fleet, so it cannot resolve the selector ${JSON.stringify(t)}: send from central (${node.config.node.central}), or name the nodes. Nothing was accepted`)
      }
      const sel = parseSelector(t)
      const hit = node.nodes().filter((n) => matches(sel, n)).map((n) => n.name)
      if (hit.length === 0) {
        throw new OutpostError('selector_no_match', `send: no node ${node.name} knows matches the selector ${JSON.stringify(t)} (a comma means and; nodes whose labels are not known yet never match a label). Nothing was accepted. outpost nodes --labels shows the labels`)
      }
      const fresh = hit.filter((n) => !taken.has(n))
      for (const n of fresh) taken.add(n)
      if (fresh.length > 0) picked.set(t, [...(picked.get(t) ?? []), ...fresh])
    }
    const { toNode: _one, toNodes: _many, id, ...rest } = d
    const split: MessageDraft[] = []
    // The id a request gave goes with its first message, as stamp() does.
    const first = (): { id?: string } => (split.length === 0 && id !== undefined ? { id } : {})
    if (named.size > 0) split.push({ ...rest, ...first(), toNodes: [...named] })
    for (const [sel, names] of picked) split.push({ ...rest, ...first(), toNodes: names, selector: sel })
    drafts.splice(i, 1, ...split)
    i += split.length - 1
  }
}

/** Signs a slice of prepared envelopes in place (api.signingKey), just before they are stored. */
export type SignSlice = (slice: Envelope[]) => void

/**
 * node.prepare, and with api.signingKey set, how to sign them (one its submitter signed already
 * is kept as it is): storeSigned / sendAndWatch sign each slice just before storing it, so a big
 * request's first messages are on their way while the rest is being signed. An unreadable key
 * refuses the request here (key_invalid), before anything is stored.
 */
export function prepareSigned(node: OutpostNode, drafts: MessageDraft[]): { envs: Envelope[]; sign?: SignSlice } {
  const envs = node.prepare(drafts)
  const signer = apiSigner(node.config.api.signingKey)
  if (signer === undefined) return { envs }
  return { envs, sign: (slice) => signer.signAll(slice, Date.now(), node.config.delivery.ttl) }
}

/** Messages signed a slice at a time (as the node stores a big request: SUBMIT_SLICE in node-intake.ts). */
const SIGN_SLICE = 512

/** Store prepared messages (node.submitPrepared), signing each slice first when `sign` is given. */
export async function storeSigned(node: OutpostNode, envs: Envelope[], sign?: SignSlice): Promise<Envelope[]> {
  if (sign === undefined) return node.submitPrepared(envs)
  const stored: Promise<unknown>[] = []
  for (let i = 0; i < envs.length; i += SIGN_SLICE) {
    if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve))
    const slice = envs.slice(i, i + SIGN_SLICE)
    sign(slice)
    stored.push(node.submitPrepared(slice))
  }
  await Promise.all(stored)
  return envs
}

export interface SendSink {
  /** Said just before `accepted` when the messages cannot leave yet (this node is not connected). */
  notice?(n: { code: string; message: string }): void
  /** The messages are durable in the outbox. Called before any reply. */
  accepted(envs: Envelope[]): void
  /** A reply to one of them; a stream's replies come in seq order. */
  reply(env: Envelope): void
  /**
   * One that gets no reply (an event, or a sink such as node.hello) reached its receiver: that
   * is its outcome. One that never does ends in an error reply, as any message does.
   */
  delivered?(d: { id: string; toNode: string; method: string }): void
  /** Every message has its final reply (or error reply). */
  done(): void
}

/**
 * Store prepared messages; with `wait`, hand their replies to `sink` until each has its final
 * one. Resolves, once stored, to a function that stops watching (the client went away). Rejects
 * when the messages could not be stored (nothing was accepted then).
 */
export async function sendAndWatch(node: OutpostNode, envs: Envelope[], wait: boolean, sink: SendSink, sign?: SignSlice): Promise<() => void> {
  if (!wait) {
    await storeSigned(node, envs, sign)
    notConnected(node, envs, sink)
    sink.accepted(envs)
    return () => {}
  }
  // Watch before storing: a local or fast reply can arrive before the last one is stored.
  const pending = new Set(envs.map((e) => e.id))
  // Replies count only from the node each message went to (a refused forged reply from another does not end it).
  const target = new Map(envs.map((e) => [e.id, e.toNode]))
  let stored = false
  let stopped = false
  const held: Envelope[] = []
  const deliver = (env: Envelope): void => {
    const req = env.inReplyTo ?? ''
    if (stopped || !pending.has(req) || target.get(req) !== env.fromNode) return // a resent reply already answered, or not its receiver's
    sink.reply(env)
    if (env.final || env.error) { pending.delete(req); streams.forget(req) }
    if (pending.size === 0) { stop(); sink.done() }
  }
  const streams = new SeqOrder(deliver)
  const onReply = (env: Envelope): void => {
    if (!stored) { held.push(env); return }
    streams.add(env)
  }
  const unwatch = node.watch([...pending], onReply)
  // Messages without a reply end when delivered (an event that expires ends as expired).
  const silent = new Set(envs.filter((e) => !node.expectsReply(e)).map((e) => e.id))
  const early: { id: string; toNode: string; method: string }[] = []
  const ended = (id: string): void => {
    pending.delete(id)
    if (pending.size === 0) { stop(); sink.done() }
  }
  const delivered = (d: { id: string; toNode: string; method: string }): void => {
    sink.delivered?.(d)
    ended(d.id)
  }
  const unwatchEvents = silent.size === 0 ? () => {} : node.watchEvents((ev) => {
    if (stopped || (ev.type !== 'delivered' && ev.type !== 'expired') || !silent.has(ev.id) || !pending.has(ev.id)) return
    const env = envs.find((e) => e.id === ev.id)!
    if (ev.type === 'delivered') {
      silent.delete(ev.id)
      const d = { id: ev.id, toNode: ev.toNode, method: ev.method }
      // After the accepted answer, always: a local message can be delivered before all are stored.
      if (stored) delivered(d)
      else early.push(d)
    } else if (env.ackTimeout === 0) {
      // An expired event gets no error reply: say it here.
      silent.delete(ev.id)
      sink.reply({ id: ev.id, toNode: node.name, fromNode: env.toNode, method: env.replyMethod ?? '', inReplyTo: ev.id, final: true, createdAt: Date.now(), error: { code: ev.reason, message: `${env.method} ${ev.id} to ${env.toNode}: ${ev.reason === 'ttl_expired' ? 'not delivered within its ttl' : ev.reason === 'events_dropped' ? 'dropped unsent to make room in a full outbox (delivery.whenFull)' : 'not delivered'}` } })
      ended(ev.id)
    }
  })
  const stop = (): void => {
    if (stopped) return
    stopped = true
    unwatch()
    unwatchEvents()
    streams.close()
  }
  try {
    await storeSigned(node, envs, sign)
  } catch (err) {
    stop()
    throw err
  }
  notConnected(node, envs, sink)
  sink.accepted(envs)
  stored = true
  for (const env of held.splice(0)) onReply(env)
  for (const d of early.splice(0)) delivered(d)
  return stop
}

/** Messages for other nodes while this one is not connected: the waiting client is told why nothing comes yet. */
function notConnected(node: OutpostNode, envs: Envelope[], sink: SendSink): void {
  if (sink.notice === undefined) return
  const c = node.connection()
  if (c.connected) return
  const away = envs.filter((e) => e.toNode !== node.name)
  if (away.length === 0) return
  const ttl = Math.max(...away.map((e) => e.ttl ?? node.config.delivery.ttl))
  const why = c.lastError !== undefined ? `: ${c.lastError.message}` : c.since === undefined ? ' yet' : ` since ${new Date(c.since).toISOString()}`
  sink.notice({ code: c.lastError?.code ?? 'not_connected', message: `${node.name} is not connected${why}. The message${away.length > 1 ? 's wait' : ' waits'} in its outbox for up to ${ttl} s (ttl), then ${away.length > 1 ? 'end' : 'ends'} as not delivered` })
}

