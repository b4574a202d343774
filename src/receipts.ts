/**
 * Receipts of requests to sinks, recorded together. The envelopes one read from the transport
 * brings (a batch frame's, all received in the same turn of the microtask queue) are marked seen
 * with one journal append under one promise, and then each is ACKed and run, in arrival order.
 * Before, each had its own record promise, its own `await` in the dispatcher, and its own
 * continuation.
 *
 *   receive ─ add(env) ─▶ group ─ next tick ─▶ record(ids) (one append, one fdatasync or a few) ─┬▶ done(env) each: ACK, run
 *                                                                                                └ failed: durable(id)? done : failed(env)
 *
 * A receipt is on disk before its ACK (SPEC §1.3) as before: done() runs only once the append has
 * resolved, or, after a failure, for the ids the store has as seen (they are on disk: a resend
 * would be taken for a duplicate, so the message must run now).
 */
import type { Envelope } from './wire/envelope'

/** Most receipts recorded under one promise. */
const PIECE = 128

export interface ReceiptGroupOptions {
  /** Mark these ids seen, durably; one promise for all. */
  record: (ids: string[]) => Promise<void>
  /** Whether `id` is on disk as seen (after a failed record: some may be). */
  durable: (id: string) => boolean
  /** Recorded: ACK it, run it. */
  done: (env: Envelope) => void
  /** Not recorded: no ACK, its sender sends it again. */
  failed: (env: Envelope, err: Error) => void
}

export class ReceiptGroup {
  private group: Envelope[] = []
  /**
   * Resolves once the last request not to a sink received so far has started (after(); FIFO per
   * sender): what is added after it runs after it. Undefined once it has.
   */
  last: Promise<unknown> | undefined

  constructor(private readonly o: ReceiptGroupOptions) {}

  add(env: Envelope): void {
    // After the microtask queue: every envelope of the same read joins (the transport hands them over one microtask apart).
    if (this.group.length === 0) process.nextTick(this.flush)
    this.group.push(env)
  }

  /**
   * Record what waits now, before a message that is not a sink's request (say file.commit after
   * its file.chunk messages): its record then follows theirs, and it runs after them once the
   * returned promise has resolved (they are ACKed and started). Undefined when nothing waits.
   */
  flushNow(): Promise<void> | undefined {
    return this.group.length === 0 ? undefined : this.flush()
  }

  /** A request not to a sink was received (after flushNow()): `started` resolves once it is ACKed and started (or not recorded). */
  after(started: Promise<unknown>): void {
    this.last = started
    void started.then(() => { if (this.last === started) this.last = undefined })
  }

  private readonly flush = (): Promise<void> | undefined => {
    const all = this.group
    if (all.length === 0) return undefined // flushNow() took them
    this.group = []
    // One read can bring a thousand and more (zbatch frames): recorded in pieces, each piece's
    // ACKs go out as it commits rather than after the last (the journal cuts receipts at 128 a commit too).
    if (all.length <= PIECE) return this.record(all)
    let last: Promise<void> | undefined
    for (let i = 0; i < all.length; i += PIECE) last = this.record(all.slice(i, i + PIECE))
    return last
  }

  private record(envs: Envelope[]): Promise<void> {
    const ids = new Array<string>(envs.length)
    for (let i = 0; i < envs.length; i++) ids[i] = envs[i]!.id
    let recording: Promise<void>
    try {
      recording = this.o.record(ids)
    } catch (err) {
      recording = Promise.reject(err)
    }
    const run = (): void => {
      for (const env of envs) this.o.done(env)
    }
    const fail = (err: Error): void => {
      for (const env of envs) {
        if (this.o.durable(env.id)) this.o.done(env)
        else this.o.failed(env, err)
      }
    }
    // A request not to a sink ahead of these: they run after it has started.
    const last = this.last
    if (last === undefined) return recording.then(run, fail)
    return Promise.allSettled([recording, last]).then(([r]) => { if (r.status === 'fulfilled') run(); else fail(r.reason as Error) })
  }
}
