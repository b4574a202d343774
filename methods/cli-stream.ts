/**
 * cli.stream: run a command in a pseudo-terminal and stream its output until it exits or is
 * stopped (methodTimeout, op.cancel).
 *
 *   args ─ [one string] ─▶ <methods.shell> -c STRING  ─┐
 *        ─ [file, ...argv] ─▶ file argv (no shell)      ─┴▶ pty (session leader = process group)
 *                                                           or, without the addon, a detached child
 *   output (pty: stdout and stderr together, CRLF → LF) ─▶ yielded chunks ─▶ numbered replies
 *   exit ─▶ what is left of its group, and what carries its OUTPOST_RUN mark, is stopped too ─▶ { exitCode }
 *   abort ─▶ SIGTERM to the group and the marked, methods.killGrace s, SIGKILL ─▶ { exitCode: 128 + signal }
 */
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import { AsyncQueue } from '../src/lib/async-queue'
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, StreamMethod } from '../src/method'
import { isAlive, markedProcesses, RUN_MARK } from '../src/lib/process'
import { loadPty } from '../src/lib/pty'
import { killProcessGroup, shownCommand, signalGroup } from './cli-run'

/** A started command: its group id (= its pid), its output, and its exit code. */
interface Started {
  pgid: number
  /** Ends once the command has exited and its output is read. */
  output: AsyncQueue<Buffer>
  exited: Promise<number>
  /** Read output again after it was paused (backpressure: meanwhile the command blocks on a full terminal or pipe). */
  resume(): void
}

/**
 * Chunks waiting to be taken past which the command's output is no longer read (it blocks on
 * its terminal or pipe), and where reading resumes. High, so that pausing is rare: node-pty
 * reads a terminal only 200 ms past the command's exit.
 */
const HIGH_WATER = 256
const LOW_WATER = 16

export interface StreamOptions {
  signal: AbortSignal
  graceMs: number
  log: MethodContext['log']
  /** Force the detached-child fallback even where the pty addon loads. */
  noPty?: boolean
}

let fallbackLogged = false

function exitCode(code: number | null, signal: NodeJS.Signals | number | null | undefined): number {
  if (typeof signal === 'number' && signal > 0) return 128 + signal
  if (typeof signal === 'string') return 128 + (os.constants.signals[signal] ?? 0)
  return code ?? 0
}


/** In a pty, forkpty makes the command a session leader: its pid is its process group. */
function startPty(file: string, argv: readonly string[], opts: StreamOptions, env: NodeJS.ProcessEnv): Started | undefined {
  const loaded = opts.noPty ? { ok: false as const, reason: 'the pty is switched off' } : loadPty()
  if (!loaded.ok) {
    if (!fallbackLogged) opts.log('warn', `cli.stream: no pseudo-terminal (${loaded.reason}); commands run as a detached process group instead`)
    fallbackLogged = true
    return undefined
  }
  const term = loaded.pty.spawn(file, [...argv], {
    name: 'dumb', cols: 512, rows: 50, cwd: process.cwd(), env: env as Record<string, string>, encoding: null,
  })
  // Linux may report the end of a terminal (EIO) before the last output written to it has
  // reached the reader, and node-pty then drops it. Holding the terminal open here until the
  // command has exited avoids that end; node-pty reads on for 200 ms after the exit.
  let slave: number | undefined
  try {
    const name = (term as unknown as { ptsName?: unknown }).ptsName
    if (typeof name === 'string') slave = fs.openSync(name, fs.constants.O_RDWR | fs.constants.O_NOCTTY)
  } catch { /* exited already, or not allowed: the plain end */ }
  const output = new AsyncQueue<Buffer>()
  let paused = false
  let pendingCr = false
  // A terminal turns each LF into CRLF; the stream carries plain lines. A CR at the end of a
  // chunk waits for the next one to see whether an LF follows.
  term.onData((d: string | Buffer) => {
    let b = typeof d === 'string' ? Buffer.from(d) : d
    if (pendingCr) b = Buffer.concat([Buffer.from('\r'), b])
    pendingCr = b[b.length - 1] === 0x0d
    if (pendingCr) b = b.subarray(0, -1)
    const text = b.toString('latin1').replaceAll('\r\n', '\n')
    if (text.length > 0) output.push(Buffer.from(text, 'latin1'))
    if (output.size > HIGH_WATER) pause()
  })
  // node-pty drops the terminal's last buffer 200 ms after the command exits unless it is read:
  // while paused, watch for the exit and read on.
  let watch: NodeJS.Timeout | undefined
  const resume = (): void => {
    if (!paused) return
    paused = false
    clearInterval(watch)
    term.resume()
  }
  const pause = (): void => {
    if (paused) return
    paused = true
    term.pause()
    watch = setInterval(() => { if (!isAlive(term.pid)) resume() }, 50)
  }
  const exited = new Promise<number>((resolve) => {
    term.onExit(({ exitCode: code, signal }) => {
      clearInterval(watch)
      if (slave !== undefined) fs.close(slave, () => {})
      if (pendingCr) output.push(Buffer.from('\r'))
      output.end()
      resolve(exitCode(code, signal))
    })
  })
  return { pgid: term.pid, output, exited, resume }
}

/** Without a pty: a detached child (its own process group); stdout and stderr interleaved. */
function startDetached(file: string, argv: readonly string[], env: NodeJS.ProcessEnv): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env })
    const output = new AsyncQueue<Buffer>()
    const take = (d: Buffer): void => {
      output.push(d)
      if (output.size > HIGH_WATER) { child.stdout.pause(); child.stderr.pause() }
    }
    child.stdout.on('data', take)
    child.stderr.on('data', take)
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (child.pid === undefined) reject(new OutpostError('method_failed', `cli.stream: cannot start ${JSON.stringify(file)}: ${err.code ?? err.message}`, { cause: err }))
    })
    const exited = new Promise<number>((res) => {
      child.once('exit', (code, sig) => {
        // A background child may hold the pipes: its group is stopped after the exit (below),
        // and the output ends when the pipes close, or shortly after the exit at the latest.
        const timer = setTimeout(() => { child.stdout.destroy(); child.stderr.destroy(); output.end() }, 1000)
        child.once('close', () => { clearTimeout(timer); output.end() })
        res(exitCode(code, sig))
      })
    })
    child.once('spawn', () => resolve({ pgid: child.pid!, output, exited, resume: () => { child.stdout.resume(); child.stderr.resume() } }))
  })
}

/** Run argv in its own process group; yield its output; return its exit code. */
export async function* streamCommand(file: string, argv: readonly string[], opts: StreamOptions): AsyncGenerator<Buffer, MethodResult, undefined> {
  if (opts.signal.aborted) throw new OutpostError('method_timeout', `cli.stream: stopped before ${shownCommand([file, ...argv].join(' '))} started`)
  // The mark finds what the command started outside its group (setsid, daemons).
  const mark = randomUUID()
  const env = { ...process.env, [RUN_MARK]: mark }
  const started = startPty(file, argv, opts, env) ?? await startDetached(file, argv, env)
  let killing: Promise<void> | undefined
  const stop = (): Promise<void> => (killing ??= killProcessGroup(started.pgid, opts.graceMs, mark).catch((err: Error) => {
    opts.log('error', `cli.stream: cannot kill process group ${started.pgid}: ${err.message}`)
  }))
  const onAbort = (): void => { void stop() }
  opts.signal.addEventListener('abort', onAbort, { once: true })
  if (opts.signal.aborted) void stop() // stopped while it was starting
  let done = false
  try {
    for await (const chunk of started.output) {
      yield chunk
      if (started.output.size < LOW_WATER) started.resume()
    }
    const code = await started.exited
    done = true
    // The job owns its group and what carries its mark: what the command left running stops with it.
    if (signalGroup(started.pgid, 0) || markedProcesses(mark).length > 0) await stop()
    return { exitCode: code }
  } finally {
    opts.signal.removeEventListener('abort', onAbort)
    // Closed early by the consumer (return/throw): nothing of the group may outlive the job.
    if (!done) await stop()
  }
}

export default {
  name: 'cli.stream',
  aliases: ['REQCliCommandCont', 'REQnCliCommandCont'],
  kind: 'stream',
  summary: 'Run a command in a pty and stream its output until it exits or methodTimeout; then its whole process group is killed.',
  run(ctx: MethodContext): AsyncGenerator<Buffer, MethodResult, undefined> {
    const { shell, killGrace } = ctx.config.methods
    const [first, ...rest] = ctx.args
    if (first === undefined) {
      throw new OutpostError('method_failed', 'cli.stream: no command given; pass a shell string or a program and its arguments in methodArgs')
    }
    const opts = { signal: ctx.signal, graceMs: killGrace * 1000, log: ctx.log }
    return rest.length === 0 ? streamCommand(shell, ['-c', first], opts) : streamCommand(first, rest, opts)
  },
} satisfies StreamMethod
