/**
 * Which keys changed between the running config and a new one, and which of those the running
 * node can take over at once. Everything read per message or per run (methods.*, delivery
 * defaults, log.level, schedules, hello.interval, node.labels) is live; what was wired in at start
 * (transport, data directory, APIs, hub, log files) needs a restart.
 */
import path from 'node:path'
import type { Config } from './index'

/** What the remote configuration methods may do to the running node. */
export interface Control {
  /** The config file this node was started from; undefined when it has none of its own (`outpost up`'s node local). */
  configFile: string | undefined
  /** Make a validated config the running one where that needs no restart; says which changed keys need one. */
  apply(next: Config): ApplyResult
  /** Restart this node a second from now (after the reply is queued); throws restart_unavailable where it cannot. */
  restart(): void
  /** false where restart() cannot restart this node (inside `outpost up`, or without an agent); undefined: it can. */
  canRestart?: boolean
  /** Cancel job `id` of this node's jobs (src/jobs/, set once they run): op.cancel of a job id; false when it keeps none. */
  cancelJob?: (id: string, by: string) => boolean
}

export interface ApplyResult {
  /** Keys whose value changed (dotted, e.g. methods.commands). */
  changed: string[]
  /** Of those, the ones that take effect only after a restart. */
  restartNeeded: string[]
}

/** Keys applied to the running node without a restart. */
const LIVE = [
  'node.labels',
  'methods.enabled', 'methods.allow', 'methods.timeout', 'methods.commands', 'methods.shell', 'methods.outputCap', 'methods.killGrace',
  'delivery.ackTimeout', 'delivery.retries', 'delivery.ttl', 'delivery.maxFanOut',
  'log.level', 'schedules', 'hello.interval', 'audit.maxDataBytes', 'audit.exclude', 'security.nodeKeys',
  'jobs.keep',
  'security.trustedKeys', 'security.requireSignatures',
  'sessions.grace', 'sessions.idleTimeout', 'sessions.maxDuration', 'sessions.record', 'tunnels.allow', 'tunnels.listen',
]

/** Sections compared key by key; other top-level keys are compared whole. */
const SECTIONED = new Set(['node', 'transport', 'delivery', 'methods', 'hello', 'hub', 'api', 'upgrade', 'log', 'audit', 'security', 'jobs', 'sessions', 'tunnels'])

export interface ConfigDiff {
  changed: string[]
  live: string[]
  restartNeeded: string[]
}

export function diffConfig(current: Config, next: Config, cwd = process.cwd()): ConfigDiff {
  const a = current as unknown as Record<string, Record<string, unknown>>
  const b = { ...next, dataDir: path.resolve(cwd, next.dataDir) } as unknown as Record<string, Record<string, unknown>>
  const changed: string[] = []
  for (const top of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (SECTIONED.has(top)) {
      const sa = a[top] ?? {}
      const sb = b[top] ?? {}
      for (const k of new Set([...Object.keys(sa), ...Object.keys(sb)])) if (!same(sa[k], sb[k])) changed.push(`${top}.${k}`)
    } else if (!same(a[top], b[top])) {
      changed.push(top)
    }
  }
  changed.sort()
  return { changed, live: changed.filter((k) => LIVE.includes(k)), restartNeeded: changed.filter((k) => !LIVE.includes(k)) }
}

/** Copy the live keys of `next` into the running config object (everyone holds that object). */
export function applyLive(current: Config, next: Config, keys: readonly string[]): void {
  const a = current as unknown as Record<string, Record<string, unknown>>
  const b = next as unknown as Record<string, Record<string, unknown>>
  for (const key of keys) {
    const [top, sub] = key.split('.') as [string, string | undefined]
    if (sub === undefined) a[top] = structuredClone(b[top]!)
    else a[top]![sub] = structuredClone(b[top]![sub])
  }
}

function same(x: unknown, y: unknown): boolean {
  return JSON.stringify(x) === JSON.stringify(y)
}
