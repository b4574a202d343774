/**
 * What every transport plugin shares: start and close (once each, whatever the caller does),
 * the queues behind messages() and events(), the sweep that drops parts of messages whose
 * sender went away, and reading the files a config names. A plugin supplies `open` (start
 * connecting) and `shutdown` (let go of its connection); the base makes both idempotent.
 */
import fs from 'node:fs'
import { AsyncQueue } from '../src/lib/async-queue'
import { LogTally } from '../src/log-tally'
import { OutpostError } from '../src/errors'
import type { Inbound, TransportEvent, TransportOptions } from '../src/transport'

const SWEEP_EVERY_MS = 30_000
/**
 * Envelopes read and not yet taken by the node (its read loop waits while its dispatcher has too
 * many in hand, src/backlog.ts) past which a transport stops reading its connection, until the
 * node has taken them: a flooding sender's window fills instead of this process's memory.
 */
export const INTAKE_MAX_MESSAGES = 1024
/** The same bound in bytes of envelopes. */
export const INTAKE_MAX_BYTES = 16 * 1024 * 1024

/**
 * How long to wait before reconnect attempt `attempt` (0-based): "full jitter", a delay drawn
 * evenly from 0 to the capped exponential backoff, so that nodes cut off together (a hub or
 * broker restarting) come back spread over that whole time instead of in one wave.
 */
export function fullJitter(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30)))
}

export abstract class TransportBase<S = unknown> {
  protected readonly opts: TransportOptions<S>
  protected readonly inbound = new AsyncQueue<Inbound>((m) => m.bytes.length)
  protected readonly evq = new AsyncQueue<TransportEvent>()
  private sweeper: NodeJS.Timeout | undefined
  private state: 'new' | 'started' | 'closed' = 'new'
  private closing: Promise<void> | undefined

  abstract readonly kind: string
  private tally: LogTally | undefined
  /** Called once the node has taken what waited in the intake (whenIntakeRoom). */
  private roomWaiters: (() => void)[] = []

  constructor(opts: TransportOptions<S>) {
    this.opts = opts
    this.inbound.onTaken = () => {
      if (this.roomWaiters.length === 0 || this.intakeFull) return
      const w = this.roomWaiters
      this.roomWaiters = []
      for (const f of w) f()
    }
  }

  /** Payloads dropped as malformed, which anyone who may publish can send by the thousand: a few lines, then a count (src/log-tally.ts). */
  protected get drops(): LogTally {
    return (this.tally ??= new LogTally(this.opts.log, `${this.kind}: `))
  }

  /** The intake holds INTAKE_MAX_MESSAGES envelopes or INTAKE_MAX_BYTES: stop reading until whenIntakeRoom. */
  get intakeFull(): boolean {
    return this.inbound.size >= INTAKE_MAX_MESSAGES || this.inbound.weight >= INTAKE_MAX_BYTES
  }

  /**
   * After a read: when the intake is full, `source` (a socket, a stream) is not read again until
   * the node has taken what waits. Backpressure: the sender's window fills, nothing is dropped.
   */
  protected throttle(source: { pause(): unknown; resume(): unknown; isPaused(): boolean }): void {
    if (!this.intakeFull || source.isPaused()) return
    source.pause()
    this.whenIntakeRoom(() => { source.resume() })
  }

  /** `go` is called once the node has taken what waits in the intake (at once when it is not full). */
  whenIntakeRoom(go: () => void): void {
    if (!this.intakeFull) go()
    else this.roomWaiters.push(go)
  }

  /** Start connecting; later calls, and a call after close, do nothing. */
  start(): void {
    if (this.state !== 'new') return
    this.state = 'started'
    this.open()
  }

  /** Close for good: `shutdown` runs once, then messages() and events() end. Every call gets the same promise. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const wasStarted = this.state === 'started'
      this.state = 'closed'
      try {
        if (wasStarted) await this.shutdown()
      } finally {
        this.endQueues()
      }
    })()
    return this.closing
  }

  /** True once close() was called: connection loops stop, and late connections are let go. */
  protected get closed(): boolean {
    return this.state === 'closed'
  }

  /** Begin connecting (and reconnecting while open). Called once, by start(). */
  protected abstract open(): void
  /** Let go of the connection. Called once, by the first close() after start(). */
  protected abstract shutdown(): Promise<void>

  messages(): AsyncIterable<Inbound> {
    return this.inbound
  }

  messageBatches(): AsyncIterable<readonly Inbound[]> {
    return this.inbound.batches()
  }

  events(): AsyncIterable<TransportEvent> {
    return this.evq
  }

  /** Every 30 s, `sweep` drops the parts of messages that stopped arriving (it returns their ids). */
  protected startSweeping(sweep: () => string[]): void {
    this.sweeper = setInterval(() => {
      for (const id of sweep()) this.opts.log('warn', `dropped the incomplete message ${id}`)
    }, SWEEP_EVERY_MS)
    this.sweeper.unref()
  }

  /** No more messages or events: the node's loops over them end. */
  private endQueues(): void {
    if (this.sweeper) clearInterval(this.sweeper)
    this.tally?.stop()
    this.inbound.end()
    this.evq.end()
  }
}

/** A file the config names (a CA, a key, credentials), or config_invalid naming the key. */
export function readConfigFile(key: string, file: string): Buffer {
  try {
    return fs.readFileSync(file)
  } catch (err) {
    throw new OutpostError('config_invalid', `${key}: cannot read ${file}: ${(err as Error).message}`)
  }
}
