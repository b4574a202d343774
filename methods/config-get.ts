/**
 * config.get [--file] [--secrets] [KEY]: the running node's configuration as JSON, or the
 * value of one key (`methods.commands`, `delivery.retries`). --file reads what the config file
 * says now (it differs from the running config until a restart, for keys that need one).
 * Secrets (tokens, passwords) show as "(set)" unless --secrets is given.
 */
import fs from 'node:fs'
import { getKey, parseConfig, type Config } from '../src/config'
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'

const SECRETS: readonly (readonly string[])[] = [
  ['transport', 'token'], ['transport', 'mqtt', 'password'], ['transport', 'nats', 'pass'], ['transport', 'nats', 'token'], ['api', 'token'],
]

function redact(config: Config): Config {
  const out = structuredClone(config) as unknown as Record<string, unknown>
  for (const p of SECRETS) {
    let o = out
    for (const k of p.slice(0, -1)) o = o[k] as Record<string, unknown>
    const last = p[p.length - 1]!
    if (o[last] !== null && o[last] !== undefined) o[last] = '(set)'
  }
  return out as unknown as Config
}

export default {
  name: 'config.get',
  kind: 'unary',
  summary: 'The running config as JSON, or one key (config.get delivery.retries); --file: what the file says; --secrets: show tokens.',
  async run(ctx: MethodContext): Promise<MethodResult> {
    const flags = new Set(ctx.args.filter((a) => a.startsWith('--')))
    const keys = ctx.args.filter((a) => !a.startsWith('--'))
    const unknown = [...flags].filter((f) => f !== '--file' && f !== '--secrets')
    if (unknown.length > 0 || keys.length > 1) throw new OutpostError('method_args', 'usage: config.get [--file] [--secrets] [KEY]')
    let config = ctx.config
    if (flags.has('--file')) {
      const file = ctx.control?.configFile
      if (file === undefined) throw new OutpostError('config_readonly', `${ctx.node} has no config file of its own`)
      config = parseConfig(fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '', file)
    }
    if (!flags.has('--secrets')) config = redact(config)
    const value = keys[0] === undefined ? config : getKey(config, keys[0])
    return { data: JSON.stringify(value, null, 2) + '\n' }
  },
} satisfies UnaryMethod
