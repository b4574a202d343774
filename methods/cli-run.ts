/**
 * cli.run: run one command to completion and return its stdout, stderr and exit code.
 *
 *   args ─ [one string] ─▶ <methods.shell> -c STRING      ─┐
 *        ─ [file, ...argv] ─▶ file argv (no shell)         ─┴▶ detached child (own process group,
 *                                                               OUTPOST_RUN=<run id> in its environment)
 *   stdout/stderr ─ capped at methods.outputCap each (the rest is read and dropped, one mark)
 *   exit ─▶ { data, stderr, exitCode }
 *   abort ─▶ TERM group + marked processes, grace, KILL both ─▶ method_timeout
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import os from 'node:os'
import { OutpostError } from '../src/errors'
import { markedProcesses, processGroupOf, RUN_MARK, signalEach } from '../src/lib/process'
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'
import { resolveRunOptions, splitRunArgs } from './run-options'

/** Time between SIGTERM and SIGKILL to the process group of a stopped command. */
export const KILL_GRACE_MS = 2000

/**
 * After the command's own process exits, how long to keep reading output that is still in
 * the pipes. A background child that inherited them could hold them open for ever; past this
 * the pipes are closed and the result is returned.
 */
export const EXIT_DRAIN_MS = 250

const POLL_MS = 50

/** Looks for marked processes left after the SIGKILL (each one SIGKILLed) before giving up. */
const KILL_ROUNDS = 10

export interface RunOptions {
  /** Bytes kept per stream. */
  outputCap: number
  signal: AbortSignal
  /** Defaults to KILL_GRACE_MS. */
  graceMs?: number
  /** Run as this uid/gid (root only; checked by the caller). */
  uid?: number
  gid?: number
  /** The whole environment of the command. */
  env?: NodeJS.ProcessEnv
  cwd?: string
}

/** The truncation mark appended once to a stream cut at `cap` bytes. */
export function truncationMark(cap: number): string {
  return `\n[outpost: output truncated at ${cap} bytes]\n`
}

/** Keeps the first `cap` bytes of a stream; later bytes are counted as dropped. */
class CappedBuffer {
  private readonly chunks: Buffer[] = []
  private kept = 0
  private truncated = false

  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    const room = this.cap - this.kept
    if (chunk.length <= room) {
      this.chunks.push(chunk)
      this.kept += chunk.length
      return
    }
    // Copy the kept slice so the rest of a large chunk is not held in memory.
    if (room > 0) this.chunks.push(Buffer.from(chunk.subarray(0, room)))
    this.kept = this.cap
    this.truncated = true
  }

  bytes(): Uint8Array {
    if (this.truncated) this.chunks.push(Buffer.from(truncationMark(this.cap)))
    this.truncated = false
    return Buffer.concat(this.chunks)
  }
}

/** Send a signal to every process of a group; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false
    throw err
  }
}

/**
 * Stop a whole process group: SIGTERM, wait up to graceMs for it to empty, then SIGKILL.
 * Zombies still count as members until their parent reaps them, so a group of orphans under
 * a PID 1 that does not reap waits the full grace; the SIGKILL is then harmless.
 *
 * With `mark`, the processes that left the group (setsid, daemons) but carry the run's mark in
 * their environment (RUN_MARK) get the same signals: their parent pid is no help, as it becomes
 * 1 once the parent in between exits. They are looked up in /proc at the SIGTERM, polled during
 * the grace, and looked up again at the SIGKILL and until none is left (what they forked
 * meanwhile), for a few rounds at most.
 */
export async function killProcessGroup(pgid: number, graceMs = KILL_GRACE_MS, mark?: string): Promise<void> {
  // Members of the group carry the mark too: they get the group's signals, once.
  const marked = (among?: number[]): number[] => (mark === undefined ? [] : markedProcesses(mark, among).filter((pid) => processGroupOf(pid) !== pgid))
  let others = marked()
  signalEach(others, 'SIGTERM')
  if (!signalGroup(pgid, 'SIGTERM') && others.length === 0) return
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline) {
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())))
    others = marked(others)
    if (signalGroup(pgid, 0) || others.length > 0) continue
    // All gone that we knew of: a last look for ones started during the grace.
    others = marked()
    if (others.length === 0) return
    signalEach(others, 'SIGTERM')
  }
  signalGroup(pgid, 'SIGKILL')
  for (let round = 0; round < KILL_ROUNDS; round++) {
    others = marked()
    if (others.length === 0) return
    signalEach(others, 'SIGKILL')
    await sleep(POLL_MS / 5)
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves when the child has exited (its handle is released), or after `ms` at most. */
function waitForExit(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const done = (): void => { clearTimeout(timer); child.off('exit', done); resolve() }
    const timer = setTimeout(done, ms)
    child.once('exit', done)
  })
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code
  const num = signal === null ? undefined : os.constants.signals[signal]
  return 128 + (num ?? 0)
}

/** Characters of a command that messages show; the rest is counted (an E2BIG command can be megabytes). */
export const SHOWN_CHARS = 200

/** A command as messages show it: quoted, cut after SHOWN_CHARS characters with its full size. */
export function shownCommand(command: string): string {
  if (command.length <= SHOWN_CHARS) return JSON.stringify(command)
  return `${JSON.stringify(command.slice(0, SHOWN_CHARS))}… (${Buffer.byteLength(command)} bytes)`
}

/** Why exec refused with E2BIG, in sizes. */
function tooBig(file: string, argv: readonly string[], env: NodeJS.ProcessEnv): string {
  const args = [file, ...argv].reduce((n, a) => n + Buffer.byteLength(a) + 1, 0)
  const environ = Object.entries(env).reduce((n, [k, v]) => n + Buffer.byteLength(`${k}=${v ?? ''}`) + 1, 0)
  return `E2BIG: its arguments (${args} bytes) and environment (${environ} bytes) are too long for this system (Linux takes at most 128 KiB in one argument or variable and about a quarter of the stack limit in all)`
}

/**
 * Run `file` with `argv` in its own process group and collect its output. Resolves when it
 * exits (a non-zero exit is a result, not an error); rejects with method_failed when it cannot
 * start and with method_timeout when `signal` aborts (after the whole group, and what carries
 * the run's mark in its environment, is stopped).
 */
export function runCommand(file: string, argv: readonly string[], opts: RunOptions): Promise<MethodResult> {
  const { signal, outputCap } = opts
  const graceMs = opts.graceMs ?? KILL_GRACE_MS
  const what = shownCommand([file, ...argv].join(' '))
  const mark = randomUUID()
  if (signal.aborted) {
    return Promise.reject(new OutpostError('method_timeout', `cli.run: stopped before ${what} started`))
  }
  return new Promise<MethodResult>((resolve, reject) => {
    let child: ChildProcess
    try {
      // stdin is /dev/null: nothing is ever written to it, so a command reading it sees EOF.
      child = spawn(file, argv, {
        detached: true, stdio: ['ignore', 'pipe', 'pipe'],
        ...(opts.uid !== undefined ? { uid: opts.uid } : {}), ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
        env: { ...(opts.env ?? process.env), [RUN_MARK]: mark }, ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      })
    } catch (err) {
      // E2BIG, ENAMETOOLONG: the command (possibly megabytes of it) is shown cut short.
      const e = err as NodeJS.ErrnoException
      const why = e.code === 'E2BIG' ? tooBig(file, argv, opts.env ?? process.env) : e.message
      reject(new OutpostError('method_failed', `cli.run: cannot start ${what}: ${why}`, { cause: err }))
      return
    }
    const stdout = new CappedBuffer(outputCap)
    const stderr = new CappedBuffer(outputCap)
    let state: 'running' | 'exited' | 'killing' | 'done' = 'running'
    let exitCode = 0
    let drainTimer: NodeJS.Timeout | undefined

    const finish = (outcome: { ok: true } | { ok: false; error: OutpostError }): void => {
      if (state === 'done') return
      state = 'done'
      signal.removeEventListener('abort', onAbort)
      if (drainTimer !== undefined) clearTimeout(drainTimer)
      // Anything still holding the pipes (a background grandchild) no longer keeps us waiting.
      child.stdout?.destroy()
      child.stderr?.destroy()
      if (outcome.ok) resolve({ data: stdout.bytes(), stderr: stderr.bytes(), exitCode })
      else reject(outcome.error)
    }

    const onAbort = (): void => {
      if (state === 'exited') { finish({ ok: true }); return } // complete already, only draining
      if (state !== 'running') return
      state = 'killing'
      const pid = child.pid
      const stop = pid === undefined ? Promise.resolve() : killProcessGroup(pid, graceMs, mark).then(() => waitForExit(child, EXIT_DRAIN_MS * 4))
      stop.then(
        () => finish({ ok: false, error: new OutpostError('method_timeout', `cli.run: ${what} was stopped (methodTimeout or cancel); its process group and the processes it started were killed`) }),
        (err: unknown) => finish({ ok: false, error: new OutpostError('method_timeout', `cli.run: ${what} was stopped but killing its process group failed: ${(err as Error).message}`, { cause: err }) }),
      )
    }
    signal.addEventListener('abort', onAbort, { once: true })

    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk))
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk))
    child.on('error', (err: NodeJS.ErrnoException) => {
      // A spawn failure (ENOENT, EACCES) leaves no pid; later errors are not ours to report.
      if (child.pid !== undefined) return
      const why = err.code === 'ENOENT' ? 'ENOENT (no such program)' : err.code === 'EACCES' ? 'EACCES (not executable, or permission denied)' : (err.code ?? err.message)
      finish({ ok: false, error: new OutpostError('method_failed', `cli.run: cannot start ${shownCommand(file)}: ${why}`, { cause: err }) })
    })
    child.on('exit', (code, sig) => {
      if (state !== 'running') return
      state = 'exited'
      exitCode = exitCodeOf(code, sig)
      drainTimer = setTimeout(() => finish({ ok: true }), EXIT_DRAIN_MS)
    })
    // 'close': the process exited and both pipes reached EOF: all output is in.
    child.on('close', () => {
      if (state === 'exited') finish({ ok: true })
    })
  })
}

export default {
  name: 'cli.run',
  aliases: ['REQCliCommand', 'REQnCliCommand', 'sync.bash'],
  kind: 'unary',
  summary: 'Run a command (one shell string, or argv) and return stdout, stderr and exitCode; --user/--group/--env/--cwd before a -- set how.',
  async run(ctx: MethodContext): Promise<MethodResult> {
    const { shell, outputCap } = ctx.config.methods
    const { options, command } = splitRunArgs(ctx.args)
    const [first, ...rest] = command
    if (first === undefined) {
      throw new OutpostError('method_args', 'cli.run: no command given; pass a shell string or a program and its arguments in methodArgs')
    }
    const opts = { outputCap, signal: ctx.signal, ...(await resolveRunOptions(options)) }
    return rest.length === 0 ? runCommand(shell, ['-c', first], opts) : runCommand(first, rest, opts)
  },
} satisfies UnaryMethod
