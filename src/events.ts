/**
 * What happened to a message, as the core reports it (types only). The audit log writes each
 * event as a JSON line; metrics can count them. Hooks in node-intake.ts (accepted), delivery.ts
 * (delivered, expired) and dispatcher.ts (run, denied) call one `MessageEventSink`.
 */
import type { Envelope } from './wire/envelope'

/** Why a message left the outbox undelivered: its attempts or its ttl ran out, or its sender withdrew it unsent. */
export type GiveUpReason = 'not_delivered' | 'ttl_expired' | 'withdrawn' | 'events_dropped'

export type MessageEvent =
  /** Stored in this node's outbox (a request submitted here, or a reply queued here). */
  | { type: 'accepted'; env: Envelope }
  /** The receiver acknowledged it (an event: it was published); it left the outbox. */
  | { type: 'delivered'; id: string; toNode: string; method: string }
  /** Attempts or ttl ran out: removed undelivered (the sender gets an error reply). */
  | { type: 'expired'; id: string; toNode: string; method: string; reason: GiveUpReason }
  /** A method (or reply method) ran here; `error` when it failed. */
  | { type: 'run'; id: string; fromNode: string; method: string; ms: number; exitCode?: number; error?: { code: string; message: string } }
  /** Refused here before it ran: methods.allow, an unknown or switched-off method. */
  | { type: 'denied'; id: string; fromNode: string; method: string; error: { code: string; message: string } }
  /** A shell or tunnel opened by request `id` ended here: what ran, as whom, how long, bytes each way. */
  | { type: 'session'; id: string; fromNode: string; method: string; what: string; user?: string; startedAt: number; ms: number; bytesIn: number; bytesOut: number; exitCode?: number; error?: { code: string; message: string } }

export type MessageEventSink = (ev: MessageEvent) => void
