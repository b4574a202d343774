/**
 * The commands that talk to a node or run a method here: send (src/cli/send.ts), nodes, status
 * (src/cli/status.ts), call. The command line and the REPL (src/cli/repl.ts) run the same code;
 * the REPL passes an AbortSignal (Ctrl-C).
 */
import { METHODS, nativeMethodName } from '../../methods/index'
import { EXIT, GLOBAL_HELP, askAgent, load, loggerFor, parse, print, table, type Io } from './common'
import { dataText, type Envelope } from '../wire/envelope'
import { ERROR_CODES, OutpostError, type ErrorCode } from '../errors'
import { Stopper } from '../lib/stopper'
import { runMethod } from '../run'
import { ulid } from '../wire/ulid'

export { send } from './send'
export { status } from './status'

/** `outpost nodes` (and the REPL's nodes). */
export const nodes = async (io: Io, args: string[], signal?: AbortSignal): Promise<number> => {
  const { values } = parse(args, { socket: { type: 'string' }, labels: { type: 'boolean' } }, false)
  if (values.help) return print(io, `Usage: outpost nodes [--labels] [--json] [--socket PATH]\n\n  The nodes this node has heard from (on central: the fleet, from node.hello heartbeats).\n  --labels adds each node's labels and facts (? where its heartbeat carried none: an older node).\n  --socket PATH names the node's API socket (default <dataDir>/outpost.sock).\n\n${GLOBAL_HELP}`)
  let list: { name: string; online: boolean; lastSeen: number; version?: string; os?: string; arch?: string; labels?: Record<string, string>; facts?: Record<string, string> }[] = []
  await askAgent(io, load(io, values, false), values.socket, { op: 'nodes' }, (obj) => { list = (obj.nodes ?? []) as typeof list; return true }, signal)
  if (values.json) return print(io, JSON.stringify(list))
  const head = ['NAME', 'ONLINE', 'LAST SEEN', 'VERSION', 'OS/ARCH', ...(values.labels === true ? ['LABELS', 'FACTS'] : [])]
  const rows = [head, ...list.map((n) => [n.name, n.online ? 'yes' : 'no', new Date(n.lastSeen).toISOString(), n.version ?? '-', `${n.os ?? '-'}/${n.arch ?? '-'}`,
    ...(values.labels === true ? [pairs(n.labels), pairs(n.facts)] : [])])]
  return print(io, table(rows))
}

/** A label table as name=value,… (sorted); - when empty, ? when unknown. */
function pairs(t: Record<string, string> | undefined): string {
  if (t === undefined) return '?'
  const all = Object.entries(t).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`)
  return all.length === 0 ? '-' : all.join(',')
}

/** `outpost call` (and the REPL's call): `signal` stops the method (else Ctrl-C does). */
export const call = async (io: Io, args: string[], signal?: AbortSignal): Promise<number> => {
  const { values, positionals } = parse(args, { timeout: { type: 'string' } }, true)
  const [name, ...methodArgs] = positionals
  if (values.help || name === undefined) {
    print(values.help ? io : { ...io, stdout: io.stderr }, `Usage: outpost call [--timeout S] METHOD [-- ARGS...]\n\n  Run a method here, with no network; print its result as JSON.\n  --timeout S   stop it after S seconds (methods.timeout by default)\n\n${GLOBAL_HELP}`)
    return values.help ? EXIT.ok : EXIT.usage
  }
  const { config } = load(io, values, false)
  const method = METHODS.get(nativeMethodName(name) ?? name)
  if (!method) throw new OutpostError('method_unknown', `no method ${name} (see the README for the list)`)
  const stop = new Stopper()
  if (values.timeout !== undefined && !/^\d+(\.\d+)?$/.test(values.timeout)) throw new OutpostError('usage', `--timeout must be a number of seconds, got ${JSON.stringify(values.timeout)}`)
  const seconds = values.timeout !== undefined ? Number(values.timeout) : config.methods.timeout
  const self = config.node.name
  const env: Envelope = { id: ulid(), toNode: self, fromNode: self, method: method.name, methodArgs, createdAt: Date.now() }
  const ctx = { node: self, env, args: methodArgs, config, dataDir: config.dataDir, get signal() { return stop.signal }, log: loggerFor(config, values.debug).log }
  // Ctrl-C (or the caller's signal) stops the method, and kills what it started.
  const cancel = (): void => stop.abort(new OutpostError('cancelled', `${name} was stopped (Ctrl-C)`))
  if (signal) signal.addEventListener('abort', cancel, { once: true })
  else process.once('SIGINT', cancel)
  try {
    // A stream's output as it comes; a stopped method is not waited for.
    const r = await runMethod(method, ctx, stop, { seconds, graceMs: 0, onChunk: (chunk) => { io.stdout.write(dataText(chunk)) } })
    // A stream stopped by Ctrl-C or its timeout says so and ends with its exit code.
    if (method.kind === 'stream' && stop.aborted) {
      if (r.error !== undefined) io.stderr.write(`outpost: ${r.error.message}\n`)
      return r.exitCode !== undefined && r.exitCode !== 0 ? EXIT.remoteFailed : EXIT.ok
    }
    if (r.error !== undefined) throw new OutpostError(Object.hasOwn(ERROR_CODES, r.error.code) ? (r.error.code as ErrorCode) : 'method_failed', r.error.message)
    if (method.kind === 'stream') return r.exitCode !== undefined && r.exitCode !== 0 ? EXIT.remoteFailed : EXIT.ok
    const text = (v: Uint8Array | string | undefined): string | undefined => (v === undefined ? undefined : dataText(v))
    print(io, JSON.stringify({ data: jsonOrText(text(r.data)), stderr: text(r.stderr), exitCode: r.exitCode }, null, 2))
    return r.exitCode !== undefined && r.exitCode !== 0 ? EXIT.remoteFailed : EXIT.ok
  } finally {
    signal?.removeEventListener('abort', cancel)
    process.off('SIGINT', cancel)
  }
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

