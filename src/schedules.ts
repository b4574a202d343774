/**
 * Schedules (config `schedules:`): run a method on this node on a cron expression and send the
 * result through the outbox to `toNode` (default node.central), as a message for its
 * `replyMethod` (default reply.file.append) carrying data, stderr, exitCode or error, the way
 * a reply would.
 *
 *   timer at the next cron slot ─▶ stamp last run (atomic file) ─▶ runLocal(method) ─▶ submit(result → toNode)
 *   start: a slot passed since the stamped last run (node down or asleep) ─▶ one catch-up run now
 *
 * The method runs here, not through a message to this node: the schedule comes from this
 * node's own config (no ACL question), and a message to self would send its reply back here
 * rather than to toNode. methods.enabled and op.stop still apply (runLocal checks them).
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type { Config } from './config'
import { dataText, type MessageDraft } from './wire/envelope'
import { OutpostError } from './errors'
import type { LogFn } from './log'
import type { MethodResult } from './method'
import { writeFileAtomic } from './lib/atomic-file'
import { cronExpression, type CronExpression } from './lib/cron'

export type Schedule = Config['schedules'][number]

/** What runLocal gives back: the method's result, or why it failed. */
export type LocalOutcome = MethodResult & { error?: { code: string; message: string } }

export interface SchedulerOptions {
  schedules: readonly Schedule[]
  central: string
  dataDir: string
  /** Run a method on this node with a timeout (seconds; 0: methods.timeout). */
  runLocal: (method: string, args: string[], timeoutSeconds: number) => Promise<LocalOutcome>
  /** Into the outbox; resolves once durable. */
  submit: (drafts: MessageDraft[]) => Promise<unknown>
  log: LogFn
  now?: () => number
  /**
   * Schedules with `to` (jobs, src/jobs/schedule-jobs.ts): made into a job at each slot. Given,
   * this scheduler runs only those; without it, only the others.
   */
  job?: (s: Schedule, i: number) => Promise<void>
  /** The last-run stamps' file (default <dataDir>/schedules.json). */
  stampFile?: string
}

/** Whether a schedule sends its method to other nodes as a job (`to`) rather than running it here. */
export function isJobSchedule(s: Schedule): boolean {
  return (s.to ?? []).length > 0
}

/** setTimeout's limit: longer delays fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** Parse a cron expression of 5 fields, or 6 with seconds first. */
export function parseCron(expr: string, from = Date.now()): CronExpression {
  const fields = expr.trim().split(/\s+/).length
  if (fields !== 5 && fields !== 6) throw new OutpostError('config_invalid', `cron ${JSON.stringify(expr)} has ${fields} fields; give 5 (minute hour day month weekday) or 6 (seconds first)`)
  try {
    return cronExpression(expr, { currentDate: new Date(from) })
  } catch (err) {
    throw new OutpostError('config_invalid', `cron ${JSON.stringify(expr)}: ${(err as Error).message}`, { cause: err })
  }
}

/** What a schedule's last-run stamp is filed under: its content, so an edited entry starts afresh. */
export function scheduleKey(s: Schedule): string {
  return createHash('sha256').update(JSON.stringify([s.cron, s.method, s.methodArgs ?? [], s.toNode ?? '', ...(isJobSchedule(s) ? [s.to] : [])])).digest('hex').slice(0, 16)
}

export class Scheduler {
  private readonly o: SchedulerOptions
  private readonly now: () => number
  private readonly timers = new Map<number, NodeJS.Timeout>()
  private readonly running = new Set<number>()
  private stamps: Record<string, number> = {}
  private stopped = false

  constructor(o: SchedulerOptions) {
    this.o = o
    this.now = o.now ?? Date.now
  }

  private get file(): string {
    return this.o.stampFile ?? path.join(this.o.dataDir, 'schedules.json')
  }

  /** Catch up missed runs (one each), then arm every schedule's timer. */
  start(): void {
    try {
      this.stamps = JSON.parse(fs.readFileSync(this.file, 'utf8')) as Record<string, number>
    } catch { /* first start: nothing ran yet */ }
    const now = this.now()
    let fresh = false
    for (const [i, s] of this.o.schedules.entries()) {
      if (isJobSchedule(s) !== (this.o.job !== undefined)) continue
      const key = scheduleKey(s)
      const last = this.stamps[key]
      if (last === undefined) {
        // Never ran: nothing was missed. The stamp makes a later outage visible.
        this.stamps[key] = now
        fresh = true
      } else {
        const prev = parseCron(s.cron, now).prev().getTime()
        if (prev > last) {
          this.o.log('info', `schedule ${i + 1} (${s.cron} ${s.method}): missed since ${new Date(last).toISOString()}; running once now`)
          void this.fire(i, now)
        }
      }
      this.arm(i)
    }
    if (fresh) this.save()
  }

  private arm(i: number): void {
    if (this.stopped) return
    const s = this.o.schedules[i]!
    const next = parseCron(s.cron, this.now()).next().getTime()
    const timer = setTimeout(() => {
      this.timers.delete(i)
      void this.fire(i, next)
      this.arm(i)
    }, Math.min(Math.max(0, next - this.now()), MAX_TIMER_MS))
    timer.unref()
    this.timers.set(i, timer)
  }

  private save(): void {
    try {
      writeFileAtomic(this.file, JSON.stringify(this.stamps))
    } catch (err) {
      this.o.log('warn', `schedules: cannot record the last runs in ${this.file}: ${(err as Error).message}`)
    }
  }

  private async fire(i: number, slot: number): Promise<void> {
    const s = this.o.schedules[i]!
    const what = `schedule ${i + 1} (${s.cron} ${s.method})`
    if (this.running.has(i)) {
      this.o.log('warn', `${what}: the previous run is still going; this slot is skipped`)
      return
    }
    this.running.add(i)
    try {
      // Stamped before it runs: a crash mid-run is not caught up again (the run may have had effects).
      this.stamps[scheduleKey(s)] = Math.max(slot, this.stamps[scheduleKey(s)] ?? 0)
      this.save()
      if (this.o.job !== undefined) return await this.o.job(s, i)
      const out = await this.o.runLocal(s.method, s.methodArgs ?? [], s.methodTimeout ?? 0)
      if (this.stopped && out.error?.code === 'interrupted') return
      const text = dataText(out.data)
      const draft: MessageDraft = {
        toNode: s.toNode || this.o.central,
        method: s.replyMethod || 'reply.file.append',
        methodArgs: (s.replyMethodArgs ?? []).map((a) => a.replaceAll('{{DATA}}', text).replaceAll('{{STEWARD_DATA}}', text)),
        ...(out.data !== undefined ? { data: out.data } : {}),
        ...(out.stderr !== undefined && out.stderr.length > 0 ? { stderr: out.stderr } : {}),
        ...(out.exitCode !== undefined ? { exitCode: out.exitCode } : {}),
        ...(out.error ? { error: out.error } : {}),
        directory: s.directory || 'schedules',
        fileName: s.fileName || `${s.method}.log`,
      }
      await this.o.submit([draft])
      this.o.log('debug', `${what}: ran; result queued for ${draft.toNode}`)
    } catch (err) {
      this.o.log('error', `${what}: ${(err as Error).message}`)
    } finally {
      this.running.delete(i)
    }
  }

  /** Stop the timers (runs in progress finish on their own). Idempotent. */
  stop(): void {
    this.stopped = true
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
  }
}
