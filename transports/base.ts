/**
 * What every transport plugin shares: the queues behind messages() and events(), the sweep
 * that drops parts of messages whose sender went away, and reading the files a config names.
 */
import fs from 'node:fs'
import { AsyncQueue } from '../src/async-queue'
import { OutpostError } from '../src/errors'
import type { Inbound, TransportEvent, TransportOptions } from '../src/transport'

const SWEEP_EVERY_MS = 30_000

export abstract class TransportBase {
  protected readonly opts: TransportOptions
  protected readonly inbound = new AsyncQueue<Inbound>()
  protected readonly evq = new AsyncQueue<TransportEvent>()
  private sweeper: NodeJS.Timeout | undefined

  constructor(opts: TransportOptions) {
    this.opts = opts
  }

  messages(): AsyncIterable<Inbound> {
    return this.inbound
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
  protected endQueues(): void {
    if (this.sweeper) clearInterval(this.sweeper)
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
