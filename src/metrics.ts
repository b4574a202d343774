/**
 * What the core reports for monitoring; src/api/prometheus.ts turns it into Prometheus metrics,
 * so only that file imports prom-client. Gauges (outbox depth, transport state) are read on
 * scrape and need no hook.
 *
 * accepted, expired, denied and ran are counted from the message events (src/events.ts) the
 * audit log gets too: `fromEvents` below. The rest has no event and is called directly:
 *   delivery: ACK ─▶ acked, no ACK ─▶ retried      dispatcher: recorded here ─▶ delivered
 *   node: connected again ─▶ reconnected
 */
import type { GiveUpReason } from './events'
import type { MessageEventSink } from './events'

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
  /** A signature check refused a message here (signature_*, key_not_allowed, reply_forged: the code). */
  signatureRefused(method: string, code: string): void
}

/** The codes signatureRefused counts. */
const SIGNATURE_CODES = new Set(['signature_required', 'signature_invalid', 'signature_expired', 'key_not_allowed', 'reply_forged'])

const nothing = (): void => {}

/** The message events that are also metrics, counted. */
export function fromEvents(m: Metrics): MessageEventSink {
  return (ev) => {
    switch (ev.type) {
      case 'accepted': m.accepted(ev.env.method); break
      case 'expired': m.expired(ev.method, ev.reason); break
      case 'denied':
        if (ev.error.code === 'denied') m.denied(ev.method)
        else if (SIGNATURE_CODES.has(ev.error.code)) m.signatureRefused(ev.method, ev.error.code)
        break
      case 'run': m.ran(ev.method, ev.ms / 1000, ev.error === undefined); break
      case 'delivered': break
    }
  }
}

/** The default: no metrics kept. */
export const NO_METRICS: Metrics = {
  accepted: nothing, delivered: nothing, acked: nothing, retried: nothing, expired: nothing, denied: nothing, ran: nothing, reconnected: nothing, signatureRefused: nothing,
}
