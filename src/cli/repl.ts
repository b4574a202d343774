/**
 * `outpost repl`: an interactive shell for send, nodes and call, with line editing and a
 * persistent history (node:readline). Each line runs the same code as the command of that
 * name (src/cli/client.ts), with the REPL's --config / --data-dir / --socket.
 *
 *   line ─ split like a shell (quotes, backslashes) ─▶ send | nodes | call ─▶ output as it comes
 *   Ctrl-C while a command waits ─▶ its AbortSignal: the wait (or a local method) stops;
 *          what the node accepted stays queued there
 *   Ctrl-C at the prompt clears the line; Ctrl-D or `exit` leaves
 *
 * History: --history FILE, else $OUTPOST_HISTORY, else ~/.outpost_history (mode 0600, 1000 lines).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { METHODS } from '../../methods/index'
import { call, nodes, send } from './client'
import { EXIT, GLOBAL_HELP, load, parse, print, type Io } from './common'
import { OutpostError, isOutpostError } from '../errors'

const HISTORY_SIZE = 1000

const HELP = `Commands:
  send [--to NODE]... [--timeout S] [--ttl S] [--no-wait] METHOD [-- ARGS...]
                       submit at this node; replies are printed as they arrive (streams too)
  nodes                the nodes this node has heard from
  call METHOD [-- ARGS...]
                       run a method here, with no network (JSON result, or a stream's output)
  help                 this text; \`send --help\` and the like for a command's options
  exit                 leave (also Ctrl-D)
Ctrl-C stops waiting for replies (what was accepted stays queued) or stops a local call.
Up/Down walk the history (kept across sessions); Tab completes command and method names.`

/** Split a line as a shell would: whitespace separates, quotes group, backslash escapes. */
export function splitLine(line: string): string[] {
  const out: string[] = []
  let cur = ''
  let has = false
  let quote: '"' | "'" | undefined
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!
    if (quote) {
      if (ch === quote) quote = undefined
      else if (ch === '\\' && quote === '"' && i + 1 < line.length) cur += line[++i]
      else cur += ch
    } else if (ch === '"' || ch === "'") {
      quote = ch
      has = true
    } else if (ch === '\\' && i + 1 < line.length) {
      cur += line[++i]
      has = true
    } else if (/\s/.test(ch)) {
      if (has || cur !== '') out.push(cur)
      cur = ''
      has = false
    } else {
      cur += ch
    }
  }
  if (quote) throw new OutpostError('usage', `unclosed ${quote} quote`)
  if (has || cur !== '') out.push(cur)
  return out
}

function historyFile(io: Io, flag: string | undefined): string {
  if (flag !== undefined) return path.resolve(io.cwd, flag)
  if (io.env.OUTPOST_HISTORY) return path.resolve(io.cwd, io.env.OUTPOST_HISTORY)
  return path.join(io.env.HOME ?? os.homedir(), '.outpost_history')
}

/** Newest first, as readline wants it; the file keeps them oldest first, like a shell's. */
function readHistory(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').slice(-HISTORY_SIZE).reverse()
  } catch {
    return []
  }
}

function writeHistory(file: string, newestFirst: readonly string[]): void {
  try {
    fs.writeFileSync(file, [...newestFirst].reverse().join('\n') + '\n', { mode: 0o600 })
  } catch { /* a read-only home: the session still works */ }
}

const COMMANDS = ['send', 'nodes', 'call', 'help', 'exit', 'quit']

export async function repl(io: Io, args: string[]): Promise<number> {
  const { values } = parse(args, { socket: { type: 'string' }, history: { type: 'string' } }, false)
  if (values.help) return print(io, `Usage: outpost repl [--socket PATH] [--history FILE]\n\n  An interactive shell for send, nodes and call against this node.\n\n${HELP}\n\n${GLOBAL_HELP}`)
  const { config } = load(io, values, false)
  // What every line's command gets: the REPL's own choice of config, data directory and socket.
  const base: string[] = []
  if (values.config !== undefined) base.push('--config', values.config)
  if (values['data-dir'] !== undefined) base.push('--data-dir', values['data-dir'])
  const withSocket = values.socket !== undefined ? ['--socket', values.socket] : []
  const hist = historyFile(io, values.history)
  const input = process.stdin
  const methodNames = [...METHODS.keys()]
  const rl = readline.createInterface({
    input, output: process.stdout, terminal: input.isTTY === true,
    history: readHistory(hist), historySize: HISTORY_SIZE, removeHistoryDuplicates: true,
    prompt: `${config.node.name}> `,
    completer: (line: string): [string[], string] => {
      const words = line.split(/\s+/)
      const last = words.at(-1) ?? ''
      const pool = words.length <= 1 ? COMMANDS : methodNames
      const hits = pool.filter((c) => c.startsWith(last))
      return [hits.length > 0 ? hits : [], last]
    },
  })
  rl.on('history', (h: string[]) => writeHistory(hist, h))
  const say = (s: string): void => { io.stdout.write(s.endsWith('\n') ? s : s + '\n') }
  if (input.isTTY === true) say(`outpost repl on ${config.node.name} (${config.dataDir}); help for commands, Ctrl-D to leave`)

  let current: AbortController | undefined
  const queue: string[] = []
  let running = false
  let closed = false
  let finish: (code: number) => void = () => {}
  const done = new Promise<number>((resolve) => { finish = resolve })

  const runLine = async (line: string, signal: AbortSignal): Promise<void> => {
    const words = splitLine(line)
    const [cmd, ...rest] = words
    switch (cmd) {
      case undefined: return
      case 'help': case '?': say(HELP); return
      case 'exit': case 'quit': rl.close(); return
      case 'send': await report(await send(io, [...base, ...withSocket, ...rest], signal)); return
      case 'nodes': await report(await nodes(io, [...base, ...withSocket, ...rest], signal)); return
      case 'call': await report(await call(io, [...base, ...rest], signal)); return
      default: throw new OutpostError('usage', `unknown command '${cmd}'; type help`)
    }
  }
  const report = async (code: number): Promise<void> => {
    if (code !== EXIT.ok) io.stderr.write(`(exit ${code})\n`)
  }
  const pump = async (): Promise<void> => {
    if (running) return
    running = true
    while (queue.length > 0) {
      const line = queue.shift()!
      current = new AbortController()
      try {
        await runLine(line, current.signal)
      } catch (err) {
        io.stderr.write(isOutpostError(err) ? `${err.message} [${err.code}]\n` : `unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
      } finally {
        current = undefined
      }
    }
    running = false
    if (closed) finish(EXIT.ok)
    else rl.prompt()
  }

  rl.on('line', (line) => { queue.push(line); void pump() })
  rl.on('SIGINT', () => {
    if (current) {
      queue.length = 0
      current.abort(new OutpostError('cancelled', 'cancelled (Ctrl-C); what the node accepted stays queued there and its replies go to the reply method'))
      return
    }
    // At the prompt: drop the line, as a shell does.
    io.stdout.write('^C\n')
    rl.write(null, { ctrl: true, name: 'u' })
    rl.prompt()
  })
  rl.on('close', () => {
    closed = true
    if (input.isTTY === true) io.stdout.write('\n')
    if (!running) finish(EXIT.ok)
  })
  rl.prompt()
  return done
}
