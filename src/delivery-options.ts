/** What the delivery loop is given (delivery.ts), and how a message stored without a route is read. */
import { Decoder } from '@msgpack/msgpack'
import type { GiveUpReason, MessageEventSink } from './events'
import type { LogFn } from './log'
import type { Metrics } from './metrics'
import type { PacingOptions } from './pacing'
import type { OutboxEntry, OutboxFacet, Route } from './store/outbox'
import type { Transport } from './transport'

const DECODER = new Decoder()

/** The route of a message stored without one: from its body (an envelope). */
export function legacyRoute(body: Uint8Array): Route {
  const env = DECODER.decode(body) as { ackTimeout?: number; retries?: number; method?: string }
  return { ...(env.ackTimeout !== undefined ? { ackTimeout: env.ackTimeout } : {}), ...(env.retries !== undefined ? { retries: env.retries } : {}), method: env.method ?? '' }
}

/**
 * Whether a stored body is a reply (it has `inReplyTo`): the requester's only outcome, never
 * withdrawn (withdraw takes back this node's own requests and events).
 */
export function isReply(body: Uint8Array): boolean {
  try {
    return (DECODER.decode(body) as { inReplyTo?: unknown }).inReplyTo !== undefined
  } catch {
    return false
  }
}

export interface DeliveryOptions {
  self: string
  outbox: OutboxFacet
  /**
   * The seq the outbox gives its next message as this process starts: a message below it was
   * stored by a previous process, which may have handed it out (it cannot be withdrawn).
   */
  firstSeq?: number
  transport: Transport
  defaults: { ackTimeout: number; retries: number }
  /** A message addressed to this node: run it here. */
  local: (bytes: Uint8Array) => void
  /**
   * The bytes that go out for a stored body, each time it is sent (the file room fills in the
   * data of a file chunk stored as a reference to its source): the body itself when nothing is
   * to be filled in, null when its sender withdrew it (removed unsent, nobody told).
   */
  expand?: (body: Uint8Array, method: string) => Uint8Array | null
  /** Attempts or ttl ran out: the message has been removed; report it. */
  onGiveUp: (entry: OutboxEntry, reason: GiveUpReason) => void
  /** Told when a message leaves the outbox: delivered or expired. */
  events?: MessageEventSink
  log: LogFn
  now?: () => number
  /** Messages in flight per destination. */
  window?: number
  metrics?: Metrics
  /** delivery.drainRate and transport.maxBytesPerSecond (0: unlimited). */
  pacing?: PacingOptions
}

/**
 * What withdraw() did with one id: removed unsent; possibly with its receiver already; a reply to
 * another node's request (its requester's outcome: kept); not in the outbox.
 */
export type Withdrawal = 'withdrawn' | 'in_flight' | 'reply' | 'unknown'
