/**
 * `outpost shell NODE [-- CMD...]`: a terminal on NODE through this node's agent.
 *
 *   stdin (raw mode on a terminal: Ctrl-C, Ctrl-Z, Ctrl-D are bytes for the remote) ─▶ {"in"}
 *   SIGWINCH ─▶ {"resize":[rows,cols]}      {"out"} ─▶ stdout (the socket pauses while stdout is full)
 *   {"exit":{"code"}} ─▶ the terminal restored, exit with the remote status
 */
import path from 'node:path'
import { exitCodeFor } from '../errors'
import { EXIT, GLOBAL_HELP, load, parse, print, socketPath, type Io } from './common'
import { openStream } from './session-stream'

const HELP = `Usage: outpost shell NODE [--user NAME] [--group NAME] [--cwd DIR] [--env K=V]... [-- CMD...]

  An interactive terminal on NODE (session.open), through the same connection the agents
  keep: no inbound port on NODE. Without CMD, the user's login shell; with one CMD string,
  methods.shell -c CMD; with several words, that program and its arguments.

  Keys go as typed (Ctrl-C, Ctrl-Z, Ctrl-D reach the remote program); the window size goes at
  start and on every resize. A link that drops comes back within NODE's sessions.grace
  without losing a key or a byte of output; past it the session ends and its processes are
  killed.

  --user NAME, --group NAME   run as this account on NODE (its agent must run as root)
  --cwd DIR, --env K=V        working directory, environment (repeatable)
  --allow-unknown             open to a node the node list has not heard of
  --socket PATH               this node's API socket (default <dataDir>/outpost.sock)

  Exit: the remote program's exit status; 1 the session failed or was lost (session_lost,
  session_timeout), 2 usage or no agent here, 3 refused (denied, method_disabled) or not
  delivered.

${GLOBAL_HELP}`

export interface Terminal {
  stdin: NodeJS.ReadStream
  stdout: NodeJS.WriteStream
  onResize(fn: () => void): () => void
}

const PROCESS_TERMINAL: Terminal = {
  stdin: process.stdin, stdout: process.stdout,
  onResize: (fn) => { process.on('SIGWINCH', fn); return () => { process.off('SIGWINCH', fn) } },
}

export async function shell(io: Io, args: string[], term: Terminal = PROCESS_TERMINAL): Promise<number> {
  const { values, positionals } = parse(args, {
    user: { type: 'string' }, group: { type: 'string' }, cwd: { type: 'string' }, env: { type: 'string', multiple: true },
    'allow-unknown': { type: 'boolean' }, socket: { type: 'string' },
  }, true)
  if (values.help) return print(io, HELP)
  const [node, ...command] = positionals
  if (node === undefined) { io.stderr.write('outpost shell: which node? e.g. outpost shell ship1\n'); return EXIT.usage }
  const loaded = load(io, values, false)
  const file = values.socket !== undefined ? path.resolve(io.cwd, values.socket) : socketPath(loaded.config)
  const { stdin, stdout } = term
  // A terminal that reports no size (0 × 0: a pty nobody sized, as `script` from a pipe or
  // python's pty.fork make) gets 24 × 80, as a pipe does; session.open takes 1 to 10000.
  const size = (): [number, number] => [stdout.isTTY && stdout.rows > 0 ? stdout.rows : 24, stdout.isTTY && stdout.columns > 0 ? stdout.columns : 80]
  const [rows, cols] = size()
  const methodArgs = [
    `--rows=${rows}`, `--cols=${cols}`, `--term=${io.env.TERM ?? 'xterm-256color'}`,
    ...(values.user !== undefined ? [`--user=${values.user}`] : []), ...(values.group !== undefined ? [`--group=${values.group}`] : []),
    ...(values.cwd !== undefined ? [`--cwd=${values.cwd}`] : []), ...(values.env ?? []).map((e) => `--env=${e}`),
    '--', ...command,
  ]
  const raw = stdin.isTTY === true
  // Raw at once: keys typed before the session is open wait in the terminal, unechoed.
  if (raw) stdin.setRawMode(true)
  return new Promise<number>((resolve) => {
    let unResize = (): void => {}
    const restore = (): void => {
      unResize()
      stdin.off('data', onIn)
      stdin.off('end', onEnd)
      if (raw) stdin.setRawMode(false)
      stdin.pause()
    }
    const s = openStream(file, { toNode: node, method: 'session.open', methodArgs, ...(values['allow-unknown'] === true ? { allowUnknown: true } : {}) }, {
      notice: (n) => io.stderr.write(`outpost: ${n.message} [${n.code}]\r\n`),
      accepted: () => {
        // Keys go in order from now on; the node holds them until the remote side is ready.
        stdin.on('data', onIn)
        stdin.on('end', onEnd)
        stdin.resume()
        unResize = term.onResize(() => s.send({ resize: size() }))
      },
      out: (bytes) => {
        if (stdout.write(bytes)) return true
        stdout.once('drain', () => s.resume())
        return false
      },
      end: (r) => {
        restore()
        if ('code' in r) { resolve(r.code); return }
        io.stderr.write(`${raw ? '\r\n' : ''}outpost: ${r.error.message} [${r.error.code}]\n`)
        resolve(exitCodeFor(r.error.code))
      },
    })
    function onIn(d: Buffer): void {
      if (!s.send({ in: d.toString('base64') })) { stdin.pause(); void s.drained().then(() => stdin.resume()) }
    }
    function onEnd(): void { s.send({ eof: true }) }
  })
}
