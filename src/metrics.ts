/**
 * What the core reports for monitoring. The core calls these hooks; src/api/prometheus.ts turns
 * them into Prometheus metrics, so only that file imports prom-client. Gauges (outbox depth,
 * transport state) are read on scrape and need no hook.
 *
 *   node.queue ─▶ accepted          delivery: ACK ─▶ acked, no ACK ─▶ retried, gave up ─▶ expired
 *   dispatcher: recorded here ─▶ delivered, refused by methods.allow ─▶ denied, method ran ─▶ ran
 */
import type { GiveUpReason } from './delivery'

export interface Metrics {
  /** A message was written to this node's outbox (submitted here, or a reply to a method run here). */
  accepted(method: string): void
  /** A message addressed to this node arrived and was recorded (requests, replies, events; not duplicates). */
  delivered(method: string): void
  /** The receiver acknowledged a message of this node's outbox. */
  acked(method: string): void
  /** No ACK within ackTimeout: the message is sent again. */
  retried(method: string): void
  /** The message was given up: ttl or attempts ran out. */
  expired(method: string, reason: GiveUpReason): void
  /** methods.allow refused the sender. */
  denied(method: string): void
  /** A method ran here for `seconds`; ok is false when its result carried an error. */
  ran(method: string, seconds: number, ok: boolean): void
  /** The transport connected again after losing its connection. */
  reconnected(): void
}

const nothing = (): void => {}

/** The default: no metrics kept. */
export const NO_METRICS: Metrics = {
  accepted: nothing, delivered: nothing, acked: nothing, retried: nothing, expired: nothing, denied: nothing, ran: nothing, reconnected: nothing,
}
