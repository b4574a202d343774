/** What every command shares: injected stdio and environment, global flags, exit codes. */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { OutpostError } from './errors'

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

