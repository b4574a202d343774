/**
 * The commands that run or talk to a node: agent, hub, up, send, nodes, call.
 */
import { randomBytes, createHash } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { TRANSPORTS } from '../transports/index'
import { METHODS } from '../methods/index'
import { SocketApi } from './api/socket'
import { EXIT, GLOBAL_HELP, parse, print, type Io } from './cli-common'
import { editConfig, initText, loadConfig, resolveConfigPath, type Config, type ConfigEdit } from './config'
import { dataText, parseMessagesJson, type Envelope } from './envelope'
import { ERROR_CODES, OutpostError, isOutpostError, type ErrorCode } from './errors'
import { Hub, hashToken } from './hub'
import { createLogger, type Level, type Logger } from './log'
import { OutpostNode } from './node'
import { nativeMethodName } from './method-names'
import { ulid } from './ulid'
import { writePidFile } from './pid-file'
import { isPackaged } from './upgrade'
import { EXIT_RESTART, isSupervised, onAgentStart, type AgentInfo } from './upgrade-watchdog'
import { scheduleUpgrades } from './upgrade-schedule'
import { VERSION } from './version'
import { spawn } from 'node:child_process'
import YAML from 'yaml'
import { upgradeCommand } from './cli-upgrade'

type Command = (io: Io, args: string[]) => Promise<number>

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent']

function loggerFor(config: Config, debug: boolean | undefined, prefix = ''): Logger {
  return createLogger({ level: config.log.level as Level, format: config.log.format, file: config.log.file, debug: debug === true }, prefix)
}

export function socketPath(config: Config): string {
  return path.resolve(config.api.socket ?? path.join(config.dataDir, 'outpost.sock'))
}

/** Resolves on SIGINT or SIGTERM (and, when asked, SIGHUP: restart). */
function untilSignal(hup = false): Promise<string> {
  const sigs: NodeJS.Signals[] = hup ? ['SIGINT', 'SIGTERM', 'SIGHUP'] : ['SIGINT', 'SIGTERM']
  return new Promise((resolve) => {
    const on = (sig: string): void => { for (const s of sigs) process.off(s, on); resolve(sig) }
    for (const s of sigs) process.on(s, on)
  })
}

interface Loaded { config: Config; file: string; fileHas: (key: string[]) => boolean }

/** How agent and hub restart themselves (agent.restart, upgrades): as SIGHUP does. */
const SELF_RESTART = (): void => { process.kill(process.pid, 'SIGHUP') }

const PID_FILE = { 'pid-file': { type: 'string' } } as const
const PID_HELP = '  --pid-file FILE     write the pid there while running (refused if it names a live process)\n'

/** Load the config; flags given to agent/hub are written back into the file (SPEC §4). */
function load(io: Io, values: { config?: string | undefined; 'data-dir'?: string | undefined; 'log-level'?: string | undefined }, writeBack: boolean): Loaded {
  const resolve = { flag: values.config, env: io.env, cwd: io.cwd }
  const edits: ConfigEdit[] = []
  if (values['log-level'] !== undefined) {
    if (!LEVELS.includes(values['log-level'])) throw new OutpostError('usage', `--log-level must be one of ${LEVELS.join(', ')}`)
    edits.push({ key: 'log.level', value: values['log-level'] })
  }
  if (values['data-dir'] !== undefined) edits.push({ key: 'dataDir', value: values['data-dir'] })
  const src = resolveConfigPath(resolve)
  if (writeBack && edits.length > 0 && src.exists) editConfig(src.path, edits)
  const { config } = loadConfig(resolve)
  for (const e of edits) {
    if ('value' in e && e.key === 'dataDir') config.dataDir = String(e.value)
    if ('value' in e && e.key === 'log.level') config.log.level = e.value as Config['log']['level']
  }
  config.dataDir = path.resolve(io.cwd, config.dataDir)
  // Only `outpost hub` asks which keys the file itself sets.
  const fileHas = (key: string[]): boolean => src.exists && YAML.parseDocument(fs.readFileSync(src.path, 'utf8')).hasIn(key)
  return { config, file: src.path, fileHas }
}

interface RunOptions { onConnected?: () => void; configFile?: string; restart?: () => void }

async function runNode(config: Config, logger: Logger, o: RunOptions = {}): Promise<{ node: OutpostNode; api: SocketApi }> {
  const node = await OutpostNode.start({ config, logger, transports: TRANSPORTS, methods: METHODS, ...o })
  try {
    const api = await SocketApi.start(node, socketPath(config), logger.log)
    return { node, api }
  } catch (err) {
    await node.close()
    throw err
  }
}

const agent: Command = async (io, args) => {
  const { values } = parse(args, PID_FILE, false)
  if (values.help) return print(io, `Usage: outpost [agent] [OPTIONS]\n\n  Run this node: connect out, run what it is asked, keep every message until acknowledged.\n  --data-dir and --log-level are written back into the config file.\n\n${PID_HELP}\n${GLOBAL_HELP}`)
  const { config, file } = load(io, values, true)
  const removePid = values['pid-file'] !== undefined ? writePidFile(path.resolve(io.cwd, values['pid-file'])) : () => {}
  const logger = loggerFor(config, values.debug)
  // A pending upgrade to this version is confirmed once the transport connects (upgrade-watchdog.ts).
  let connected = false
  let confirm = (): void => { connected = true }
  const upgrades = scheduleUpgrades({ config, dataDir: config.dataDir, env: io.env, log: logger.log })
  const { node, api } = await runNode(config, logger, { onConnected: () => confirm(), configFile: file, restart: SELF_RESTART })
  const self = selfInfo(io)
  confirm = onAgentStart(config.dataDir, VERSION, self, logger.log).confirm
  if (connected) confirm()
  const sig = await untilSignal(true)
  upgrades.stop()
  logger.log('info', sig === 'SIGHUP' ? 'SIGHUP: restarting' : `${sig}: stopping`)
  await api.close()
  await node.close()
  removePid() // before a successor starts and writes its own
  return sig === 'SIGHUP' ? restart(io, self) : EXIT.ok
}

function selfInfo(io: Io): AgentInfo {
  return { pid: process.pid, command: isPackaged() ? io.argv : [process.argv[1]!, ...io.argv], cwd: io.cwd, supervised: isSupervised(io.env) }
}

/** SIGHUP (after an upgrade): under a service manager exit 75 so it starts the new binary; else start it ourselves. */
function restart(io: Io, self: AgentInfo): number {
  if (self.supervised) return EXIT_RESTART
  spawn(process.execPath, self.command, { cwd: io.cwd, detached: true, stdio: 'inherit', env: io.env }).unref()
  return EXIT.ok
}

const hub: Command = async (io, args) => {
  const { values } = parse(args, { 'hash-token': { type: 'string' }, ...PID_FILE }, false)
  if (values.help) return print(io, `Usage: outpost hub [OPTIONS]\n\n  Run the TCP hub (hub.listen, hub.tokens). With node.name in the config file it also runs\n  that node in the same process.\n\n  --hash-token TOKEN  print the sha256:<hex> form of a token for hub.tokens, and exit\n${PID_HELP}\n${GLOBAL_HELP}`)
  if (values['hash-token'] !== undefined) return print(io, hashToken(values['hash-token']))
  const { config, fileHas, file } = load(io, values, true)
  const removePid = values['pid-file'] !== undefined ? writePidFile(path.resolve(io.cwd, values['pid-file'])) : () => {}
  const logger = loggerFor(config, values.debug)
  const logFile = path.join(config.dataDir, 'nodes.log')
  fs.mkdirSync(config.dataDir, { recursive: true })
  const h = await Hub.start({
    listen: config.hub.listen, tokens: config.hub.tokens, tls: config.hub.tls, redirect: config.hub.redirect, name: config.node.name,
    log: logger.child('hub').log, logSink: (line) => fs.appendFile(logFile, line + '\n', () => {}), ...(logger.trace ? { debug: logger.trace } : {}),
  })
  const inProcess = fileHas(['node', 'name']) ? await runNode(config, logger, { configFile: file, restart: SELF_RESTART }) : undefined
  // The hub is its own transport: listening is "connected" for a pending upgrade.
  const self = selfInfo(io)
  onAgentStart(config.dataDir, VERSION, self, logger.log).confirm()
  const sig = await untilSignal(true)
  logger.log('info', sig === 'SIGHUP' ? 'SIGHUP: restarting' : `${sig}: stopping`)
  if (inProcess) { await inProcess.api.close(); await inProcess.node.close() }
  await h.close()
  removePid()
  return sig === 'SIGHUP' ? restart(io, self) : EXIT.ok
}

/** The quickstart token of node "local", derived from central's so the file holds one secret. */
function localToken(centralToken: string): string {
  return createHash('sha256').update(`outpost-up-local:${centralToken}`).digest('hex').slice(0, 32)
}

const up: Command = async (io, args) => {
  const { values } = parse(args, { port: { type: 'string' } }, false)
  if (values.help) return print(io, `Usage: outpost up [--port N]\n\n  Quickstart: a hub and the nodes "central" and "local" in one process on loopback, data in\n  ./var. Creates a commented ./outpost.yaml (for node central) when there is none. Then, from\n  the same folder in another terminal:  npx outpost send --to local cli.run -- uname -a\n\n${GLOBAL_HELP}`)
  const file = path.resolve(io.cwd, values.config ?? 'outpost.yaml')
  const port = values.port ?? '7430'
  if (!fs.existsSync(file)) {
    const token = randomBytes(16).toString('hex')
    fs.writeFileSync(file, initText(), { mode: 0o600 })
    editConfig(file, [
      { key: 'node.name', value: 'central' },
      { key: 'dataDir', value: './var/central' },
      { key: 'transport.servers', value: [`tcp://127.0.0.1:${port}`] },
      { key: 'transport.token', value: token },
      { key: 'hub.listen', value: `127.0.0.1:${port}` },
      { key: 'hub.tokens', value: { central: hashToken(token), local: hashToken(localToken(token)) } },
      { key: 'hello.interval', value: 10 },
    ])
    io.stderr.write(`outpost up: wrote ${file}\n`)
  }
  const { config } = load(io, { ...values, config: file }, false)
  const logger = loggerFor(config, values.debug)
  const h = await Hub.start({ listen: config.hub.listen, tokens: config.hub.tokens, tls: config.hub.tls, redirect: config.hub.redirect, name: 'hub', log: logger.child('hub').log, ...(logger.trace ? { debug: logger.trace } : {}) })
  const central = await runNode(config, logger.child('central'), { configFile: file })
  const localConfig: Config = structuredClone(config)
  localConfig.node.name = 'local'
  localConfig.dataDir = path.join(path.dirname(config.dataDir), 'local')
  localConfig.transport.token = localToken(config.transport.token ?? '')
  localConfig.api.socket = null
  // The file is central's: its schedules and log files are not run or shipped twice.
  localConfig.schedules = []
  localConfig.logs = []
  const local = await runNode(localConfig, logger.child('local'))
  io.stderr.write(`outpost up: hub on ${h.address}, nodes central and local running (data in ${path.dirname(config.dataDir)}).\n` +
    `In another terminal, from ${io.cwd}:\n  npx outpost send --to local cli.run -- uname -a\nCtrl-C stops.\n`)
  await untilSignal()
  for (const n of [local, central]) { await n.api.close(); await n.node.close() }
  await h.close()
  return EXIT.ok
}

/** One request to the local socket; calls onLine for each JSON line until the server says done or closes. */
function talk(file: string, request: string, onLine: (obj: Record<string, unknown>) => boolean | void): Promise<void> {
  return new Promise((resolve, reject) => {
    let ended = false
    const sock = net.connect(file)
    let buf = ''
    sock.setEncoding('utf8')
    sock.on('connect', () => { sock.write(request) })
    sock.on('data', (d: string) => {
      buf += d
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (line.trim() === '') continue
        let finished: boolean | void
        try {
          finished = onLine(JSON.parse(line) as Record<string, unknown>)
        } catch (err) {
          sock.destroy()
          reject(err)
          return
        }
        if (finished === true) { ended = true; sock.destroy(); resolve(); return }
      }
    })
    sock.on('error', (err: NodeJS.ErrnoException) => reject(new OutpostError(err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'not_connected' : 'io',
      `cannot reach the node at ${file} (${err.code ?? err.message}): is \`outpost agent\` (or \`outpost up\`) running with this config?`, { cause: err })))
    sock.on('close', () => {
      if (ended) return resolve()
      reject(new OutpostError('not_delivered', `the node closed the connection (${file}) before the answer was complete; what it accepted stays queued there`))
    })
  })
}

/** Exit 3: the method did not run (not delivered, or refused by the receiver's policy). */
const NOT_DELIVERED = new Set(['not_delivered', 'ttl_expired', 'denied', 'method_disabled', 'method_unknown', 'command_unknown'])

const send: Command = async (io, args) => {
  const { values, positionals } = parse(args, {
    to: { type: 'string', multiple: true }, file: { type: 'string' }, 'reply-method': { type: 'string' }, timeout: { type: 'string' },
    'ack-timeout': { type: 'string' }, retries: { type: 'string' }, ttl: { type: 'string' }, 'no-wait': { type: 'boolean' }, socket: { type: 'string' },
  }, true)
  if (values.help) {
    return print(io, `Usage: outpost send [--to NODE]... METHOD [-- ARGS...]\n       outpost send --file MSGS.json\n\n  Submit a message at this node and print the replies as they arrive.\n\n  --to NODE           receiver (repeat for several; default: this node)\n  --file FILE         a JSON array of messages (steward's format works)\n  --reply-method M    what runs with the reply at this node (default reply.file.append)\n  --timeout S         methodTimeout\n  --ack-timeout S     --retries N    --ttl S\n  --no-wait           print the accepted ids and return\n  --socket PATH       the node's API socket (default <dataDir>/outpost.sock)\n\n  Exit: 0 ok, 1 the remote method failed, 2 usage, 3 not delivered or refused (ttl, attempts, denied, method_disabled).\n\n${GLOBAL_HELP}`)
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
  })
  return exit
}

const nodes: Command = async (io, args) => {
  const { values } = parse(args, { socket: { type: 'string' } }, false)
  if (values.help) return print(io, `Usage: outpost nodes [--json]\n\n  The nodes this node has heard from (on central: the fleet, from node.hello heartbeats).\n\n${GLOBAL_HELP}`)
  const { config } = load(io, values, false)
  let list: { name: string; online: boolean; lastSeen: number; version?: string; os?: string; arch?: string }[] = []
  await talk(values.socket ?? socketPath(config), '{"op":"nodes"}\n', (obj) => { list = (obj.nodes ?? []) as typeof list; return true })
  if (values.json) return print(io, JSON.stringify(list))
  const rows = [['NAME', 'ONLINE', 'LAST SEEN', 'VERSION', 'OS/ARCH'], ...list.map((n) => [n.name, n.online ? 'yes' : 'no', new Date(n.lastSeen).toISOString(), n.version ?? '-', `${n.os ?? '-'}/${n.arch ?? '-'}`])]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return print(io, rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n'))
}

const call: Command = async (io, args) => {
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
  try {
    if (method.kind === 'stream') {
      // Output as it comes; Ctrl-C stops the method (and kills what it started).
      const stop = (): void => abort.abort(new OutpostError('cancelled', `${name} was stopped (Ctrl-C)`))
      process.once('SIGINT', stop)
      try {
        const it = method.run(ctx)
        let step = await it.next()
        for (; step.done !== true; step = await it.next()) io.stdout.write(dataText(step.value))
        const code = step.value.exitCode
        if (abort.signal.aborted && !(method.untilTimeout === true && isOutpostError(abort.signal.reason, 'method_timeout'))) io.stderr.write(`outpost: ${(abort.signal.reason as Error).message}\n`)
        return code !== undefined && code !== 0 ? EXIT.remoteFailed : EXIT.ok
      } finally {
        process.off('SIGINT', stop)
      }
    }
    const r = await method.run(ctx)
    const text = (v: Uint8Array | string | undefined): string | undefined => (v === undefined ? undefined : dataText(v))
    print(io, JSON.stringify({ data: jsonOrText(text(r.data)), stderr: text(r.stderr), exitCode: r.exitCode }, null, 2))
    return r.exitCode !== undefined && r.exitCode !== 0 ? EXIT.remoteFailed : EXIT.ok
  } finally {
    clearTimeout(timer)
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

export const NODE_COMMANDS: Record<string, Command> = { agent, hub, up, send, nodes, call, upgrade: upgradeCommand }

