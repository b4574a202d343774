/**
 * Schedules that send their method to other nodes (`schedules[].to`: names and selectors): at
 * each slot central makes a job of it (runner.ts), the selectors resolved against its node list
 * at that moment. The node's own scheduler (node-routines.ts) runs the other schedules; this one keeps its
 * last runs apart, in <dataDir>/schedule-jobs.json, and follows config changes (config.set
 * replaces config.schedules; looked at once a second).
 */
import path from 'node:path'
import type { LogFn } from '../log'
import type { OutpostNode } from '../node'
import { isJobSchedule, Scheduler, type Schedule } from '../schedules'
import type { JobRunner } from './runner'
import type { JobOptions } from './store'

const CHECK_MS = 1000

export class ScheduledJobs {
  private scheduler: Scheduler | undefined
  private seen: readonly Schedule[] | undefined
  private readonly timer: NodeJS.Timeout
  private warned = false

  constructor(private readonly node: OutpostNode, private readonly runner: JobRunner, private readonly log: LogFn) {
    this.refresh()
    this.timer = setInterval(() => this.refresh(), CHECK_MS)
    this.timer.unref()
  }

  private refresh(): void {
    const schedules = this.node.config.schedules
    if (schedules === this.seen) return
    this.seen = schedules
    this.scheduler?.stop()
    this.scheduler = undefined
    if (!schedules.some(isJobSchedule)) return
    if (!this.node.keepsNodeList && !this.warned) {
      this.warned = true
      this.log('warn', `schedules: an entry with "to" sends a job, which only central (${this.node.config.node.central}) does; ${this.node.name} leaves it alone`)
      return
    }
    this.scheduler = new Scheduler({
      schedules, central: this.node.config.node.central, dataDir: this.node.dataDir, stampFile: path.join(this.node.dataDir, 'schedule-jobs.json'),
      runLocal: () => Promise.reject(new Error('not used')), submit: () => Promise.reject(new Error('not used')),
      log: this.log,
      job: async (s, i) => this.fire(s, i),
    })
    this.scheduler.start()
  }

  private async fire(s: Schedule, i: number): Promise<void> {
    const options: JobOptions = {}
    if (s.batch !== undefined && s.batch !== '') options.batch = s.batch
    if (s.maxErrors !== undefined && s.maxErrors > 0) options.maxErrors = s.maxErrors
    if (s.canary !== undefined && s.canary > 0) options.canary = s.canary
    const job = this.runner.create({ toNodes: [...(s.to ?? [])], method: s.method, methodArgs: [...(s.methodArgs ?? [])], ...(s.methodTimeout ? { methodTimeout: s.methodTimeout } : {}) }, options, false, `schedule ${i + 1} (${s.cron})`)
    this.log('info', `schedule ${i + 1} (${s.cron} ${s.method}): job ${job.id} to ${job.nodes.length} node${job.nodes.length === 1 ? '' : 's'}`)
  }

  stop(): void {
    clearInterval(this.timer)
    this.scheduler?.stop()
  }
}
