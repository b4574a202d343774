/**
 * Methods a node runs for its own purposes (schedules), not for a message: methods.enabled
 * applies, methods.allow does not (the config itself asked). node.ts holds one and delegates
 * runLocal; close() stops what still runs.
 */
import type { Config } from './config'
import type { DiskGuard } from './lib/disk-guard'
import { Stopper } from './lib/stopper'
import type { LogFn } from './log'
import type { Method, MethodContext } from './method'
import { runMethod, stopGraceMs } from './run'
import type { LocalOutcome } from './schedules'
import { ulid as defaultUlid } from './wire/ulid'

export interface LocalRunsOptions {
  self: string
  config: Config
  dataDir: string
  methods: ReadonlyMap<string, Method>
  /** Native method names by name and alias. */
  names: ReadonlyMap<string, string>
  /** Whether a native method is switched on (methods.enabled, op.stop). */
  enabled: (native: string) => boolean
  log: LogFn
  now: () => number
  disk: DiskGuard
}

export class LocalRuns {
  private readonly running = new Set<Stopper>()

  constructor(private readonly o: LocalRunsOptions) {}

  /**
   * Run a method on this node for its own purposes (schedules): methods.enabled applies,
   * methods.allow does not (the config itself asked). Failures come back as `error`.
   */
  async run(name: string, args: string[], timeoutSeconds: number): Promise<LocalOutcome> {
    const { config, self } = this.o
    const native = this.o.names.get(name) ?? name
    const method = this.o.methods.get(native)
    if (method === undefined) return { error: { code: 'method_unknown', message: `${self} has no method ${name}` } }
    if (!this.o.enabled(native)) return { error: { code: 'method_disabled', message: `${native} is switched off on ${self} (methods.enabled or op.stop)` } }
    const stop = new Stopper()
    const seconds = timeoutSeconds > 0 ? timeoutSeconds : config.methods.timeout
    this.running.add(stop)
    const ctx: MethodContext = {
      node: self, env: { id: defaultUlid(), toNode: self, fromNode: self, method: native, methodArgs: args, createdAt: this.o.now() },
      args, config, dataDir: this.o.dataDir, get signal() { return stop.signal }, log: this.o.log, disk: this.o.disk,
    }
    // A stream run for a schedule: its chunks make one result, up to methods.outputCap.
    const chunks: Buffer[] = []
    let size = 0
    const cap = config.methods.outputCap
    try {
      const result = await runMethod(method, ctx, stop, {
        seconds, graceMs: stopGraceMs(config.methods.killGrace),
        onChunk: (chunk) => {
          if (size >= cap) return
          const b = Buffer.from(chunk)
          chunks.push(b)
          size += b.length
        },
      })
      if (method.kind === 'unary') return result
      const data = Buffer.concat([...chunks, ...(result.data !== undefined ? [Buffer.from(result.data)] : [])])
      return { ...result, data: data.subarray(0, cap) }
    } finally {
      this.running.delete(stop)
    }
  }

  /** Stop every run in progress, each with an error `reason` makes. */
  abortAll(reason: () => Error): void {
    for (const a of this.running) a.abort(reason())
  }
}
