/**
 * The method contract (types only). Each module in methods/ is a plain object checked with
 * `satisfies UnaryMethod` (or StreamMethod) and listed in methods/index.ts.
 */
import type { Config } from './config'
import type { Envelope } from './envelope'
import type { MethodName } from './method-names'

export interface MethodContext {
  /** The node running the method. */
  node: string
  /** The request (or, for reply methods, the reply) being handled. */
  env: Envelope
  /** env.methodArgs (or replyMethodArgs for reply methods, with {{DATA}} expanded). */
  args: string[]
  config: Config
  /** Absolute data directory; reply files stay inside it. */
  dataDir: string
  /** Aborted at methodTimeout or on cancel: stop, and kill what was started. */
  signal: AbortSignal
  log: (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void
}

export interface MethodResult {
  /** stdout, or the method's output. */
  data?: Uint8Array | string
  stderr?: Uint8Array | string
  exitCode?: number
}

export interface UnaryMethod {
  name: MethodName
  kind: 'unary'
  /** One-line description for `op.list` and --help. */
  summary: string
  run(ctx: MethodContext): Promise<MethodResult>
}

export type Method = UnaryMethod
