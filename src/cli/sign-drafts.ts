/**
 * `outpost send --key FILE`: the messages are stamped and signed here, where the operator's key
 * is, and the node keeps them as they are (the id a draft carries is its id). One message per
 * receiver, so each receiver can check its own copy: the id and toNode are in the signature. A
 * selector is resolved here from the node's list (as central would) and signed with each copy.
 *
 *   drafts ─ parseMessage ─▶ receivers (selectors ← {op:"nodes"}) ─▶ one envelope each ─ Signer.sign ─▶ drafts
 */
import path from 'node:path'
import { askAgent, type Io, type Loaded } from './common'
import { OutpostError } from '../errors'
import { DEFAULT_REPLY_METHOD } from '../method-names'
import { nativeMethodName } from '../../methods'
import { isSelector, matches, parseSelector, type Selectable } from '../selector'
import { Signer } from '../signer'
import { parseMessage, type Envelope } from '../wire/envelope'
import { ulid } from '../wire/ulid'

export interface SignContext {
  io: Io
  loaded: Loaded
  socket: string | undefined
  signal?: AbortSignal | undefined
}

/** Read the key of `--key FILE` (key_invalid when it cannot be read). */
export function signerFor(io: Io, file: string): Signer {
  return Signer.fromFile(path.resolve(io.cwd, file))
}

/** The messages as signed drafts, one receiver each, ready for the socket's send request. */
export async function signDrafts(c: SignContext, signer: Signer, messages: unknown[]): Promise<Record<string, unknown>[]> {
  const drafts = messages.map((m, i) => parseMessage(m, messages.length > 1 ? `message[${i}]` : 'message'))
  const self = await ask<string>(c, { op: 'status' }, (obj) => (typeof obj.node === 'string' ? obj.node : undefined))
  let fleet: Selectable[] | undefined
  const envs: Envelope[] = []
  const now = Date.now()
  for (const d of drafts) {
    const given = [...(d.toNode !== undefined ? [d.toNode] : []), ...(d.toNodes ?? [])]
    const receivers: { node: string; selector?: string }[] = []
    for (const t of given) {
      if (!isSelector(t)) { receivers.push({ node: t }); continue }
      fleet ??= await ask<Selectable[]>(c, { op: 'nodes' }, (obj) => (Array.isArray(obj.nodes) ? obj.nodes as Selectable[] : undefined))
      const sel = parseSelector(t)
      const hit = fleet.filter((n) => matches(sel, n)).map((n) => n.name)
      if (hit.length === 0) throw new OutpostError('selector_no_match', `send: no node ${self} knows matches the selector ${JSON.stringify(t)}; nothing was sent`)
      for (const node of hit) receivers.push({ node, selector: t })
    }
    const seen = new Set<string>()
    for (const r of receivers) {
      if (seen.has(r.node)) continue
      seen.add(r.node)
      const { toNodes: _toNodes, toNode: _toNode, ...rest } = d
      const env: Envelope = {
        ...rest, id: d.id !== undefined && receivers.length === 1 ? d.id : ulid(), toNode: r.node, fromNode: self, createdAt: now,
        method: nativeMethodName(d.method) ?? d.method, replyMethod: d.replyMethod === undefined ? DEFAULT_REPLY_METHOD : nativeMethodName(d.replyMethod) ?? d.replyMethod,
        ...(r.selector !== undefined ? { selector: r.selector } : {}),
      }
      envs.push(env)
    }
  }
  signer.signAll(envs, now, c.loaded.config.delivery.ttl)
  return envs.map(({ fromNode: _from, ...draft }) => draft)
}

async function ask<T>(c: SignContext, request: unknown, pick: (obj: Record<string, unknown>) => T | undefined): Promise<T> {
  let value: T | undefined
  await askAgent(c.io, c.loaded, c.socket, request, (obj) => {
    if (obj.error) {
      const e = obj.error as { message: string }
      throw new OutpostError('api_bad_request', e.message)
    }
    value = pick(obj)
    return true
  }, c.signal)
  if (value === undefined) throw new OutpostError('api_bad_request', `send --key: the node did not answer ${JSON.stringify(request)}`)
  return value
}
