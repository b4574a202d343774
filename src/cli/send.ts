/**
 * `outpost send` (and the REPL's send): submit at this node, print replies as they arrive.
 *
 *   request ─ socket ─▶ {accepted} {notice} {reply}… {done}   (src/api/socket.ts)
 *   Ctrl-C once  ─▶ after CANCEL_GRACE_MS, withdraw what this node never sent (its final reply says
 *                   `withdrawn`, exit 3: it will not run), op.cancel ID to each target still running
 *                   (a second request on the socket); the final replies then say `cancelled` (exit 1)
 *   Ctrl-C again ─▶ stop waiting, leave it running, print how to cancel it later (exit 0)
 *   --detach     ─▶ the same as leaving at once: ids and the cancel command, exit 0
 * In the REPL `signal` (its Ctrl-C) only stops the wait, as before: no cancel.
 */
import fs from 'node:fs'
import path from 'node:path'
import { EXIT, GLOBAL_HELP, askAgent, load, parse, print, type Io } from './common'
import { parseMessagesJson, type Envelope } from '../wire/envelope'
import { ERROR_CODES, exitCodeFor, OutpostError, type ErrorCode } from '../errors'
import { isJob, JOB_FLAGS, JOB_HELP, sendJob } from './jobs'
import { signDrafts, signerFor } from './sign-drafts'

/** Exit 3: the method did not run (not delivered, or refused by the receiver's policy). */

/** Between the first Ctrl-C and the op.cancel it sends: time to press Ctrl-C again and leave it running. */
const CANCEL_GRACE_MS = 1000

/** Where Ctrl-C comes from; returns the unsubscribe. The command line listens to SIGINT. */
export type Interrupts = (onInterrupt: () => void) => () => void
const SIGINTS: Interrupts = (fn) => { process.on('SIGINT', fn); return () => { process.off('SIGINT', fn) } }

const HELP = `Usage: outpost send [--to NODE]... [--key FILE] METHOD [-- ARGS...]
       outpost send [--key FILE] --file MSGS.json

  Submit a message at this node and print the replies as they arrive. With several
  targets each output line starts with [NODE].

  --to NODE           receiver (repeat for several; default: this node); on central also a
                      selector of nodes by their labels: role=db,arch=arm64  site in (oslo,bergen)
                      role!=test  !decommissioned  ship*  (see docs/fleet.md)
  --file FILE         a JSON array of messages (steward's format works)
  --reply-method M    what runs with the reply at this node (default reply.file.append)
  --timeout S         methodTimeout
  --ack-timeout S     --retries N    --ttl S
  --data TEXT|@FILE   the message's data (config.deploy takes its YAML document this way)
  --key FILE          sign each message with this operator key (outpost keys gen); nodes
                      with security.requireSignatures run only signed messages (docs/security.md)
  --allow-unknown     send to nodes the node list has not heard of (one that has not
                      connected yet); by default central refuses them (node_unknown)
${JOB_HELP}
  --no-wait           print the accepted ids (a job: its id) and return
  --detach            the same, plus how to cancel it later (outpost send --to NODE op.cancel -- ID)
  --socket PATH       the node's API socket (default <dataDir>/outpost.sock)
  --json              JSON Lines: {"notice"} {"accepted"} {"reply"}… {"delivered"} {"cancelling"} {"detached"} {"done"}

  Ctrl-C cancels what still runs, after 1 s: a message this node has not sent yet is
  withdrawn (it will not run; exit 3), the others get op.cancel; Ctrl-C again leaves it
  running and prints how to cancel it later.

  Exit: 0 ok (or left running), 1 the remote method failed or was cancelled, 2 usage (or no
  agent running here, an unknown node, more nodes than delivery.maxFanOut), 3 not delivered
  or refused (ttl, attempts, denied, method_disabled).

${GLOBAL_HELP}`

interface Target { id: string; toNode: string }

export async function send(io: Io, args: string[], signal?: AbortSignal, interrupts: Interrupts = SIGINTS): Promise<number> {
  const { values, positionals } = parse(args, {
    to: { type: 'string', multiple: true }, file: { type: 'string' }, 'reply-method': { type: 'string' }, timeout: { type: 'string' },
    'ack-timeout': { type: 'string' }, retries: { type: 'string' }, ttl: { type: 'string' }, 'no-wait': { type: 'boolean' }, detach: { type: 'boolean' },
    'allow-unknown': { type: 'boolean' }, socket: { type: 'string' }, data: { type: 'string' }, key: { type: 'string' }, ...JOB_FLAGS,
  }, true)
  if (values.help) return print(io, HELP)
  const loaded = load(io, values, false)
  let messages = values.file !== undefined ? readFile(io, values.file, positionals) : [draftFrom(io, values, positionals, loaded.config.node.name)]
  // --key: stamped and signed here, one message per receiver (sign-drafts.ts).
  const signer = values.key !== undefined ? signerFor(io, values.key) : undefined
  if (signer !== undefined && isJob(values)) {
    // A job's per-node messages are made at central as each starts: central signs them with its api.signingKey.
    throw new OutpostError('usage', 'send: --key cannot sign a job (--batch, --max-errors, --canary, --job): central makes each node\'s message as it starts and signs it with its own api.signingKey; set that on central, or send without the job flags')
  }
  const signing = { io, loaded, socket: values.socket, signal }
  if (signer !== undefined) messages = await signDrafts(signing, signer, messages)
  const detach = values.detach === true
  const allowUnknown = values['allow-unknown'] === true
  const wait = values['no-wait'] !== true && !detach
  if (isJob(values)) {
    if (values.file !== undefined || messages.length !== 1) throw new OutpostError('usage', 'send: a job (--batch, --max-errors, --canary, --job) is one message: give METHOD and --to, not --file')
    return sendJob(io, loaded, values.socket, values, messages[0] as Record<string, unknown>, wait, signal)
  }
  const json = values.json === true
  const line = (obj: unknown): void => { io.stdout.write(JSON.stringify(obj) + '\n') }
  // How to reach the same node again in a printed command: the flags this one was given.
  const again = [...(values.config !== undefined ? ['--config', values.config] : []), ...(values['data-dir'] !== undefined ? ['--data-dir', values['data-dir']] : []), ...(values.socket !== undefined ? ['--socket', values.socket] : [])]
  const cancelCommand = (t: Target): string => ['outpost send', ...again, '--to', t.toNode, ...(allowUnknown ? ['--allow-unknown'] : []), 'op.cancel', '--', t.id].join(' ')
  const ask = (request: unknown, onLine: (obj: Record<string, unknown>) => boolean | void, s?: AbortSignal): Promise<void> => askAgent(io, loaded, values.socket, request, onLine, s)

  const targets: Target[] = []
  /** Accepted, no final reply yet. */
  const running = new Map<string, Target>()
  let labels: Labels | undefined
  let exit: number = EXIT.ok
  // Output that did not end its last line: on a terminal a newline is added at the end, so the
  // shell's prompt does not land on it (piped output keeps its bytes as they came).
  let lineOpen = false
  const leave = new AbortController()
  const waitSignal = signal !== undefined ? AbortSignal.any([signal, leave.signal]) : leave.signal
  // Once the wait is over, an op.cancel still waiting for its own reply is not waited for.
  const over = new AbortController()
  const cancelSignal = AbortSignal.any([waitSignal, over.signal])

  // Ctrl-C on the command line (the REPL has its own signal and only stops waiting).
  let presses = 0
  let graceTimer: NodeJS.Timeout | undefined
  let cancelSent = false
  const sendCancels = (): void => {
    graceTimer = undefined
    const all = [...running.values()]
    if (all.length === 0) return
    // First take back what still waits in this node's outbox never sent: it will not run at all.
    let answer: Record<string, string> = {}
    ask({ op: 'withdraw', ids: all.map((t) => t.id) }, (obj) => { if (obj.withdraw !== undefined) answer = obj.withdraw as Record<string, string>; return true }, cancelSignal)
      .catch(() => {}) // an agent without withdraw: op.cancel for all
      .then(() => {
        if (cancelSignal.aborted) return
        const back = all.filter((t) => answer[t.id] === 'withdrawn' && running.delete(t.id))
        if (back.length > 0 && !json) io.stderr.write(`outpost: withdrew ${describe(back)}: never sent from here, it will not run\n`)
        const rest = all.filter((t) => running.has(t.id))
        if (rest.length > 0) opCancels(rest)
      })
  }
  const opCancels = (list: Target[]): void => {
    cancelSent = true
    if (json) line({ cancelling: list })
    const ids = new Map(list.map((t) => [t.id, t]))
    const unsigned = list.map((t) => ({ toNode: t.toNode, method: 'op.cancel', methodArgs: [t.id] }))
    // The cancel's own replies: only a failure is worth a line (the job's final reply says `cancelled`).
    // Its receivers took the request, known or not. With --key the cancels are signed too.
    ;(signer !== undefined ? signDrafts(signing, signer, unsigned) : Promise.resolve(unsigned)).then((cancels) => ask({ op: 'send', messages: cancels, wait: true, allowUnknown: true }, (obj) => {
      const r = obj.reply as (Envelope & { data?: string }) | undefined
      if (r !== undefined && (r.error !== undefined || (r.exitCode ?? 0) !== 0)) {
        const t = [...ids.values()].find((x) => x.toNode === r.fromNode)
        if (!json) io.stderr.write(`outpost: ${r.fromNode}: could not cancel ${t?.id ?? ''}: ${r.error?.message ?? `exit status ${r.exitCode}`}\n`)
      }
      return obj.done === true
    }, cancelSignal)).catch((err: unknown) => {
      if (!cancelSignal.aborted) io.stderr.write(`outpost: could not ask for the cancel: ${(err as Error).message}\n`)
    })
  }
  const onInterrupt = (): void => {
    presses++
    if (presses === 1) {
      const what = running.size > 0 ? describe([...running.values()]) : targets.length === 0 ? 'what the node accepts' : undefined
      if (!json) io.stderr.write(what !== undefined ? `\noutpost: Ctrl-C: cancelling ${what} in ${CANCEL_GRACE_MS / 1000} s (withdrawn if not sent yet, else op.cancel); Ctrl-C again to leave it running\n` : '\noutpost: Ctrl-C: nothing runs any more\n')
      graceTimer = setTimeout(sendCancels, CANCEL_GRACE_MS)
      return
    }
    if (graceTimer !== undefined) clearTimeout(graceTimer)
    graceTimer = undefined
    leave.abort(new OutpostError('cancelled', 'left running (Ctrl-C twice)'))
  }
  const unlisten = wait && signal === undefined ? interrupts(onInterrupt) : () => {}

  try {
    await ask({ op: 'send', messages, wait, ...(allowUnknown ? { allowUnknown } : {}) }, (obj) => {
      if (obj.error) {
        const e = obj.error as { code: string; message: string }
        throw new OutpostError(Object.hasOwn(ERROR_CODES, e.code) ? (e.code as ErrorCode) : 'api_bad_request', e.message)
      }
      if (obj.notice) {
        const n = obj.notice as { code: string; message: string }
        if (json) line({ notice: n })
        else io.stderr.write(`outpost: ${n.message} [${n.code}]\n`)
        return
      }
      if (obj.accepted) {
        const acc = obj.accepted as Target[]
        for (const a of acc) { targets.push(a); if (wait) running.set(a.id, a) }
        if (new Set(acc.map((a) => a.toNode)).size > 1) labels = new Labels(io)
        if (json) line({ accepted: acc })
        else if (!wait) for (const a of acc) io.stdout.write(`${a.id} ${a.toNode}\n`)
        else for (const a of acc) io.stderr.write(`accepted ${a.id} → ${a.toNode}\n`)
        // A Ctrl-C that came before the answer: its grace timer finds them now.
        if (!wait) {
          if (detach) leftRunning(acc)
          return true
        }
        return
      }
      if (obj.reply) {
        const r = obj.reply as Envelope & { data?: string; stderr?: string }
        const final = r.final === true || r.error !== undefined
        if (json) line({ reply: r })
        else {
          if (r.data) {
            if (labels) labels.out(r.fromNode, r.data)
            else { io.stdout.write(r.data); lineOpen = !r.data.endsWith('\n') }
          }
          if (r.stderr) labels ? labels.err(r.fromNode, r.stderr) : io.stderr.write(r.stderr)
          if (final) labels?.flush(r.fromNode)
          if (r.error) io.stderr.write(`outpost: ${r.fromNode}: ${r.error.code}: ${r.error.message}\n`)
          else if (r.exitCode !== undefined && r.exitCode !== 0) io.stderr.write(`outpost: ${r.fromNode}: exit status ${r.exitCode}\n`)
        }
        if (final && r.inReplyTo !== undefined) running.delete(r.inReplyTo)
        if (r.error) exit = Math.max(exit, exitCodeFor(r.error.code) === EXIT.notDelivered ? EXIT.notDelivered : EXIT.remoteFailed)
        else if (r.exitCode !== undefined && r.exitCode !== 0) exit = Math.max(exit, EXIT.remoteFailed)
        return
      }
      if (obj.delivered) {
        const d = obj.delivered as { id: string; toNode: string; method: string }
        if (json) line({ delivered: d })
        else io.stderr.write(`outpost: ${d.toNode}: delivered (${d.method} sends no reply)\n`)
        running.delete(d.id)
        return
      }
      if (obj.done === true) {
        if (json) line({ done: true, exitCode: exit })
        return true
      }
      return
    }, waitSignal)
  } catch (err) {
    if (!leave.signal.aborted) throw err
    // Ctrl-C twice: what still runs goes on.
    labels?.flushAll()
    leftRunning([...running.values()], cancelSent)
    return EXIT.ok
  } finally {
    unlisten()
    over.abort()
    if (graceTimer !== undefined) clearTimeout(graceTimer)
    if (lineOpen && (io.stdout as { isTTY?: boolean }).isTTY === true) io.stdout.write('\n')
  }
  return exit

  function leftRunning(list: Target[], cancelQueued = false): void {
    if (json) { line({ detached: list.map((t) => ({ ...t, cancel: cancelCommand(t) })) }); return }
    if (list.length === 0) return
    io.stderr.write(cancelQueued
      ? `outpost: stopped waiting; the op.cancel already sent stops ${describe(list)} only if it is still running when the cancel gets there. If it does not:\n`
      : `outpost: left running: ${describe(list)}. To cancel later:\n`)
    for (const t of list) io.stderr.write(`  ${cancelCommand(t)}\n`)
  }
}

function describe(list: Target[]): string {
  return list.map((t) => `${t.id} on ${t.toNode}`).join(', ')
}

/**
 * Output of several nodes, line by line, each line prefixed `[NODE] `: a partial line waits for
 * its end (or the node's final reply), so two nodes' output never mixes within a line.
 */
class Labels {
  private readonly io: Io
  private readonly partial = new Map<string, string>()

  constructor(io: Io) {
    this.io = io
  }

  out(node: string, text: string): void { this.write('out', node, text) }
  err(node: string, text: string): void { this.write('err', node, text) }

  private write(stream: 'out' | 'err', node: string, text: string): void {
    const key = `${stream}\0${node}`
    const all = (this.partial.get(key) ?? '') + text
    const cut = all.lastIndexOf('\n') + 1
    this.partial.set(key, all.slice(cut))
    if (cut > 0) this.sink(stream).write(all.slice(0, cut - 1).split('\n').map((l) => `[${node}] ${l}\n`).join(''))
  }

  /** The node is done: what is left of its last line goes out, with a newline. */
  flush(node: string): void {
    for (const stream of ['out', 'err'] as const) {
      const key = `${stream}\0${node}`
      const rest = this.partial.get(key)
      this.partial.delete(key)
      if (rest) this.sink(stream).write(`[${node}] ${rest}\n`)
    }
  }

  flushAll(): void {
    for (const key of [...this.partial.keys()]) this.flush(key.split('\0')[1]!)
  }

  private sink(stream: 'out' | 'err'): Io['stdout'] {
    return stream === 'out' ? this.io.stdout : this.io.stderr
  }
}

function readFile(io: Io, file: string, positionals: string[]): unknown[] {
  if (positionals.length > 0) throw new OutpostError('usage', 'send: give either --file or METHOD, not both')
  let text: string
  try {
    text = fs.readFileSync(path.resolve(io.cwd, file), 'utf8')
  } catch (err) {
    throw new OutpostError('usage', `send: cannot read --file ${file}: ${(err as Error).message}`, { cause: err })
  }
  parseMessagesJson(text, file) // check here, with the file name in errors
  const parsed = JSON.parse(text) as unknown
  return Array.isArray(parsed) ? parsed : [parsed]
}

interface DraftFlags {
  to?: string[] | undefined
  'reply-method'?: string | undefined
  timeout?: string | undefined
  'ack-timeout'?: string | undefined
  retries?: string | undefined
  ttl?: string | undefined
  data?: string | undefined
}

function draftFrom(io: Io, values: DraftFlags, positionals: string[], self: string): Record<string, unknown> {
  const [method, ...methodArgs] = positionals
  if (method === undefined) throw new OutpostError('usage', 'send: which method? e.g. outpost send --to ship1 cli.run -- uptime')
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined
    if (!/^\d+$/.test(v)) throw new OutpostError('usage', `--${name} must be a whole number of seconds (or attempts), got ${JSON.stringify(v)}`)
    return Number(v)
  }
  const draft: Record<string, unknown> = { toNodes: values.to ?? [self], method, methodArgs }
  const set = (k: string, v: unknown): void => { if (v !== undefined) draft[k] = v }
  set('replyMethod', values['reply-method'])
  set('methodTimeout', num('timeout', values.timeout))
  set('ackTimeout', num('ack-timeout', values['ack-timeout']))
  set('retries', num('retries', values.retries))
  set('ttl', num('ttl', values.ttl))
  if (values.data !== undefined) draft.data = readData(io, values.data)
  return draft
}

/** `--data @FILE` reads the file (UTF-8 text); anything else is the data itself. */
function readData(io: Io, value: string): string {
  if (!value.startsWith('@')) return value
  try {
    return fs.readFileSync(path.resolve(io.cwd, value.slice(1)), 'utf8')
  } catch (err) {
    throw new OutpostError('usage', `send: cannot read --data ${value}: ${(err as Error).message}`, { cause: err })
  }
}

