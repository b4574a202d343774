/**
 * The message envelope of SPEC §2: its type, validation of what users submit (native JSON or
 * steward's format), stamping (id, fromNode, createdAt, fan-out of toNodes), MessagePack
 * encoding for the wire, and subject/topic names.
 *
 *   input (JSON / CLI) ─ parseMessages ─▶ MessageDraft[] ─ stamp ─▶ Envelope[] ─ encode ─▶ bytes
 *   bytes ─ decode ─▶ Envelope (checked the same way, fromNode kept from the wire)
 */
import { Decoder, Encoder } from '@msgpack/msgpack'
import { OutpostError } from '../errors'
import { ACK_METHOD } from '../method-names'
import { isSelector, parseSelector } from '../selector'
import { checkDepth, wireProblem } from './msgpack-depth'
import { encodeEnvelope } from './envelope-codec'
import { decodeWireEnvelope } from './envelope-decode'
import { isUlid } from './ulid'

export { stamp, stampInto, type StampContext } from './stamp'

export interface EnvelopeError {
  code: string
  message: string
}

/** One message addressed to one node (toNodes has been fanned out). */
export interface Envelope {
  id: string
  toNode: string
  fromNode: string
  method: string
  methodArgs?: string[]
  replyMethod?: string
  replyMethodArgs?: string[]
  data?: Uint8Array | string
  stderr?: Uint8Array | string
  exitCode?: number
  error?: EnvelopeError
  ackTimeout?: number
  retries?: number
  replyAckTimeout?: number
  replyRetries?: number
  methodTimeout?: number
  replyMethodTimeout?: number
  ttl?: number
  directory?: string
  fileName?: string
  inReplyTo?: string
  /** An ACK acknowledging several messages: their ids (src/wire/acks.ts); inReplyTo is then the first of them. */
  ids?: string[]
  seq?: number
  final?: boolean
  createdAt: number
  /** steward's REQOpCommand argument: `{ opCmd: 'ps' | 'startProc' | 'stopProc', opArg }`. */
  operation?: { opCmd: string; opArg?: unknown }
  /** The selector central resolved to address this node (a fanned-out copy): the receiver checks it against its own labels (not_selected); signed with the message. */
  selector?: string
  /** Epoch ms before which / after which the message must not run (carried in signed messages). */
  notBefore?: number
  expiresAt?: number
  /** An operator's signature (src/signing.ts): the signing key's fingerprint and the base64 ed25519 signature. */
  keyFingerprint?: string
  sig?: string
  /** The sibling hashes from this envelope to its signed batch's root (src/signing.ts), base64. */
  sigPath?: string
}

/** What a user submits: like an Envelope, but id, fromNode and createdAt are optional and toNodes allowed. */
export type MessageDraft = Omit<Envelope, 'id' | 'fromNode' | 'createdAt' | 'toNode'> & {
  id?: string
  toNode?: string
  toNodes?: string[]
  createdAt?: number
}

type FieldKind = 'string' | 'strings' | 'uint' | 'int' | 'bool' | 'data' | 'error' | 'operation'

const FIELDS: Record<string, FieldKind> = {
  id: 'string',
  toNode: 'string',
  toNodes: 'strings',
  fromNode: 'string',
  method: 'string',
  methodArgs: 'strings',
  replyMethod: 'string',
  replyMethodArgs: 'strings',
  data: 'data',
  stderr: 'data',
  exitCode: 'int',
  error: 'error',
  ackTimeout: 'uint',
  retries: 'uint',
  replyAckTimeout: 'uint',
  replyRetries: 'uint',
  methodTimeout: 'uint',
  replyMethodTimeout: 'uint',
  ttl: 'uint',
  directory: 'string',
  fileName: 'string',
  inReplyTo: 'string',
  ids: 'strings',
  seq: 'uint',
  final: 'bool',
  createdAt: 'uint',
  operation: 'operation',
  selector: 'string',
  notBefore: 'uint',
  expiresAt: 'uint',
  keyFingerprint: 'string',
  sig: 'string',
  sigPath: 'string',
}

/** steward field names read as outpost's own. */
const STEWARD_RENAMES: Record<string, string> = {
  ACKTimeout: 'ackTimeout',
  replyACKTimeout: 'replyAckTimeout',
}

/** steward fields that have no meaning in outpost: accepted and ignored in steward input. */
const STEWARD_IGNORED = new Set([
  'argSignature', 'isReply', 'retryWait', 'isSubPublishedMsg', 'previousMessage', 'PreviousMessage',
  'schedule', 'relayViaNode', 'relayReplyMethod', 'relayOriginalViaNode', 'relayFromNode',
  'relayOriginalMethod', 'methodInitialTimeout', 'replyMethodInitialTimeout', 'useDetectedShell',
  'fromNode', 'FromNode', 'relayToNode',
])

/** A table lookup that never finds Object.prototype members (`toString`, `constructor`). */
function own<T>(table: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined
}

/**
 * JSON input names a field the way Go's encoding/json (and so steward) matches it: the exact
 * name first (outpost's own, or a steward rename), else the same name in any letter case
 * (`replyMethodTimeOut`, `Directory`, `ACKTIMEOUT`). Lower-cased known name → what it reads as:
 * an outpost field, or IGNORED for steward's fields without meaning here.
 */
const IGNORED = '\0ignored'
const FOLDED: ReadonlyMap<string, string> = (() => {
  const m = new Map<string, string>()
  for (const f of Object.keys(FIELDS)) m.set(f.toLowerCase(), f)
  for (const [from, to] of Object.entries(STEWARD_RENAMES)) m.set(from.toLowerCase(), to)
  for (const f of STEWARD_IGNORED) if (!m.has(f.toLowerCase())) m.set(f.toLowerCase(), IGNORED)
  return m
})()

/** What an input key reads as: [field, exact]; field undefined when no name matches in any case. */
function inputField(key: string): [string | undefined, boolean] {
  if (Object.hasOwn(FIELDS, key)) return [key, true]
  const renamed = own(STEWARD_RENAMES, key)
  if (renamed !== undefined) return [renamed, true]
  if (STEWARD_IGNORED.has(key)) return [IGNORED, true]
  return [FOLDED.get(key.toLowerCase()), false]
}

const NODE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/
const METHOD_NAME_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,127}$/

export function isValidNodeName(name: string): boolean {
  return NODE_NAME_RE.test(name)
}

function fail(where: string, field: string, expected: string, got: unknown): never {
  throw new OutpostError('envelope_invalid', `${where}: field '${field}' ${expected}, got ${describe(got)}`)
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (v instanceof Uint8Array) return `${v.length} bytes`
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)
  if (typeof v === 'object') return 'an object'
  return `${typeof v} ${String(v)}`
}

function checkField(where: string, field: string, kind: FieldKind, v: unknown): unknown {
  switch (kind) {
    case 'string':
      if (typeof v !== 'string') fail(where, field, 'must be a string', v)
      return v
    case 'strings':
      if (!Array.isArray(v)) fail(where, field, 'must be an array of strings', v)
      v.forEach((s, i) => { if (typeof s !== 'string') fail(where, `${field}[${i}]`, 'must be a string', s) })
      return v
    case 'uint':
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(where, field, 'must be a non-negative integer', v)
      return v
    case 'int':
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail(where, field, 'must be an integer', v)
      return v
    case 'bool':
      if (typeof v !== 'boolean') fail(where, field, 'must be true or false', v)
      return v
    case 'data':
      if (typeof v !== 'string' && !(v instanceof Uint8Array)) fail(where, field, 'must be a string or bytes', v)
      return v
    case 'error': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, field, 'must be an object {code, message}', v)
      const e = v as Record<string, unknown>
      if (typeof e.code !== 'string') fail(where, `${field}.code`, 'must be a string', e.code)
      if (typeof e.message !== 'string') fail(where, `${field}.message`, 'must be a string', e.message)
      return { code: e.code, message: e.message }
    }
    case 'operation': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, field, 'must be an object {opCmd, opArg}', v)
      const o = v as Record<string, unknown>
      if (typeof o.opCmd !== 'string') fail(where, `${field}.opCmd`, 'must be a string', o.opCmd)
      if (o.opArg === undefined) return { opCmd: o.opCmd }
      const problem = wireProblem(o.opArg, 1)
      if (problem !== undefined) fail(where, `${field}.opArg`, `must be a value a receiver can decode: it ${problem}`, o.opArg)
      return { opCmd: o.opCmd, opArg: o.opArg }
    }
  }
}

function looksLikeSteward(o: Record<string, unknown>): boolean {
  if ('ACKTimeout' in o || 'replyACKTimeout' in o || typeof o.id === 'number') return true
  // A field named in another letter case than outpost's own is how Go programs write them.
  if (Object.keys(o).some((k) => { const [field, exact] = inputField(k); return field !== undefined && !exact })) return true
  return typeof o.method === 'string' && o.method.startsWith('REQ')
}

/**
 * Check one submitted message. `where` prefixes error messages (`message[2]`). fromNode in
 * input is never trusted: it is dropped here and set by stamp(). Field names match as
 * inputField() says; a field named twice (`methodTimeout` and `MethodTimeout`) is refused.
 */
export function parseMessage(input: unknown, where = 'message'): MessageDraft {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new OutpostError('envelope_invalid', `${where}: must be a JSON object, got ${describe(input)}`)
  }
  const raw = fromBasicAgent(input as Record<string, unknown>, where)
  const draft = (plainFields(raw, where) ?? readFields(raw, where)) as MessageDraft
  if (draft.method === undefined) fail(where, 'method', 'is required', undefined)
  draft.method = checkMethodName(where, 'method', draft.method)
  if (draft.replyMethod !== undefined) draft.replyMethod = checkMethodName(where, 'replyMethod', draft.replyMethod)
  if (draft.id !== undefined && !isUlid(draft.id)) fail(where, 'id', 'must be a ULID (26 characters of Crockford base32)', draft.id)
  if (draft.toNode === undefined && (draft.toNodes === undefined || draft.toNodes.length === 0)) fail(where, 'toNode', 'or toNodes is required', undefined)
  if (draft.toNode !== undefined && !isValidNodeName(draft.toNode)) fail(where, 'toNode', 'must be a node name (letters, digits, _ and -, at most 63)', draft.toNode)
  // toNodes also takes selectors (role=db, ship*), which central resolves (submit.ts); checked here for their grammar.
  for (const t of draft.toNodes ?? []) {
    if (isSelector(t)) parseSelector(t)
    else if (!isValidNodeName(t)) fail(where, 'toNode', 'must be a node name (letters, digits, _ and -, at most 63) or a selector such as role=db', t)
  }
  if (draft.selector !== undefined) parseSelector(draft.selector)
  return draft
}

/** The usual input (exact field names, nothing of steward's) read as readFields() would, without its name table; else undefined. */
function plainFields(raw: Record<string, unknown>, where: string): Record<string, unknown> | undefined {
  if (typeof raw.id === 'number' || (typeof raw.method === 'string' && raw.method.startsWith('REQ'))) return undefined
  const out: Record<string, unknown> = {}
  for (const key in raw) {
    if (!Object.hasOwn(FIELDS, key) || !Object.hasOwn(raw, key)) return undefined
    const value = raw[key]
    if (value !== undefined && key !== 'fromNode') out[key] = checkField(where, key, FIELDS[key]!, value)
  }
  return out
}

/** Fields of a message in any input form (inputField); steward's empty and unused fields dropped. */
function readFields(raw: Record<string, unknown>, where: string): Record<string, unknown> {
  const steward = looksLikeSteward(raw)
  const out: Record<string, unknown> = {}
  const givenAs = new Map<string, string>()
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined) continue
    const [field] = inputField(key)
    if (field === IGNORED && steward) continue
    if (steward && field === 'id' && typeof value === 'number') continue // steward's counter, not an id
    if (field === 'fromNode') continue
    const kind = field === undefined ? undefined : own(FIELDS, field)
    if (field === undefined || kind === undefined) {
      throw new OutpostError('envelope_invalid', `${where}: unknown field '${key}' (the fields are listed in docs/messages-and-methods.md; names match in any letter case)`)
    }
    const before = givenAs.get(field)
    if (before !== undefined) throw new OutpostError('envelope_invalid', `${where}: fields '${before}' and '${key}' both name ${field}; give it once`)
    givenAs.set(field, key)
    // steward writes empty values for fields it does not use.
    if (steward && (value === null || value === '' || (Array.isArray(value) && value.length === 0 && field !== 'methodArgs'))) continue
    out[field] = checkField(where, field, kind, value)
  }
  return out
}

/**
 * BasicAgent's form `{"method":"sync.bash","cmd":"uptime","timeout":10}` (optionally user,
 * group, cwd and env {K: V}) becomes cli.run with methodArgs in cli.run's option form
 * (`--user=… -- CMD`) and methodTimeout. Other messages pass unchanged.
 */
function fromBasicAgent(raw: Record<string, unknown>, where: string): Record<string, unknown> {
  if (raw.method !== 'sync.bash' || !('cmd' in raw)) return raw
  const { cmd, timeout, user, group, cwd, env, ...rest } = raw
  if (typeof cmd !== 'string' || cmd === '') fail(where, 'cmd', 'must be a non-empty string', cmd)
  if (rest.methodArgs !== undefined) fail(where, 'methodArgs', 'cannot be given with cmd', rest.methodArgs)
  const head: string[] = []
  for (const [k, v] of [['user', user], ['group', group], ['cwd', cwd]] as const) {
    if (v === undefined) continue
    if (typeof v !== 'string') fail(where, k, 'must be a string', v)
    head.push(`--${k}=${v}`)
  }
  if (env !== undefined) {
    if (typeof env !== 'object' || env === null || Array.isArray(env)) fail(where, 'env', 'must be an object of strings', env)
    for (const [k, v] of Object.entries(env)) {
      if (typeof v !== 'string') fail(where, `env.${k}`, 'must be a string', v)
      head.push(`--env=${k}=${v}`)
    }
  }
  // The arguments are in cli.run's form now: the message is a cli.run.
  const out: Record<string, unknown> = { ...rest, method: 'cli.run', methodArgs: head.length === 0 ? [cmd] : [...head, '--', cmd] }
  if (timeout !== undefined) out.methodTimeout = timeout
  return out
}

/**
 * A method name's shape. Whether a node has that method is for the receiver to say (an older
 * central can call a method only newer nodes have); the submitting node maps the aliases it
 * knows to native names.
 */
function checkMethodName(where: string, field: string, name: string): string {
  if (!METHOD_NAME_RE.test(name)) fail(where, field, 'must be a method name such as cli.run', name)
  return name
}

/** Parse a JSON text holding one message or an array of them (steward's file format). */
export function parseMessagesJson(text: string, where = 'messages'): MessageDraft[] {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new OutpostError('envelope_invalid', `${where}: not valid JSON (${(err as Error).message})`, { cause: err })
  }
  const list = Array.isArray(value) ? value : [value]
  return list.map((m, i) => parseMessage(m, Array.isArray(value) ? `${where}[${i}]` : where))
}

/** A data or stderr field as text (bytes are read as UTF-8); '' when absent. */
export function dataText(v: Uint8Array | string | undefined): string {
  return v === undefined ? '' : typeof v === 'string' ? v : Buffer.from(v).toString('utf8')
}

/** MessagePack bytes of an envelope, as they go on the wire and into the outbox. */
// Reused: the library's encode()/decode() build a new encoder (and buffer) per call.
const ENCODER = new Encoder({ ignoreUndefined: true })
const DECODER = new Decoder()

export function encode(env: Envelope): Uint8Array {
  return encodeEnvelope(env) ?? ENCODER.encode(env)
}

/** Decode and check an envelope received from the wire. */
export function decode(bytes: Uint8Array): Envelope {
  // The hand-written pass (envelope-decode.ts) takes what every outpost peer sends.
  const env = decodeWireEnvelope(bytes)
  if (env !== undefined) return env
  let value: unknown
  checkDepth(bytes, 'envelope_decode')
  try {
    value = DECODER.decode(bytes)
  } catch (err) {
    throw new OutpostError('envelope_decode', `envelope: not MessagePack (${(err as Error).message})`, { cause: err })
  }
  return checkWire(value)
}

/** Wire envelopes come from other nodes (possibly newer): unknown fields are dropped, known ones checked. */
export function checkWire(value: unknown, where = 'envelope'): Envelope {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new OutpostError('envelope_decode', `${where}: must be a map, got ${describe(value)}`)
  }
  const out: Record<string, unknown> = {}
  const input = value as Record<string, unknown>
  for (const key of Object.keys(input)) {
    const v = input[key]
    const kind = own(FIELDS, key)
    if (kind === undefined || v === undefined || v === null || key === 'toNodes') continue
    out[key] = checkField(where, key, kind, v)
  }
  for (const f of ['id', 'toNode', 'fromNode', 'method'] as const) {
    if (typeof out[f] !== 'string' || out[f] === '') fail(where, f, 'is required', out[f])
  }
  if (typeof out.createdAt !== 'number') out.createdAt = 0
  return out as unknown as Envelope
}

/** An ACK for a message: an event (ackTimeout 0), sent straight back, never through the outbox. */
export function makeAck(msg: Pick<Envelope, 'id' | 'fromNode' | 'toNode'>, id: string, now: number): Envelope {
  return { id, toNode: msg.fromNode, fromNode: msg.toNode, method: ACK_METHOD, inReplyTo: msg.id, ackTimeout: 0, createdAt: now }
}
