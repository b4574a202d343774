/**
 * The commands that run a node: agent, hub, up (send, nodes, call: src/cli/client.ts; repl:
 * src/cli/repl.ts).
 */
import { randomBytes, createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { TRANSPORTS } from '../../transports/index'
import { METHODS } from '../../methods/index'
import { createMetrics, startApis, type Apis } from '../api/index'
import { call, nodes, send, status } from './client'
import { EXIT, GLOBAL_HELP, load, loggerFor, parse, print, type Io } from './common'
import { repl } from './repl'
import { job, jobs } from './jobs'
import { cp, transfers } from './cp'
import { editConfig, initText, parseConfig, type Config } from '../config'
import { isOutpostError, OutpostError } from '../errors'
import { defaultsContext } from '../config/schema'
import { Hub, hashToken } from '../hub'
import { generateKeyPair, publicKeyText, readKeyFile, writeKeyFile, type KeyPair } from '../keys'
import { hubLink } from '../hub-link'
import type { Transport, TransportOptions } from '../transport'
import type { Logger } from '../log'
import { OutpostNode } from '../node'
import { ensureDataDir } from '../lib/data-dir'
import { writePidFile } from '../lib/pid-file'
import { DiskGuard, MIB } from '../lib/disk-guard'
import { oneLine } from '../lib/one-line'
import { lockHolder } from '../store/lock'
import { cliHint } from './hint'
import { isPackaged } from '../upgrade'
import { EXIT_RESTART, isSupervised, onAgentStart, readPending, type AgentInfo } from '../upgrade/watchdog'
import { scheduleUpgrades } from '../upgrade/schedule'
import { VERSION } from '../version'
import { spawn } from 'node:child_process'
import { upgradeCommand } from './upgrade'
import { shell } from './shell'
import { tunnel } from './tunnel'

export { socketPath } from './common'

type Command = (io: Io, args: string[]) => Promise<number>

/** Resolves on SIGINT or SIGTERM (and, when asked, SIGHUP: restart). */
function untilSignal(hup = false): Promise<string> {
  const sigs: NodeJS.Signals[] = hup ? ['SIGINT', 'SIGTERM', 'SIGHUP'] : ['SIGINT', 'SIGTERM']
  return new Promise((resolve) => {
    const on = (sig: string): void => { for (const s of sigs) process.off(s, on); resolve(sig) }
    for (const s of sigs) process.on(s, on)
  })
}


/** How agent and hub restart themselves (agent.restart, upgrades): as SIGHUP does. */
const SELF_RESTART = (): void => { process.kill(process.pid, 'SIGHUP') }

const PID_FILE = { 'pid-file': { type: 'string' } } as const
const PID_HELP = '  --pid-file FILE     write the pid there while running (refused if it names a live process)\n'

interface RunOptions { onConnected?: () => void; configFile?: string; restart?: () => void; transport?: (o: TransportOptions) => Transport }

async function runNode(config: Config, logger: Logger, o: RunOptions = {}): Promise<{ node: OutpostNode; api: Apis }> {
  const metrics = createMetrics(config)
  const node = await OutpostNode.start({ config, logger, transports: TRANSPORTS, methods: METHODS, ...o, ...(metrics ? { metrics } : {}) })
  try {
    const api = await startApis(node, config, metrics, logger.log)
    return { node, api }
  } catch (err) {
    await node.close()
    throw err
  }
}

/** Confirm a pending upgrade; with none left, the store may move to the new format (Outbox keepOldFormat). */
function confirmWith(confirm: () => void, dataDir: string, node: OutpostNode | undefined): () => void {
  return () => {
    confirm()
    if (node !== undefined && readPending(dataDir) === undefined) node.outbox.useNewFormat()
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
  confirm = confirmWith(onAgentStart(config.dataDir, VERSION, self, logger.log).confirm, config.dataDir, node)
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
  ensureDataDir(config.dataDir, 0o777)
  // On a filling disk nodes.log stops with audit.log and reply files: the outbox comes first.
  const disk = new DiskGuard({ dir: config.dataDir, floor: config.delivery.reserveBytes + 2 * MIB, what: 'nodes.log lines', log: logger.child('hub').log })
  // A node's line is one line of the file whatever it holds: a newline in it cannot forge another node's.
  const logSink = (line: string): void => {
    const one = oneLine(line)
    if (disk.allow(Buffer.byteLength(one) + 1)) fs.appendFile(logFile, one + '\n', () => {})
  }
  const h = await Hub.start({
    listen: config.hub.listen, tokens: config.hub.tokens, tls: config.hub.tls, redirect: config.hub.redirect, name: config.node.name,
    helloTimeoutMs: config.hub.helloTimeout * 1000, maxPendingPerAddress: config.hub.maxPendingPerAddress,
    log: logger.child('hub').log, logSink, ...(logger.trace ? { debug: logger.trace } : {}),
    // The node of this file attaches once it has started; a node that connects before then is woken when it does.
    ...(fileHas(['node', 'name']) ? { locals: [config.node.name] } : {}),
  })
  // The node of this file runs here, attached to the hub itself: no token, no dial.
  let inProcess: { node: OutpostNode; api: Apis } | undefined
  if (fileHas(['node', 'name'])) {
    for (const key of ['servers', 'token', 'kind'] as const) {
      if (fileHas(['transport', key])) logger.log('info', `transport.${key} is not used by ${config.node.name}: it runs inside this hub and attaches to it directly`)
    }
    try {
      inProcess = await runNode(config, logger, { configFile: file, restart: SELF_RESTART, transport: (o) => hubLink(h, o) })
    } catch (err) {
      await h.close()
      throw err
    }
  }
  // The hub is its own transport: listening is "connected" for a pending upgrade.
  const self = selfInfo(io)
  confirmWith(onAgentStart(config.dataDir, VERSION, self, logger.log).confirm, config.dataDir, inProcess?.node)()
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

/**
 * The quickstart's operator key, made once beside the nodes' data (./var/operator.key, 0600)
 * and kept: central's APIs sign with it, and both nodes run only what it signed.
 */
function quickstartKey(file: string): KeyPair {
  if (fs.existsSync(file)) return readKeyFile(file)
  const pair = generateKeyPair()
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  writeKeyFile(file, pair)
  return pair
}

/**
 * `up --port N` with a file already there: its hub (hub.listen) and central's way to it
 * (transport.servers) move to N. Applied to `config` now; `write` puts them into the file
 * (comments kept) once up runs, as `agent` and `hub` write their flags back, so the next
 * `outpost up` uses N too. undefined when the file has N already.
 */
function movePort(config: Config, port: number): ((io: Io, file: string) => void) | undefined {
  const at = config.hub.listen.lastIndexOf(':')
  const host = at > 0 ? config.hub.listen.slice(0, at) : '127.0.0.1'
  if (config.hub.listen === `${host}:${port}`) return undefined
  const dial = host === '0.0.0.0' || host === '[::]' || host === '::' ? '127.0.0.1' : host
  config.hub.listen = `${host}:${port}`
  config.transport.servers = [`tcp://${dial}:${port}`]
  return (io, file) => {
    editConfig(file, [{ key: 'hub.listen', value: config.hub.listen }, { key: 'transport.servers', value: config.transport.servers }], defaultsContext())
    io.stderr.write(`outpost up: --port ${port}: hub.listen and transport.servers written to ${file}\n`)
  }
}

const up: Command = async (io, args) => {
  const { values } = parse(args, { port: { type: 'string' } }, false)
  if (values.help) return print(io, `Usage: outpost up [--port N]\n\n  Quickstart: a hub and the nodes "central" and "local" in one process on loopback, data in\n  ./var. Creates a commented ./outpost.yaml (for node central) when there is none, and an\n  operator key (./var/operator.key): both nodes run only what it signed, and central's socket\n  signs with it. From the same folder, in another terminal (in the checkout: npx outpost …):\n    outpost send --to local cli.run -- uname -a\n\n${GLOBAL_HELP}`)
  const file = path.resolve(io.cwd, values.config ?? 'outpost.yaml')
  const port = values.port ?? '7430'
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new OutpostError('usage', `up: --port ${JSON.stringify(port)} is not a TCP port (1 to 65535)`)
  if (!fs.existsSync(file)) {
    const token = randomBytes(16).toString('hex')
    const keyFile = './var/operator.key'
    const key = quickstartKey(path.resolve(io.cwd, keyFile))
    const text = initText(defaultsContext(), [
      { key: 'node.name', value: 'central', why: 'the quickstart\'s central node' },
      { key: 'dataDir', value: './var/central', why: 'data beside this file, in ./var' },
      { key: 'transport.servers', value: [`tcp://127.0.0.1:${port}`], why: 'the hub of `outpost up --port`' },
      { key: 'transport.token', value: token, why: 'central\'s token at the hub, made up for this file' },
      { key: 'hub.listen', value: `127.0.0.1:${port}`, why: 'the quickstart\'s hub listens on loopback only' },
      { key: 'hub.tokens', value: { central: hashToken(token), local: hashToken(localToken(token)) }, why: 'the quickstart\'s nodes central and local' },
      { key: 'hello.interval', value: 10, why: 'heartbeats more often, so `outpost nodes` is quick to show both' },
      { key: 'api.signingKey', value: keyFile, why: 'the quickstart\'s operator key, made for it: what the socket and HTTP API take is signed with it' },
      { key: 'security.requireSignatures', value: true, why: 'central and local run only what an operator key signed (the sinks node.hello, error.log, reply.* aside)' },
      { key: 'security.trustedKeys', value: [{ name: 'quickstart', publicKey: publicKeyText(key.publicKey), methods: ['*'] }], why: 'the key of api.signingKey, trusted for every method' },
    ])
    parseConfig(text, file) // what up writes must load
    fs.writeFileSync(file, text, { mode: 0o600 }) // it holds a token
    io.stderr.write(`outpost up: wrote ${file}\n`)
  }
  const { config } = load(io, { ...values, config: file }, false)
  // A second `up` in this folder: said before its hub takes (or fails to take) a port.
  const holder = lockHolder(path.join(config.dataDir, 'outbox', 'lock'))
  if (holder !== undefined) throw new OutpostError('locked', `up: an outpost up runs in this folder already (process ${holder} holds ${config.dataDir}); use that one, or stop it (Ctrl-C) first`)
  const writePort = values.port !== undefined ? movePort(config, Number(port)) : undefined
  const logger = loggerFor(config, values.debug)
  const h = await Hub.start({
    listen: config.hub.listen, tokens: config.hub.tokens, tls: config.hub.tls, redirect: config.hub.redirect, name: 'hub',
    helloTimeoutMs: config.hub.helloTimeout * 1000, maxPendingPerAddress: config.hub.maxPendingPerAddress, log: logger.child('hub').log, ...(logger.trace ? { debug: logger.trace } : {}),
  }).catch((err: unknown) => {
    if (isOutpostError(err, 'io') && /EADDRINUSE/.test(err.message)) throw new OutpostError('io', `${err.message} (another outpost up or hub? \`outpost up --port N\` moves this one to port N)`, { cause: err })
    throw err
  })
  // A node that cannot start (its data directory `locked` by another `outpost up`) ends up, hub and all: it did not exit before.
  const started: Awaited<ReturnType<typeof runNode>>[] = []
  const stop = async (): Promise<void> => { for (const n of started.reverse()) { await n.api.close(); await n.node.close() } await h.close() }
  const central = await runNode(config, logger.child('central'), { configFile: file }).catch(async (err: unknown) => { await stop(); throw err })
  started.push(central)
  const localConfig: Config = structuredClone(config)
  localConfig.node.name = 'local'
  localConfig.dataDir = path.join(path.dirname(config.dataDir), 'local')
  localConfig.transport.token = localToken(config.transport.token ?? '')
  localConfig.api.socket = null
  // central's HTTP API and metrics ports are central's.
  localConfig.api.http = null
  localConfig.api.metrics = null
  // The file is central's: its schedules and log files are not run or shipped twice.
  localConfig.schedules = []
  localConfig.logs = []
  const local = await runNode(localConfig, logger.child('local')).catch(async (err: unknown) => { await stop(); throw err })
  started.push(local)
  writePort?.(io, file)
  io.stderr.write(`outpost up: hub on ${h.address}, nodes central and local running (data in ${path.dirname(config.dataDir)}).\n` +
    `In another terminal, from ${io.cwd}:\n  ${cliHint({ cwd: io.cwd, env: io.env, file }, 'send --to local cli.run -- uname -a')}\nCtrl-C stops.\n`)
  await untilSignal()
  await stop()
  return EXIT.ok
}

export const NODE_COMMANDS: ReadonlyMap<string, Command> = new Map(Object.entries({ agent, hub, up, send: (io, args) => send(io, args), nodes: (io, args) => nodes(io, args), status: (io, args) => status(io, args), call: (io, args) => call(io, args), repl, upgrade: upgradeCommand, jobs: (io, args) => jobs(io, args), job: (io, args) => job(io, args), cp: (io, args) => cp(io, args), transfers: (io, args) => transfers(io, args), shell: (io, args) => shell(io, args), tunnel: (io, args) => tunnel(io, args) } satisfies Record<string, Command>))

