/**
 * The commands that talk to a node or run a method here: send, nodes, call. The command line
 * and the REPL (src/cli-repl.ts) run the same code; the REPL passes an AbortSignal (Ctrl-C).
 */
import fs from 'node:fs'
import path from 'node:path'
import { METHODS } from '../methods/index'
import { talk } from './api/client'
import { EXIT, GLOBAL_HELP, load, loggerFor, parse, print, socketPath, type Io } from './cli-common'
import { dataText, parseMessagesJson, type Envelope } from './envelope'
import { ERROR_CODES, OutpostError, isOutpostError, type ErrorCode } from './errors'
import { nativeMethodName } from './method-names'
import { ulid } from './ulid'

/** Exit 3: the method did not run (not delivered, or refused by the receiver's policy). */
const NOT_DELIVERED = new Set(['not_delivered', 'ttl_expired', 'denied', 'method_disabled', 'method_unknown', 'command_unknown'])

/** `outpost send` (and the REPL's send): `signal` stops waiting (Ctrl-C in the REPL). */
export const send = async (io: Io, args: string[], signal?: AbortSignal): Promise<number> => {
  const { values, positionals } = parse(args, {
    to: { type: 'string', multiple: true }, file: { type: 'string' }, 'reply-method': { type: 'string' }, timeout: { type: 'string' },
    'ack-timeout': { type: 'string' }, retries: { type: 'string' }, ttl: { type: 'string' }, 'no-wait': { type: 'boolean' }, socket: { type: 'string' },
    data: { type: 'string' },
  }, true)
  if (values.help) {
    return print(io, `Usage: outpost send [--to NODE]... METHOD [-- ARGS...]\n       outpost send --file MSGS.json\n\n  Submit a message at this node and print the replies as they arrive.\n\n  --to NODE           receiver (repeat for several; default: this node)\n  --file FILE         a JSON array of messages (steward's format works)\n  --reply-method M    what runs with the reply at this node (default reply.file.append)\n  --timeout S         methodTimeout\n  --ack-timeout S     --retries N    --ttl S\n  --data TEXT|@FILE   the message's data (config.deploy takes its YAML document this way)\n  --no-wait           print the accepted ids and return\n  --socket PATH       the node's API socket (default <dataDir>/outpost.sock)\n\n  Exit: 0 ok, 1 the remote method failed, 2 usage, 3 not delivered or refused (ttl, attempts, denied, method_disabled).\n\n${GLOBAL_HELP}`)
  }
  const { config } = load(io, values, false)
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined
    if (!/^\d+$/.test(v)) throw new OutpostError('usage', `--${name} must be a whole number of seconds (or attempts), got ${JSON.stringify(v)}`)
    return Number(v)
  }
  let messages: unknown[]
  if (values.file !== undefined) {
    if (positionals.length > 0) throw new OutpostError('usage', 'send: give either --file or METHOD, not both')
    let text: string
    try {
      text = fs.readFileSync(path.resolve(io.cwd, values.file), 'utf8')
    } catch (err) {
      throw new OutpostError('usage', `send: cannot read --file ${values.file}: ${(err as Error).message}`, { cause: err })
    }
    parseMessagesJson(text, values.file) // check here, with the file name in errors
    const parsed = JSON.parse(text) as unknown
    messages = Array.isArray(parsed) ? parsed : [parsed]
  } else {
    const [method, ...methodArgs] = positionals
    if (method === undefined) throw new OutpostError('usage', 'send: which method? e.g. outpost send --to ship1 cli.run -- uptime')
    const draft: Record<string, unknown> = { toNodes: values.to ?? [config.node.name], method, methodArgs }
    const set = (k: string, v: unknown): void => { if (v !== undefined) draft[k] = v }
    set('replyMethod', values['reply-method'])
    set('methodTimeout', num('timeout', values.timeout))
    set('ackTimeout', num('ack-timeout', values['ack-timeout']))
    set('retries', num('retries', values.retries))
    set('ttl', num('ttl', values.ttl))
    if (values.data !== undefined) draft.data = readData(io, values.data)
    messages = [draft]
  }
  const wait = values['no-wait'] !== true
  let exit: number = EXIT.ok
  const file = values.socket !== undefined ? path.resolve(io.cwd, values.socket) : socketPath(config)
  await talk(file, JSON.stringify({ op: 'send', messages, wait }) + '\n', (obj) => {
    if (obj.error) {
      const e = obj.error as { code: string; message: string }
      throw new OutpostError(Object.hasOwn(ERROR_CODES, e.code) ? (e.code as ErrorCode) : 'api_bad_request', e.message)
    }
    if (obj.notice) {
      const n = obj.notice as { code: string; message: string }
      if (values.json) io.stdout.write(JSON.stringify({ notice: n }) + '\n')
      else io.stderr.write(`outpost: ${n.message} [${n.code}]\n`)
      return
    }
    if (obj.accepted) {
      const acc = obj.accepted as { id: string; toNode: string }[]
      if (values.json) io.stdout.write(JSON.stringify({ accepted: acc }) + '\n')
      else if (!wait) for (const a of acc) io.stdout.write(`${a.id} ${a.toNode}\n`)
      else for (const a of acc) io.stderr.write(`accepted ${a.id} → ${a.toNode}\n`)
      return !wait
    }
    if (obj.reply) {
      const r = obj.reply as Envelope & { data?: string; stderr?: string }
      if (values.json) io.stdout.write(JSON.stringify(r) + '\n')
      else {
        if (r.data) io.stdout.write(r.data)
        if (r.stderr) io.stderr.write(r.stderr)
        if (r.error) io.stderr.write(`outpost: ${r.fromNode}: ${r.error.code}: ${r.error.message}\n`)
        else if (r.exitCode !== undefined && r.exitCode !== 0) io.stderr.write(`outpost: ${r.fromNode}: exit status ${r.exitCode}\n`)
      }
      if (r.error) exit = Math.max(exit, NOT_DELIVERED.has(r.error.code) ? EXIT.notDelivered : EXIT.remoteFailed)
      else if (r.exitCode !== undefined && r.exitCode !== 0) exit = Math.max(exit, EXIT.remoteFailed)
      return
    }
    return obj.done === true
  }, signal)
  return exit
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

/** `outpost nodes` (and the REPL's nodes). */
export const nodes = async (io: Io, args: string[], signal?: AbortSignal): Promise<number> => {
  const { values } = parse(args, { socket: { type: 'string' } }, false)
  if (values.help) return print(io, `Usage: outpost nodes [--json]\n\n  The nodes this node has heard from (on central: the fleet, from node.hello heartbeats).\n\n${GLOBAL_HELP}`)
  const { config } = load(io, values, false)
  let list: { name: string; online: boolean; lastSeen: number; version?: string; os?: string; arch?: string }[] = []
  await talk(values.socket ?? socketPath(config), '{"op":"nodes"}\n', (obj) => { list = (obj.nodes ?? []) as typeof list; return true }, signal)
  if (values.json) return print(io, JSON.stringify(list))
  const rows = [['NAME', 'ONLINE', 'LAST SEEN', 'VERSION', 'OS/ARCH'], ...list.map((n) => [n.name, n.online ? 'yes' : 'no', new Date(n.lastSeen).toISOString(), n.version ?? '-', `${n.os ?? '-'}/${n.arch ?? '-'}`])]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return print(io, rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n'))
}

/** `outpost call` (and the REPL's call): `signal` stops the method (else Ctrl-C does). */
export const call = async (io: Io, args: string[], signal?: AbortSignal): Promise<number> => {
  const { values, positionals } = parse(args, { timeout: { type: 'string' } }, true)
  const [name, ...methodArgs] = positionals
  if (values.help || name === undefined) {
    print(values.help ? io : { ...io, stdout: io.stderr }, `Usage: outpost call METHOD [-- ARGS...]\n\n  Run a method here, with no network; print its result as JSON.\n\n${GLOBAL_HELP}`)
    return values.help ? EXIT.ok : EXIT.usage
  }
  const { config } = load(io, values, false)
  const method = METHODS.get(nativeMethodName(name) ?? (name as never))
  if (!method) throw new OutpostError('method_unknown', `no method ${name} (see the README for the list)`)
  const abort = new AbortController()
  const seconds = values.timeout !== undefined ? Number(values.timeout) : config.methods.timeout
  const timer = setTimeout(() => abort.abort(new OutpostError('method_timeout', `${name} ran past ${seconds} s`)), seconds * 1000)
  const self = config.node.name
  const env: Envelope = { id: ulid(), toNode: self, fromNode: self, method: method.name, methodArgs, createdAt: Date.now() }
  const ctx = { node: self, env, args: methodArgs, config, dataDir: config.dataDir, signal: abort.signal, log: loggerFor(config, values.debug).log }
  // Ctrl-C (or the caller's signal) stops the method, and kills what it started.
  const stop = (): void => abort.abort(new OutpostError('cancelled', `${name} was stopped (Ctrl-C)`))
  if (signal) signal.addEventListener('abort', stop, { once: true })
  else process.once('SIGINT', stop)
  try {
    if (method.kind === 'stream') {
      // Output as it comes.
      const it = method.run(ctx)
      let step = await it.next()
      for (; step.done !== true; step = await it.next()) io.stdout.write(dataText(step.value))
      const code = step.value.exitCode
      if (abort.signal.aborted && !(method.untilTimeout === true && isOutpostError(abort.signal.reason, 'method_timeout'))) io.stderr.write(`outpost: ${(abort.signal.reason as Error).message}\n`)
      return code !== undefined && code !== 0 ? EXIT.remoteFailed : EXIT.ok
    }
    const r = await untilAborted(method.run(ctx), abort.signal)
    const text = (v: Uint8Array | string | undefined): string | undefined => (v === undefined ? undefined : dataText(v))
    print(io, JSON.stringify({ data: jsonOrText(text(r.data)), stderr: text(r.stderr), exitCode: r.exitCode }, null, 2))
    return r.exitCode !== undefined && r.exitCode !== 0 ? EXIT.remoteFailed : EXIT.ok
  } finally {
    clearTimeout(timer)
    signal?.removeEventListener('abort', stop)
    process.off('SIGINT', stop)
  }
}

/** A unary method is told to stop by its signal; the caller does not wait for it past that. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

/** Output that is a JSON document (info.*, http.get) is shown as JSON, not as an escaped string. */
function jsonOrText(text: string | undefined): unknown {
  if (text === undefined || !/^\s*[[{]/.test(text)) return text
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}

