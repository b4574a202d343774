/**
 * A message's one outcome when delivery cannot give it, and the operator's report of it:
 *
 *   attempts or ttl ran out (delivery.ts) ─▶ a warning, error.log to central, an error reply
 *                                            to the requester here (its reply file)
 *   lost to journal damage (lost.ts)      ─▶ the same for each lost message, one report
 *
 * A request given up is remembered for a day: a real reply that still comes is dropped
 * (dispatcher.ts asks isGivenUp), so the requester has exactly one outcome.
 */
import type { Config } from './config'
import { isOutpostError } from './errors'
import type { GiveUpReason } from './events'
import type { LogFn } from './log'
import { lostOutcomes } from './lost'
import { undeliveredReply } from './reply'
import type { JournalDamage, OutboxEntry } from './store/outbox'
import { decode, encode, type Envelope, type MessageDraft } from './wire/envelope'
import { ulid } from './wire/ulid'

/** How long a request given up is remembered (late replies to it dropped). */
const GIVEN_UP_MS = 86_400_000

export interface OutcomeOptions {
  self: string
  config: Config
  log: LogFn
  now: () => number
  /** Submit a message of this node's own (error.log to central). */
  submit: (drafts: MessageDraft[]) => Promise<unknown>
  /** Hand an envelope to this node's own dispatcher (an error reply to a request of ours). */
  receive: (bytes: Uint8Array) => void
  /** Queue an envelope for another node (an error reply in place of a lost one). */
  queue: (env: Envelope) => Promise<void>
  /** Take a snapshot (after the outcomes of journal damage are queued). */
  checkpoint: () => Promise<void>
  /** Record again that a request went to `dest` naming `replyMethod` (what lets its error reply in). */
  recordRequest: (id: string, dest: string, replyMethod: string, until: number) => Promise<void>
}

export class Outcomes {
  private readonly o: OutcomeOptions
  /** Requests given up (error reply sent), oldest first. */
  private readonly givenUp = new Map<string, number>()

  constructor(o: OutcomeOptions) {
    this.o = o
  }

  /** Whether a request of this node was given up (a reply to it now is dropped). */
  isGivenUp(id: string): boolean {
    return this.givenUp.has(id)
  }

  /** A message ran out of attempts or ttl: tell central, and give the sender its one outcome. */
  gaveUp(entry: OutboxEntry, reason: GiveUpReason): void {
    let env: Envelope
    try {
      env = decode(entry.body)
    } catch {
      return
    }
    const { config, log } = this.o
    if (env.ackTimeout === 0) {
      log('debug', `dropped event ${env.method} ${env.id} to ${env.toNode}: ${reason}`)
      return
    }
    const why = reason === 'ttl_expired'
      ? `not delivered within its ttl of ${env.ttl ?? config.delivery.ttl} s`
      : reason === 'withdrawn' ? `withdrawn by its sender before it was sent; it never reached ${env.toNode} and did not run`
        : `no ACK after ${(env.retries ?? config.delivery.retries) + 1} attempts`
    const message = `${env.method} ${env.id} from ${this.o.self} to ${env.toNode}: ${why}`
    // A withdrawal is the operator's own doing: no error for central.
    log(reason === 'withdrawn' ? 'info' : 'warn', message, { id: env.id, to: env.toNode, method: env.method, code: reason })
    if (env.method !== 'error.log' && reason !== 'withdrawn') this.report({ code: reason, message })
    if (env.inReplyTo !== undefined) return
    this.remember(env.id)
    this.o.receive(encode(undeliveredReply(env, { code: reason, message }, ulid(), this.o.now())))
  }

  /**
   * The journal lost records to damage (found at start, each logged by the store): every lost
   * message gets its outcome (lost.ts), central one report; then a snapshot, so the next start
   * does not find the same damage again.
   */
  lost(damaged: JournalDamage[]): void {
    const lost = lostOutcomes(damaged, this.o.self, ulid, this.o.now())
    this.o.log('error', lost.report, { code: 'outbox_corrupt' })
    this.report({ code: 'outbox_corrupt', message: lost.report })
    for (const id of lost.givenUp) this.remember(id)
    const now = this.o.now()
    const local = lost.local.map(async ({ reply, request }) => {
      await this.o.recordRequest(request.id, request.dest, request.replyMethod, now)
      this.o.receive(encode(reply))
    })
    void Promise.all([...local, ...lost.remote.map((env) => this.o.queue(env))])
      .then(() => this.o.checkpoint())
      .catch((err: Error) => this.o.log('error', `cannot queue the outcomes of damaged journal records: ${err.message}`))
  }

  /** An error for the operator: an error.log message to central (this node's own errors.log on central). */
  report(error: { code: string; message: string }): void {
    this.o.submit([{ toNode: this.o.config.node.central, method: 'error.log', data: error.message, error }])
      // A full disk refuses it: the journal said so once, the error was logged where it happened.
      .catch((err: Error) => this.o.log(isOutpostError(err, 'disk_full') ? 'debug' : 'error', `cannot queue error.log: ${err.message}`))
  }

  private remember(id: string): void {
    const now = this.o.now()
    this.givenUp.set(id, now)
    for (const [old, at] of this.givenUp) {
      if (at > now - GIVEN_UP_MS) break
      this.givenUp.delete(old)
    }
  }
}
