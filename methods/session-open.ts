/**
 * session.open: an interactive pseudo-terminal on this node for `outpost shell`, live for as long
 * as the session lasts (src/sessions/host.ts).
 *
 *   [SID, --rows=R, --cols=C, --term=T, --user= --group= --env= --cwd= (as cli.run), --, CMD…]
 *   no CMD: the user's login shell (interactive); one CMD string: <methods.shell> -c CMD; else argv
 *   pty (its own session and process group, OUTPOST_RUN mark) ◀─ data · resize · eof ─ channel
 *   pty output ─▶ data frames (the pty pauses while the window is full) ─▶ exit frame ─▶ result
 *   any end ─▶ SIGHUP to the group, then TERM, grace, KILL (and marked strays): no orphans
 */
import fs from 'node:fs'
import os from 'node:os'
import { randomUUID } from 'node:crypto'
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'
import { closeWhenDrained, loadPty, PtyInput } from '../src/lib/pty'
import { RUN_MARK } from '../src/lib/process'
import { ended, host, parseHostArgs } from '../src/sessions/host'
import { Recording } from '../src/sessions/record'
import { killProcessGroup, signalGroup } from './cli-run'
import { resolveRunOptions } from './run-options'

function dimension(v: string | undefined, def: number, name: string): number {
  if (v === undefined) return def
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1 || n > 10000) throw new OutpostError('method_args', `session.open: --${name} must be a whole number from 1 to 10000, got ${JSON.stringify(v)}`)
  return n
}

/** The login shell of `uid` in /etc/passwd; else $SHELL, else methods.shell. */
function loginShell(uid: number | undefined, fallback: string): string {
  const id = uid ?? process.getuid?.() ?? -1
  const text = (() => { try { return fs.readFileSync('/etc/passwd', 'utf8') } catch { return '' } })()
  for (const line of text.split('\n')) {
    const f = line.split(':')
    if (Number(f[2]) === id && f[6] !== undefined && f[6] !== '' && fs.existsSync(f[6])) return f[6]
  }
  return process.env.SHELL ?? fallback
}

export default {
  name: 'session.open',
  kind: 'unary',
  summary: 'An interactive terminal on this node for `outpost shell` (live frames, not stored); --user/--group/--env/--cwd as cli.run.',
  async run(ctx: MethodContext): Promise<MethodResult> {
    const { sid, options, rest } = parseHostArgs('session.open', ctx.args)
    const one = (k: string): string | undefined => options.get(k)?.at(-1)
    const rows = dimension(one('rows'), 24, 'rows')
    const cols = dimension(one('cols'), 80, 'cols')
    const term = one('term') ?? 'xterm-256color'
    const user = one('user')
    const group = one('group')
    for (const k of options.keys()) if (!['rows', 'cols', 'term', 'user', 'group', 'env', 'cwd'].includes(k)) throw new OutpostError('method_args', `session.open: unknown option --${k} (--rows --cols --term --user --group --env --cwd)`)
    const spawnOpts = await resolveRunOptions({ env: options.get('env') ?? [], ...(user !== undefined ? { user } : {}), ...(group !== undefined ? { group } : {}), ...(one('cwd') !== undefined ? { cwd: one('cwd')! } : {}) }, process.env, 'session.open')
    const loaded = loadPty()
    if (!loaded.ok) throw new OutpostError('pty_unavailable', `session.open: no pseudo-terminal on ${ctx.node}: ${loaded.reason}`)
    const shell = loginShell(spawnOpts.uid, ctx.config.methods.shell)
    const [file, args] = rest.length === 0 ? [shell, [] as string[]] : rest.length === 1 ? [ctx.config.methods.shell, ['-c', rest[0]!]] : [rest[0]!, rest.slice(1)]
    const mark = randomUUID()
    const env = { ...(spawnOpts.env ?? process.env), TERM: term, [RUN_MARK]: mark } as Record<string, string>
    const home = env.HOME ?? os.homedir()
    let pty: ReturnType<typeof loaded.pty.spawn>
    try {
      pty = loaded.pty.spawn(file, args, {
        name: term, cols, rows, cwd: spawnOpts.cwd ?? (fs.existsSync(home) ? home : '/'), env, encoding: null,
        ...(spawnOpts.uid !== undefined ? { uid: spawnOpts.uid } : {}), ...(spawnOpts.gid !== undefined ? { gid: spawnOpts.gid } : {}),
      })
    } catch (err) {
      throw new OutpostError('method_failed', `session.open: cannot start ${file}: ${(err as Error).message}`, { cause: err })
    }
    const pid = pty.pid
    // The terminal is read to its end after the program exits (onExit follows the last output).
    const closeTerminal = closeWhenDrained(pty)
    // Input is credited once the terminal took it: a program that does not read its input (a
    // paste into `sleep`) holds the sender to the window, not this node's memory.
    let credit = (_n: number): void => {}
    const input = new PtyInput(pty, (n) => credit(n))
    const graceMs = ctx.config.methods.killGrace * 1000
    const what = [file, ...args].join(' ')
    const rec = ctx.live?.settings().record === true ? new Recording(ctx.dataDir, ctx.env.id, { cols, rows, term, shell: file, title: `${ctx.node}: ${what}` }, ctx.log) : undefined
    let exited = false
    const stop = async (): Promise<void> => {
      // Input the program never read goes with the terminal.
      input.close()
      closeTerminal()
      // A shell ignores TERM; the hangup is what a terminal going away means.
      if (!exited) signalGroup(pid, 'SIGHUP')
      await killProcessGroup(pid, graceMs, mark)
      try { pty.kill('SIGKILL') } catch { /* gone */ }
    }
    let session: ReturnType<typeof host>
    try {
      session = host(ctx, sid, stop)
    } catch (err) {
      // No channel (the node is stopping, or the id is taken): nothing may outlive this run.
      rec?.close()
      await stop()
      throw err
    }
    const { ch } = session
    credit = (n) => ch.consumed(n)
    ch.handler = {
      frame(f) {
        switch (f.type) {
          case 'data':
            if (f.data !== undefined) input.write(f.data)
            break
          case 'resize': {
            const r = Number(f.args[0])
            const c = Number(f.args[1])
            if (Number.isInteger(r) && Number.isInteger(c) && r > 0 && c > 0 && r <= 10000 && c <= 10000) { pty.resize(c, r); rec?.resize(c, r) }
            break
          }
          case 'eof': input.write('\x04'); break
          default: break
        }
      },
      drain() { pty.resume() },
      // After the exit frame the flushed() path ends it with the exit code.
      end(error) { if (!exited) session.end({ error: error ?? new OutpostError('session_closed', `${ctx.env.fromNode} closed the session`) }) },
    }
    pty.onData((d) => {
      const bytes = d as unknown as Buffer
      rec?.output(bytes)
      if (!ch.write('data', bytes)) pty.pause()
    })
    pty.onExit(({ exitCode, signal }) => {
      exited = true
      const code = signal !== undefined && signal !== 0 ? 128 + signal : exitCode
      ch.write('exit', undefined, [], code)
      void ch.flushed(ctx.live!.settings().grace * 1000).then(() => session.end({ exitCode: code }))
    })
    ch.write('ready', undefined, [String(pid)])
    ctx.log('info', `session.open: ${ctx.env.fromNode} opened a terminal on ${ctx.node} running ${what}${user !== undefined ? ` as ${user}` : ''} (pid ${pid}, request ${ctx.env.id})`)
    const r = await session.done
    rec?.close()
    return ended(ctx, ch, what, user, r)
  },
} satisfies UnaryMethod
