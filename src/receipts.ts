/**
 * Receipts of requests to sinks, recorded together. The envelopes one read from the transport
 * brings (a batch frame's, all received in the same turn of the microtask queue) are marked seen
 * with one journal append under one promise, and then each is ACKed and run, in arrival order.
 *
 *   receive ─ add(env) ─▶ group ─ next tick ─▶ the runs of the piece before have ended? ─▶ record(ids) + open its mark (one append) ─┬▶ done(env) each: ACK, run ─▶ all ended: close the mark (rides the next commit)
 *                                                                                                                                 └ failed: durable(id)? done : failed(env)
 *
 * A receipt is on disk before its ACK (SPEC §1.3) as before: done() runs only once the append has
 * resolved, or, after a failure, for the ids the store has as seen (they are on disk: a resend
 * would be taken for a duplicate, so the message must run now).
 *
 * A sink is taken as started with its receipt: a resend after a crash is a duplicate, never run.
 * So that a crash loses at most one piece's runs (not every run still queued behind the disk:
 * 384-500 error.log lines of 3,000 before), a piece is recorded only once the runs of the piece
 * before it have ended; what waits meanwhile is not ACKed, and after a crash its sender sends it
 * again and it runs. Each such piece opens a mark in its receipts' append and closes it once its
 * runs have ended: a mark still open after a restart is the piece a crash caught, which
 * unfinished() tells (code `sink_interrupted`). Sinks whose lost runs are made good without this
 * node (`selfHealing`: file.chunk, node.hello) neither wait nor open a mark.
 */
import type { Envelope } from './wire/envelope'

/**
 * Most receipts recorded under one promise: with its mark, one journal commit (the journal cuts
 * a queue that starts with a receipt at 128 records; a piece of 128 and its mark would take two).
 */
export const PIECE = 127

export interface ReceiptGroupOptions {
  /** Mark these ids seen, durably; one promise for all. */
  record: (ids: string[]) => Promise<void>
  /** Whether `id` is on disk as seen (after a failed record: some may be). */
  durable: (id: string) => boolean
  /** Recorded: ACK it, run it; resolves once the run has ended. */
  done: (env: Envelope) => Promise<unknown> | void
  /** Not recorded: no ACK, its sender sends it again. */
  failed: (env: Envelope, err: Error) => void
  /** A sink whose runs a crash loses are made good without this node (no waiting, no mark). */
  selfHealing?: (env: Envelope) => boolean
  /** Open a piece's mark (before its receipts, in the same commit as a rule), and close it. */
  marks?: { open: (key: string, body: Uint8Array) => Promise<void>; close: (key: string) => void }
}

/** Marks of pieces are inbox entries keyed below every ULID (and never an id the wire can bring). */
export const MARK_PREFIX = '#sinks '

/** A piece's mark: how many requests to which methods, from whom. */
interface MarkBody { n: number; methods: Record<string, number>; from: Record<string, number> }

function markBody(envs: readonly Envelope[]): Uint8Array {
  const b: MarkBody = { n: envs.length, methods: {}, from: {} }
  for (const e of envs) {
    b.methods[e.method] = (b.methods[e.method] ?? 0) + 1
    b.from[e.fromNode] = (b.from[e.fromNode] ?? 0) + 1
  }
  return Buffer.from(JSON.stringify(b))
}

const count = (m: Record<string, number>): string => Object.entries(m).map(([k, n]) => `${k} ×${n}`).join(', ')

/**
 * After a restart, for an inbox entry that is a mark still open: the requests to sinks a crash
 * caught between their receipt and the end of their runs (some or all did not run, and none runs
 * again), told as an error for the log and central's error.log. Undefined for any other entry.
 */
export function caughtSinks(e: { id: string; body: Uint8Array }, self: string): { code: 'sink_interrupted'; message: string; count: number } | undefined {
  if (!e.id.startsWith(MARK_PREFIX)) return undefined
  let b: MarkBody
  try {
    b = JSON.parse(Buffer.from(e.body).toString('utf8')) as MarkBody
  } catch {
    b = { n: 0, methods: {}, from: {} }
  }
  const what = `${b.n} requests to sinks (${count(b.methods)}; from ${count(b.from)})`
  return { code: 'sink_interrupted', count: b.n, message: `${self}: ${what} were received and taken as started when it stopped; some may not have run, and none runs again` }
}

export class ReceiptGroup {
  private group: Envelope[] = []
  /** What the next piece waits for: the end of the runs of the last piece recorded (see above); undefined when nothing. */
  private waiting: Promise<unknown> | undefined
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
    // ACKs go out as it commits rather than after the last (the journal cuts receipts at 128 records a commit too).
    if (all.length <= PIECE) return this.record(all)
    let last: Promise<void> | undefined
    for (let i = 0; i < all.length; i += PIECE) last = this.record(all.slice(i, i + PIECE))
    return last
  }

  private record(envs: Envelope[]): Promise<void> {
    // One piece between its receipts and the end of its runs at a time; self-healing ones only keep their place.
    const healing = this.o.selfHealing !== undefined && envs.every(this.o.selfHealing)
    const mark = healing || this.o.marks === undefined ? undefined : `${MARK_PREFIX}${envs[0]!.id}`
    const last = this.last // what was received before these, read now
    const go = (): Promise<void> => this.commit(envs, !healing, mark, last)
    // Nothing to wait for: recorded at once (ahead of a request not to a sink that flushNow() let by).
    const recorded = this.waiting === undefined ? go() : this.waiting.then(go)
    if (healing && this.waiting === undefined) return recorded
    const waiting = healing ? recorded.catch(() => undefined) : recorded.then(() => this.ended, () => undefined)
    this.waiting = waiting
    void waiting.then(() => { if (this.waiting === waiting) this.waiting = undefined })
    return recorded
  }

  /** The runs of the piece commit() last ran. */
  private ended: Promise<unknown> = Promise.resolve()

  private commit(envs: Envelope[], guarded: boolean, mark: string | undefined, last: Promise<unknown> | undefined): Promise<void> {
    const ids = new Array<string>(envs.length)
    for (let i = 0; i < envs.length; i++) ids[i] = envs[i]!.id
    let recording: Promise<void>
    try {
      // The mark first: it is in the same commit as the receipts or an earlier one, never a later.
      recording = mark === undefined ? this.o.record(ids) : Promise.all([this.o.marks!.open(mark, markBody(envs)), this.o.record(ids)]).then(() => undefined)
    } catch (err) {
      recording = Promise.reject(err)
    }
    const runs: Promise<unknown>[] = []
    const start = (env: Envelope): void => {
      const r = this.o.done(env)
      if (r !== undefined) runs.push(r)
    }
    const ended = (): void => {
      if (guarded) this.ended = Promise.allSettled(runs).then(() => { if (mark !== undefined) this.o.marks!.close(mark) })
    }
    const run = (): void => {
      for (const env of envs) start(env)
      ended()
    }
    const fail = (err: Error): void => {
      for (const env of envs) {
        if (this.o.durable(env.id)) start(env)
        else this.o.failed(env, err)
      }
      ended()
    }
    // A request not to a sink ahead of these: they run after it has started.
    if (last === undefined) return recording.then(run, fail)
    return Promise.allSettled([recording, last]).then(([r]) => { if (r.status === 'fulfilled') run(); else fail(r.reason as Error) })
  }
}
