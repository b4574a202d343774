/**
 * A node's own timed work: its schedules (schedules.ts, started again when config.* changes
 * them) and the shipping of its log files to central (log-shipper.ts). node.ts holds one.
 */
import type { Config } from './config'
import type { LogFn } from './log'
import { LogShipper } from './log-shipper'
import { Scheduler, type SchedulerOptions } from './schedules'
import type { Envelope, MessageDraft } from './wire/envelope'

export interface RoutinesOptions {
  config: Config
  dataDir: string
  log: LogFn
  now: () => number
  runLocal: SchedulerOptions['runLocal']
  submit: (drafts: MessageDraft[]) => Promise<Envelope[]>
  /** Whether the node is stopping (no schedules start again then). */
  closing: () => boolean
}

export class Routines {
  private scheduler: Scheduler | undefined
  private shipper: LogShipper | undefined

  constructor(private readonly o: RoutinesOptions) {}

  /** Schedules, and the log shipper when logs are configured. */
  start(): void {
    const { config, dataDir, submit, log } = this.o
    this.startSchedules()
    if (config.logs.length > 0) {
      this.shipper = new LogShipper({ logs: config.logs, central: config.node.central, dataDir, submit, log })
      this.shipper.start()
    }
  }

  /** (Re)start the schedules of the config as it is now. */
  startSchedules(): void {
    const { config } = this.o
    this.scheduler?.stop()
    this.scheduler = undefined
    if (config.schedules.length === 0 || this.o.closing()) return
    this.scheduler = new Scheduler({
      schedules: config.schedules, central: config.node.central, dataDir: this.o.dataDir,
      runLocal: this.o.runLocal, submit: this.o.submit, log: this.o.log, now: this.o.now,
    })
    this.scheduler.start()
  }

  async stop(): Promise<void> {
    this.scheduler?.stop()
    await this.shipper?.stop()
  }
}
