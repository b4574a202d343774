/**
 * The command line (SPEC §4). `main` takes argv, environment and streams as arguments so tests
 * drive it in-process; bin/outpost.cjs passes the real ones.
 */
import YAML from 'yaml'
import { editConfig, getKey, initText, keyPath, loadConfig, parseCliValue, resolveConfigPath, writeAtomic, type Config } from '../config'
import { defaultsContext } from '../config/schema'
import { exitCodeFor, OutpostError, isOutpostError } from '../errors'
import { API_VERSION, VERSION } from '../version'
import { EXIT, GLOBAL_HELP, parse, print, type Io } from './common'
import { NODE_COMMANDS } from './agent'
import { givenValueRefused } from '../config/remote'
import { describeLive, liveJson, runningSocket, tellRunningNode } from './config'
import { selfCheck } from './self-check'
import { keysCommand } from './keys'

export { EXIT, type Io } from './common'

const USAGE = `outpost ${VERSION}: an offline-first edge agent with a durable outbox

Usage: outpost [COMMAND] [OPTIONS]

Commands:
  agent              run this node (the default command)
  hub                run the TCP hub
  up                 quickstart: hub + node "central" + node "local" on loopback, data in ./var
  send               submit a message and print replies as they arrive
  nodes              known nodes
  jobs               jobs: sends to many nodes in batches (send --batch, --canary, --job)
  job ID             one job as a matrix of its nodes' states (--watch, --cancel)
  status             this node: link, outbox per destination, methods running
  call               run a method here, no network
  cp                 copy a file to, from or between nodes (SRC DST, NODE:/path), resumable
  transfers          file transfers in progress
  config             show|path|get KEY|set KEY VALUE|unset KEY|init
  keys               gen [--out FILE]|show [FILE]: an operator's ed25519 key pair
  upgrade            self-upgrade from the version endpoint (--check only reports); also -u
  repl               interactive shell for send, nodes and call
  shell              a terminal on a node: outpost shell NODE [-- CMD...]
  tunnel             a local port carried to a node: outpost tunnel NODE LOCALPORT:HOST:PORT
                     (-R REMOTEPORT:HOST:PORT: a port on the node carried back here)
  version            print the version

${GLOBAL_HELP}

Exit codes: 0 ok, 1 the remote method failed, 2 usage or config error (or no agent running), 3 not delivered or refused.
Run \`outpost COMMAND --help\` for a command's own options.`

const CONFIG_HELP = `Usage: outpost config SUBCOMMAND

  show               the effective configuration (file values over defaults)
  path               which file is read, and why
  get KEY            one effective value, e.g. delivery.retries
  set KEY VALUE      change a key in the file, keeping its comments; VALUE is read as YAML
                     (7 is a number, "7" a string, [a, b] a list). A node running from
                     the file takes the change at once, or says which keys need a restart
  unset KEY          remove a key from the file (its default applies again; comments stay)
  init [--force]     write a fully commented default file

${GLOBAL_HELP}`

/** `outpost config SUB --help`: one subcommand's usage, what it does, and examples that work pasted. */
const CONFIG_SUB_HELP: Record<string, string> = {
  show: `Usage: outpost config show [--json]

  Print the effective configuration: the file's values over the defaults, as YAML (or JSON).

  outpost config show
  outpost config show --json`,
  path: `Usage: outpost config path [--json]

  Print which config file is read. Standard output is the path alone; why that file
  (--config, $OUTPOST_CONFIG, $CONFIG, ./outpost.yaml, /etc/outpost/outpost.yaml) goes to
  standard error.`,
  get: `Usage: outpost config get KEY [--json]

  Print one effective value (the file's, else the default).

  outpost config get delivery.retries
  outpost config get transport --json`,
  set: `Usage: outpost config set KEY VALUE [--json]

  Change one key in the file, keeping its comments and layout. VALUE is read as YAML:
  7 is a number, '"7"' a string, '[a, b]' a list, true a boolean. A key that does not
  exist or a value of the wrong type is refused (exit 2) and the file is left unchanged.
  A node running from the file takes the change at once, or says which keys need a restart.

  outpost config set delivery.retries 7
  outpost config set transport.compress off
  outpost config set node.labels '{role: db, zone: eu-1}'`,
  unset: `Usage: outpost config unset KEY [--json]

  Remove one key from the file: its default applies again; comments stay.

  outpost config unset delivery.retries`,
  init: `Usage: outpost config init [--force] [--json]

  Write a fully commented default file: --config's, else ./outpost.yaml. An existing file is
  kept unless --force.`,
}

/** Global options that take a value: their value is not the command. */
const VALUE_OPTIONS = new Set(['--config', '--data-dir', '--log-level', '--socket', '--pid-file', '--history'])

function commandIndex(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--') return -1
    if (a === '-u' || a === '--upgrade' || !a.startsWith('-')) return i
    if (VALUE_OPTIONS.has(a)) i++
  }
  return -1
}

export async function main(io: Io): Promise<number> {
  const { argv } = io
  let named: string | undefined
  try {
    const at = commandIndex(argv)
    const first = at < 0 ? undefined : argv[at]
    // -u / --upgrade are spelled as flags but name the upgrade command.
    const command = first === '-u' || first === '--upgrade' ? 'upgrade' : first ?? 'agent'
    const rest = at < 0 ? argv : argv.filter((_, i) => i !== at)
    if (first !== undefined) named = command
    if (command === 'help' || (first === undefined && (argv.includes('--help') || argv.includes('-h')))) return print(io, USAGE)
    if (command === 'version' || (rest.includes('--version') && first === undefined)) return version(io, rest)
    if (command === 'config') return await configCommand(io, rest)
    if (command === 'keys') return await keysCommand(io, rest)
    if (command === 'self-check') return print(io, JSON.stringify(await selfCheck()))
    const run = NODE_COMMANDS.get(command)
    if (run) return await run(io, rest)
    named = undefined
    throw new OutpostError('usage', `unknown command '${command}'; run \`outpost --help\``)
  } catch (err) {
    // A bad option of a command points at that command's help.
    if (named !== undefined && isOutpostError(err) && err.code === 'usage' && err.message.endsWith('; run `outpost --help`')) {
      return fail(io, new OutpostError('usage', err.message.replace(/outpost --help`$/, `outpost ${named} --help\``), { cause: err }))
    }
    return fail(io, err)
  }
}

function fail(io: Io, err: unknown): number {
  const json = io.argv.includes('--json')
  if (isOutpostError(err)) {
    io.stderr.write(json ? JSON.stringify({ error: err.toJSON() }) + '\n' : `outpost: ${err.message} [${err.code}]\n`)
    return exitCodeFor(err.code)
  }
  io.stderr.write(`outpost: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
  return 1
}

function version(io: Io, args: string[]): number {
  const { values } = parse(args, {}, false)
  if (values.help) return print(io, `Usage: outpost version [--json]  (also outpost --version)\n\n  Print this outpost's version, its protocol version (api), the Node.js it runs on and the platform.\n\n${GLOBAL_HELP}`)
  if (values.json) return print(io, JSON.stringify({ version: VERSION, apiVersion: API_VERSION, node: process.version, platform: `${process.platform}-${process.arch}` }))
  return print(io, `outpost ${VERSION} (api ${API_VERSION}, node ${process.version}, ${process.platform}-${process.arch})`)
}

async function configCommand(io: Io, args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { force: { type: 'boolean' } }, true)
  const [sub, ...params] = positionals
  if (values.help && sub !== undefined && CONFIG_SUB_HELP[sub] !== undefined) return print(io, `${CONFIG_SUB_HELP[sub]}\n\n${GLOBAL_HELP}`)
  if (values.help || sub === undefined || sub === 'help') {
    if (sub === undefined && !values.help) io.stderr.write('outpost config: a subcommand is needed\n')
    print(sub === undefined && !values.help ? { ...io, stdout: io.stderr } : io, CONFIG_HELP)
    return sub === undefined && !values.help ? EXIT.usage : EXIT.ok
  }
  const resolve = { flag: values.config, env: io.env, cwd: io.cwd }
  const want = (n: number, usage: string): void => {
    if (params.length !== n) throw new OutpostError('usage', `usage: outpost config ${usage}`)
  }
  const load = (): Config => {
    const { config } = loadConfig(resolve)
    if (values['data-dir'] !== undefined) config.dataDir = values['data-dir']
    return config
  }
  switch (sub) {
    case 'show': {
      want(0, 'show')
      const config = load()
      return print(io, values.json ? JSON.stringify(config, null, 2) : YAML.stringify(config, { lineWidth: 0 }))
    }
    case 'path': {
      want(0, 'path')
      const src = resolveConfigPath(resolve)
      if (values.json) return print(io, JSON.stringify(src))
      print(io, src.path)
      // Why this file, on standard error: standard output stays the path alone, for scripts.
      const why = { '--config': 'named by --config', OUTPOST_CONFIG: 'named by $OUTPOST_CONFIG', CONFIG: 'named by $CONFIG', cwd: './outpost.yaml in the current folder', etc: 'the system-wide file (no ./outpost.yaml here)', none: 'no file at --config, $OUTPOST_CONFIG, $CONFIG, ./outpost.yaml or /etc/outpost/outpost.yaml' }[src.from]
      io.stderr.write(`(${why}${src.exists ? '' : '; no such file: every key takes its default, and `outpost config init` writes one'})\n`)
      return EXIT.ok
    }
    case 'get': {
      want(1, 'get KEY')
      const value = getKey(load(), params[0]!)
      if (values.json) return print(io, JSON.stringify(value))
      return print(io, value !== null && typeof value === 'object' ? YAML.stringify(value) : String(value))
    }
    case 'set': {
      want(2, 'set KEY VALUE')
      const [key, raw] = params as [string, string]
      keyPath(key)
      const src = resolveConfigPath(resolve)
      const value = parseCliValue(raw)
      const socket = runningSocket(io, values)
      try {
        editConfig(src.path, [{ key, value }], defaultsContext())
      } catch (err) {
        throw givenValueRefused(err, key, src.path)
      }
      const live = await tellRunningNode(socket, src.path)
      if (values.json) return print(io, JSON.stringify({ path: src.path, key, value, running: liveJson(live) }))
      return print(io, `${key} = ${JSON.stringify(value)}: written to ${src.path}\n${describeLive(live)}`)
    }
    case 'unset': {
      want(1, 'unset KEY')
      const key = params[0]!
      keyPath(key)
      const src = resolveConfigPath(resolve)
      if (!src.exists) throw new OutpostError('config_not_found', `config: ${src.path} does not exist; nothing to unset`)
      const socket = runningSocket(io, values)
      editConfig(src.path, [{ key, unset: true }], defaultsContext())
      const live = await tellRunningNode(socket, src.path)
      if (values.json) return print(io, JSON.stringify({ path: src.path, key, unset: true, running: liveJson(live) }))
      return print(io, `${key} unset (its default applies): written to ${src.path}\n${describeLive(live)}`)
    }
    case 'init': {
      want(0, 'init [--force]')
      const src = resolveConfigPath(resolve)
      // Without an explicit file, init writes ./outpost.yaml even when /etc holds one.
      const target = src.from === 'etc' ? resolveConfigPath({ ...resolve, etcPath: '/nonexistent' }).path : src.path
      const exists = target === src.path ? src.exists : false
      if (exists && !values.force) throw new OutpostError('usage', `${target} exists already; use --force to overwrite it`)
      writeAtomic(target, initText())
      if (values.json) return print(io, JSON.stringify({ path: target }))
      return print(io, `wrote ${target}`)
    }
    default:
      throw new OutpostError('usage', `unknown config subcommand '${sub}'; run \`outpost config --help\``)
  }
}
