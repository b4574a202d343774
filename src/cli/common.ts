/** What every command shares: injected stdio and environment, global flags, exit codes. */
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import YAML from 'yaml'
import { editConfig, loadConfig, resolveConfigPath, type Config, type ConfigEdit } from '../config'
import { talk } from '../api/client'
import { socketPath } from '../api/index'
import { OutpostError, isOutpostError } from '../errors'
import { createLogger, type Level, type Logger } from '../log'
import { MIB } from '../lib/disk-guard'

export interface Io {
  argv: string[]
  env: NodeJS.ProcessEnv
  cwd: string
  stdout: { write(s: string): unknown }
  stderr: { write(s: string): unknown }
}

/** SPEC §4 exit codes. */
export const EXIT = { ok: 0, remoteFailed: 1, usage: 2, notDelivered: 3 } as const

export const GLOBAL_OPTIONS = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  'log-level': { type: 'string' },
  debug: { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options']

export const GLOBAL_HELP = `Global options:
  --config FILE      config file (else $OUTPOST_CONFIG, $CONFIG, ./outpost.yaml, /etc/outpost/outpost.yaml)
  --data-dir DIR     data directory (overrides dataDir)
  --log-level LEVEL  trace | debug | info | warn | error | silent
  --debug            trace every frame
  --json             machine-readable output
  -h, --help         help for a command`

export function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, allowPositionals: boolean) {
  try {
    return parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals, strict: true })
  } catch (err) {
    throw new OutpostError('usage', `${(err as Error).message.replace(/\. To specify a positional.*$/s, '')}; run \`outpost --help\``, { cause: err })
  }
}

export function print(io: Io, text: string): number {
  io.stdout.write(text.endsWith('\n') ? text : text + '\n')
  return EXIT.ok
}

/** Rows as columns two spaces apart, each as wide as its widest cell (the first row is the header). */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent']

export function loggerFor(config: Config, debug: boolean | undefined, prefix = ''): Logger {
  // A log file stops a little after audit.log and reply files (reserve + 2 MiB) on a filling disk.
  return createLogger({ level: config.log.level as Level, format: config.log.format, file: config.log.file, diskFloor: config.delivery.reserveBytes + MIB, debug: debug === true }, prefix)
}

export { socketPath }

export interface Loaded { config: Config; file: string; fileExists: boolean; fileHas: (key: string[]) => boolean }

/** Load the config; flags given to agent/hub are written back into the file (SPEC §4). */
export function load(io: Io, values: { config?: string | undefined; 'data-dir'?: string | undefined; 'log-level'?: string | undefined }, writeBack: boolean): Loaded {
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
  return { config, file: src.path, fileExists: src.exists, fileHas }
}

/**
 * One request to this config's agent over its socket (`--socket` overrides where); JSON lines
 * back to onLine as in talk(). No agent there is a usage error (exit 2) that says which config
 * and data directory were looked at and how to start one.
 */
export async function askAgent(io: Io, loaded: Loaded, socketFlag: string | undefined, request: unknown, onLine: (obj: Record<string, unknown>) => boolean | void, signal?: AbortSignal): Promise<void> {
  const file = socketFlag !== undefined ? path.resolve(io.cwd, socketFlag) : socketPath(loaded.config)
  try {
    await talk(file, JSON.stringify(request) + '\n', onLine, signal)
  } catch (err) {
    if (!isOutpostError(err, 'agent_not_running')) throw err
    const config = loaded.fileExists ? loaded.file : `the default config (no file at ${loaded.file})`
    const where = socketFlag !== undefined ? `nothing answers on --socket ${file}` : `no agent runs for ${config} with data dir ${loaded.config.dataDir} (${err.message.replace(/^.*?: /, '')})`
    const start = loaded.fileExists ? `outpost agent --config ${loaded.file}` : 'outpost agent --config FILE'
    throw new OutpostError('agent_not_running', `${where}; start one with \`${start}\` (or \`outpost up\` for the quickstart), or point --config / --data-dir at a running one`, { cause: err })
  }
}
