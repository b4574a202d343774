/**
 * The local APIs a running node offers, started and stopped together: the unix socket (always),
 * the HTTP API (api.http) and Prometheus metrics (api.metrics).
 */
import path from 'node:path'
import type { Config } from '../config'
import type { LogFn } from '../log'
import type { OutpostNode } from '../node'
import { HttpApi } from './http'
import type { PromMetrics } from './prometheus'
import { SocketApi } from './socket'
import { RecentRequests } from './recent'
import { JobRunner } from '../jobs/runner'
import { ScheduledJobs } from '../jobs/schedule-jobs'

export interface Apis {
  /** Stop every API (idempotent). */
  close(): Promise<void>
}

export function socketPath(config: Config): string {
  return path.resolve(config.api.socket ?? path.join(config.dataDir, 'outpost.sock'))
}

/** prom-client costs ~12 MB of memory: it is loaded only when api.metrics is set. */
const prometheus = (): typeof import('./prometheus') => require('./prometheus') as typeof import('./prometheus')

/** The node's metrics hooks when api.metrics is set (they must exist before the node starts). */
export function createMetrics(config: Config): PromMetrics | undefined {
  return config.api.metrics !== null ? new (prometheus().PromMetrics)() : undefined
}

/** Start the APIs the config asks for; on failure, those already started are stopped again. */
export async function startApis(node: OutpostNode, config: Config, metrics: PromMetrics | undefined, log: LogFn): Promise<Apis> {
  const started: { close(): Promise<void> }[] = []
  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    closing ??= (async () => { for (const a of started.reverse()) await a.close() })()
    return closing
  }
  try {
    // Jobs resume here after a restart (their state is in <dataDir>/jobs), whoever asks.
    const jobs = new JobRunner(node)
    const scheduled = new ScheduledJobs(node, jobs, log)
    started.push({ close: async () => { scheduled.stop(); jobs.close() } })
    // One record of recent requests for both APIs: the console sees what the CLI sent, with its method.
    const recent = config.api.http !== null ? new RecentRequests() : undefined
    started.push(await SocketApi.start(node, socketPath(config), log, jobs, recent))
    if (config.api.http !== null) started.push(await HttpApi.start(node, { listen: config.api.http, token: config.api.token ?? '', log, jobs, ...(recent ? { recent } : {}) }))
    if (metrics !== undefined && config.api.metrics !== null) {
      const prom = metrics
      prom.attach(node)
      await prom.serve(config.api.metrics, log)
      started.push(prom)
    }
  } catch (err) {
    await close()
    throw err
  }
  return { close }
}
