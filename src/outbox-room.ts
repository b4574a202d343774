/**
 * How a message gets into the outbox, and what happens when the outbox is full
 * (delivery.whenFull):
 *
 *   reply to an inbox entry ─▶ enqueueReply (closes the entry in the same record)
 *   event or reply           ─▶ enqueue
 *   request                  ─▶ enqueue with its request record (what authorises its replies)
 *   outbox_full ─ refuse            ─▶ the caller gets outbox_full (nothing stored)
 *               └ dropOldestEvents  ─▶ the oldest events (ackTimeout 0) not on their way now are
 *                                      removed until the message fits, then it is stored; with
 *                                      no event left to drop it is refused as above
 *
 * Requests and replies are never dropped. What is dropped is logged, counted, and reported to
 * central in one error.log (events_dropped) per REPORT_MS at most.
 */
import { Decoder } from '@msgpack/msgpack'
import type { Config } from './config'
import type { MessageEventSink } from './events'
import { isOutpostError } from './errors'
import type { LogFn } from './log'
import { DEFAULT_REPLY_METHOD } from './method-names'
import type { EnqueueInput, Outbox, OutboxEntry, Route } from './store/outbox'
import type { Envelope } from './wire/envelope'

/** Drops are summed up in one report to central at most this often. */
const REPORT_MS = 10_000
const DECODER = new Decoder()

export interface OutboxRoomOptions {
  outbox: Pick<Outbox, 'enqueue' | 'enqueueAll' | 'enqueueReply' | 'all' | 'remove' | 'stats'>
  config: () => Config
  log: LogFn
  /** Whether delivery has `id` on its way (or its removal being written): not dropped. */
  busy: (id: string) => boolean
  /** An error for central (error.log). */
  report: (error: { code: string; message: string }) => void
  /** Each event dropped is an `expired` event, reason `events_dropped` (the audit log's and the counters' end of it). */
  events?: MessageEventSink
}

export class OutboxRoom {
  /** Events dropped since this node started. */
  dropped = 0
  private unreported = 0
  private reportTimer: NodeJS.Timeout | undefined
  private lastReport = 0
  /** Drops one at a time: concurrent refusals would otherwise each drop room for themselves and more. */
  private dropping: Promise<unknown> = Promise.resolve()

  constructor(private readonly o: OutboxRoomOptions) {}

  /** Store `env` (encoded as `input`); resolves once it is durable. */
  async store(env: Envelope, input: EnqueueInput, inboxId: string | undefined, expiresAt: number): Promise<void> {
    const put = (): Promise<OutboxEntry> => {
      if (inboxId !== undefined) return this.o.outbox.enqueueReply(input, inboxId)
      if (env.inReplyTo !== undefined || env.ackTimeout === 0) return this.o.outbox.enqueue(input)
      // A request: its record authorises its replies (dispatcher), kept until its reply may last
      // come (ttl, then methodTimeout) plus a day; written with it.
      const until = expiresAt + (env.methodTimeout ?? this.o.config().methods.timeout) * 1000
      return this.o.outbox.enqueue({ ...input, request: { replyMethod: env.replyMethod ?? DEFAULT_REPLY_METHOD, until } })
    }
    try {
      await put()
    } catch (err) {
      if (!isOutpostError(err, 'outbox_full') || this.o.config().delivery.whenFull !== 'dropOldestEvents') throw err
      const room = this.dropping.then(() => this.makeRoom(input.body.length))
      this.dropping = room.catch(() => {})
      if (!(await room)) throw err
      await put()
    }
  }

  /**
   * Store a slice of a request's messages (`inputs`, encoded from `envs`) at once; resolves once
   * all are durable. A slice that does not fit is refused as a whole (nothing stored); with
   * dropOldestEvents its messages are then stored one at a time as store() does, making room.
   */
  async storeAll(envs: readonly Envelope[], inputs: (EnqueueInput & { route: Route })[]): Promise<void> {
    const timeout = this.o.config().methods.timeout
    for (let i = 0; i < envs.length; i++) {
      const env = envs[i]!
      if (env.inReplyTo !== undefined || env.ackTimeout === 0) continue
      // A request: its record, written with it (see store()).
      const input = inputs[i]!
      input.request = { replyMethod: env.replyMethod ?? DEFAULT_REPLY_METHOD, until: input.expiresAt + (env.methodTimeout ?? timeout) * 1000 }
    }
    try {
      await this.o.outbox.enqueueAll(inputs)
    } catch (err) {
      if (!isOutpostError(err, 'outbox_full') || this.o.config().delivery.whenFull !== 'dropOldestEvents') throw err
      await Promise.all(envs.map((env, i) => this.store(env, inputs[i]!, undefined, inputs[i]!.expiresAt)))
    }
  }

  /** Remove the oldest events until `size` more bytes fit; false when the events are not enough (none is dropped then). */
  private async makeRoom(size: number): Promise<boolean> {
    const { bytes, maxBytes } = this.o.outbox.stats()
    let need = bytes + size - maxBytes
    if (need <= 0) return true // another drop made room meanwhile
    const victims: OutboxEntry[] = []
    for (const e of this.o.outbox.all()) {
      if (need <= 0) break
      if (!isEvent(e) || this.o.busy(e.id)) continue
      victims.push(e)
      need -= e.body.length
    }
    if (need > 0) return false // not enough events: nothing is dropped for nothing
    await Promise.all(victims.map((e) => this.o.outbox.remove(e.id)))
    for (const e of victims) this.o.events?.({ type: 'expired', id: e.id, toNode: e.dest, method: e.route?.method ?? (DECODER.decode(e.body) as { method?: string }).method ?? '', reason: 'events_dropped' })
    this.dropped += victims.length
    this.unreported += victims.length
    const kinds = [...new Set(victims.map((e) => `${e.route?.method ?? 'event'} to ${e.dest}`))].slice(0, 3).join(', ')
    this.o.log('warn', `outbox full (delivery.maxOutboxBytes ${maxBytes}): dropped the ${victims.length} oldest events (${kinds}) to make room (delivery.whenFull dropOldestEvents); ${this.dropped} dropped since start`, { code: 'events_dropped' })
    this.reportLater()
    return true
  }

  private reportLater(): void {
    if (this.reportTimer !== undefined) return
    // Not at once: the report is an event itself, queued into the outbox this drop just made room in.
    const wait = Math.max(1000, this.lastReport + REPORT_MS - Date.now())
    this.reportTimer = setTimeout(() => {
      this.reportTimer = undefined
      this.lastReport = Date.now()
      const n = this.unreported
      this.unreported = 0
      this.o.report({ code: 'events_dropped', message: `the outbox was full: ${n} events dropped to make room for newer messages (delivery.whenFull dropOldestEvents; ${this.dropped} since start)` })
    }, wait)
    this.reportTimer.unref()
  }

  stop(): void {
    if (this.reportTimer !== undefined) clearTimeout(this.reportTimer)
  }
}

function isEvent(e: OutboxEntry): boolean {
  const ackTimeout = e.route !== undefined ? e.route.ackTimeout : (DECODER.decode(e.body) as { ackTimeout?: number }).ackTimeout
  return ackTimeout === 0
}
