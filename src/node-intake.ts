/**
 * How a node takes messages in: stamp drafts (prepare), store them in the outbox (durable),
 * then start their delivery. node.ts holds one and delegates submit / prepare / submitPrepared.
 *
 *   drafts ─ prepare (ids, fromNode, fan-out, defaults, native names) ─▶ queue ─▶ outbox room ─▶ delivery.kick
 */
import type { Config } from './config'
import type { MessageEventSink } from './events'
import { DEFAULT_REPLY_METHOD } from './method-names'
import type { OutboxRoom } from './outbox-room'
import type { EnqueueInput, Route } from './store/outbox'
import { encode, stamp, stampInto, type Envelope, type MessageDraft } from './wire/envelope'
import { ulid as defaultUlid } from './wire/ulid'

/** Messages of one request stored per turn of the event loop. */
const SUBMIT_SLICE = 512

export interface IntakeOptions {
  self: string
  /** The node's config (config.* may change it live). */
  config: () => Config
  now: () => number
  /** Native method names by name and alias, for the methods this node has. */
  names: ReadonlyMap<string, string>
  room: OutboxRoom
  /** Told `accepted` for each message stored. */
  events: MessageEventSink
  /** Start delivery of what was stored. */
  kick: () => void
}

export class Intake {
  constructor(private readonly o: IntakeOptions) {}

  /**
   * Stamp validated drafts (ids, fromNode, fan-out) and give them defaults; nothing is stored
   * yet. Aliases this node knows become native names (subjects and ACLs speak native names); a
   * name it does not know goes as it is, for the receiver to run or refuse.
   */
  prepare(drafts: MessageDraft[]): Envelope[] {
    const d = this.o.config().delivery
    const names = this.o.names
    const ctx = { fromNode: this.o.self, now: this.o.now, ulid: defaultUlid, defaults: { ackTimeout: d.ackTimeout, retries: d.retries, ttl: d.ttl, replyMethod: DEFAULT_REPLY_METHOD } }
    const native = (draft: MessageDraft): MessageDraft => {
      const method = names.get(draft.method) ?? draft.method
      const replyMethod = draft.replyMethod === undefined ? undefined : names.get(draft.replyMethod) ?? draft.replyMethod
      return method === draft.method && replyMethod === draft.replyMethod ? draft : { ...draft, method, ...(replyMethod !== undefined ? { replyMethod } : {}) }
    }
    if (drafts.length === 1) return stamp(native(drafts[0]!), ctx)
    const out: Envelope[] = []
    for (const draft of drafts) stampInto(native(draft), ctx, out)
    return out
  }

  /**
   * Store prepared messages (each durable before this resolves) and start their delivery.
   * Watch their ids first when waiting for replies: a fast reply can beat this promise.
   */
  async submitPrepared(envs: Envelope[]): Promise<Envelope[]> {
    if (envs.length <= SUBMIT_SLICE) {
      await this.storeSlice(envs)
      return envs
    }
    // A big request goes in slices with the event loop turning between them: the first slices
    // are written and on their way while the rest is still being encoded.
    const stored: Promise<void>[] = []
    for (let i = 0; i < envs.length; i += SUBMIT_SLICE) {
      if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve))
      const slice = this.storeSlice(envs.slice(i, i + SUBMIT_SLICE))
      // Awaited below with the others: a refusal meanwhile is not an unhandled rejection.
      slice.catch(() => {})
      stored.push(slice)
    }
    await Promise.all(stored)
    return envs
  }

  /** Messages of one request into the outbox together (durable, one promise for all), then the delivery loop. */
  private async storeSlice(envs: Envelope[]): Promise<void> {
    if (envs.length === 1) return this.queue(envs[0]!)
    const ttl = this.o.config().delivery.ttl
    await this.o.room.storeAll(envs, envs.map((env) => input(env, ttl)))
    for (const env of envs) this.o.events({ type: 'accepted', env })
    this.o.kick()
  }

  /** Into the outbox (durable), then the delivery loop. */
  async queue(env: Envelope, inboxId?: string): Promise<void> {
    const m = input(env, this.o.config().delivery.ttl)
    await this.o.room.store(env, m, inboxId, m.expiresAt)
    this.o.events({ type: 'accepted', env })
    this.o.kick()
  }
}

/** What the outbox stores of `env`: its encoding, expiry and route (delivery sends it without decoding the body). */
function input(env: Envelope, defaultTtl: number): EnqueueInput & { route: Route } {
  const expiresAt = env.createdAt + (env.ttl ?? defaultTtl) * 1000
  const route = {} as Route
  if (env.ackTimeout !== undefined) route.ackTimeout = env.ackTimeout
  if (env.retries !== undefined) route.retries = env.retries
  route.method = env.method
  return { id: env.id, dest: env.toNode, body: encode(env), createdAt: env.createdAt, expiresAt, route }
}
