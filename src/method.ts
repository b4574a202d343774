/**
 * The method contract (types only). Each module in methods/ is a plain object checked with
 * `satisfies UnaryMethod` (or StreamMethod) and listed in methods/index.ts.
 */
import type { Config } from './config'
import type { Control } from './config/apply'
import type { LogFn } from './log'
import type { Live } from './sessions/live'
import type { Envelope } from './wire/envelope'
import type { FileRoom } from './files/types'

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
  log: LogFn
  /** The running node's handlers and jobs (op.*); absent where no node runs (`outpost call`). */
  ops?: Ops
  /** The running node's config file and restart (config.*, agent.restart); absent in `outpost call`. */
  control?: Control
  /** Room on the data directory's disk for files beside the store (reply files, errors.log); absent: not checked. */
  disk?: DiskRoom
  /** The running node's file transfers (file.*); absent where no node runs (`outpost call`). */
  files?: FileRoom
  /** The running node's live channels (session.open, tunnel.open); absent in `outpost call`. */
  live?: Live
}

/**
 * Files a method writes into the data directory ask first: on a nearly full disk the room left
 * is kept for the outbox's records (deliveries, replies, receipts).
 */
export interface DiskRoom {
  /** Whether `bytes` may be written now; false while free space is down to the store's reserve plus a margin (skip the write). */
  allow(bytes: number): boolean
  /** Whether writes are stopped now (the last allow() said no): the disk guard has said so once. */
  readonly paused: boolean
}

/** A method run the dispatcher is executing now. */
export interface JobInfo {
  id: string
  method: string
  from: string
  /** Milliseconds since the epoch. */
  started: number
}

export interface HandlerInfo {
  name: string
  kind: Method['kind']
  summary: string
  enabled: boolean
}

/** What op.* may see and change in the dispatcher; nothing else of the core is reachable. */
export interface Ops {
  handlers(): HandlerInfo[]
  jobs(): JobInfo[]
  /** Switch a handler on or off in memory; throws method_unknown, or method_disabled for what the config switched off. */
  setEnabled(name: string, on: boolean): void
  /** Abort a running job (its reply carries `cancelled`); false when no job has this id. */
  cancel(id: string, by: string): boolean
}

export interface MethodResult {
  /** stdout, or the method's output. */
  data?: Uint8Array | string
  stderr?: Uint8Array | string
  exitCode?: number
}

/** What every method module declares about itself. */
interface MethodBase {
  /** Its native name, such as cli.run. */
  name: string
  /** Other names it answers to (steward's REQ… names, BasicAgent's sync.bash). */
  aliases?: readonly string[]
  /** One-line description for `op.list` and --help. */
  summary: string
  /** It receives results rather than producing them (reply.*, error.log, heartbeats): it is never replied to. */
  sink?: boolean
  /**
   * A sink whose runs a crash loses are made good without this node's record (file.chunk: asked
   * for again at the commit; node.hello: the next heartbeat): its receipts do not wait for the
   * runs before them, and a restart does not count it among those that may not have run (receipts.ts).
   */
  selfHealing?: boolean
  /** op.stop cannot switch it off (op.* is how handlers are switched on again). */
  alwaysOn?: boolean
}

export interface UnaryMethod extends MethodBase {
  kind: 'unary'
  run(ctx: MethodContext): Promise<MethodResult>
  /**
   * Reply sinks: after the node was killed while this ran for a reply, whether its effect is
   * already in place (then it is not run again; without this hook it runs again).
   */
  landed?(ctx: MethodContext): Promise<boolean>
  /**
   * landed() for all the replies to this method a crash caught, in the order they came: when
   * several wrote one place (a file's appends go together), a later one's effect hides an
   * earlier one's, which landed() alone would run again.
   */
  landedAll?(ctxs: readonly MethodContext[]): Promise<boolean[]>
  /**
   * Reply sinks that keep what they receive where it can be found again (reply.file.append):
   * the reply stored for request `id` in its default place, if there is one.
   */
  stored?(dataDir: string, id: string): StoredReply | undefined
}

/** A reply a sink stored: which node answered, where, the text (cut at 1 MiB), its error line. */
export interface StoredReply {
  fromNode: string
  /** Relative to the data directory. */
  file: string
  text: string
  error?: { code: string; message: string }
}

/**
 * A method whose output comes over time (cli.stream, file.tail): it yields chunks as they
 * come and returns the end result (exitCode). The dispatcher coalesces the chunks into
 * numbered replies; when ctx.signal aborts the method stops what it started and returns.
 */
export interface StreamMethod extends MethodBase {
  kind: 'stream'
  /** methodTimeout is this method's normal end (file.tail): its final reply carries no method_timeout. */
  untilTimeout?: boolean
  run(ctx: MethodContext): AsyncGenerator<Uint8Array | string, MethodResult, undefined>
}

export type Method = UnaryMethod | StreamMethod
