/**
 * How cli.run (and cli.stream) is told who to run as, where and with what environment:
 * options at the head of methodArgs, ended by `--`, so the envelope keeps its SPEC §2 fields.
 *
 *   ["--user=www-data", "--cwd=/srv/app", "--env=MODE=ci", "--", "make", "test"]
 *   ["uptime"]                    no options: the whole of methodArgs is the command
 *
 * Options are read only when methodArgs[0] starts with `--` (no program name does), so every
 * command that worked before still means the same.
 */
import fs from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { OutpostError } from '../src/errors'
import { putOwn } from '../src/lib/own'

export interface RunArgOptions { user?: string; group?: string; env: string[]; cwd?: string }

const USAGE = 'cli.run options are --user=NAME --group=NAME --env=KEY=VALUE (repeatable) --cwd=DIR, then -- and the command'

/** Split methodArgs into options and the command. */
export function splitRunArgs(args: readonly string[]): { options: RunArgOptions; command: string[] } {
  if (!(args[0]?.startsWith('--') ?? false)) return { options: { env: [] }, command: [...args] }
  const end = args.indexOf('--')
  if (end < 0) throw new OutpostError('method_args', `${USAGE}; no -- after ${JSON.stringify(args[0])}`)
  let values: { user?: string; group?: string; env?: string[]; cwd?: string }
  try {
    values = parseArgs({
      args: args.slice(0, end),
      options: { user: { type: 'string' }, group: { type: 'string' }, env: { type: 'string', multiple: true }, cwd: { type: 'string' } },
      strict: true, allowPositionals: false,
    }).values
  } catch (err) {
    throw new OutpostError('method_args', `${USAGE}: ${(err as Error).message}`, { cause: err })
  }
  const options: RunArgOptions = { env: values.env ?? [] }
  if (values.user !== undefined) options.user = values.user
  if (values.group !== undefined) options.group = values.group
  if (values.cwd !== undefined) options.cwd = values.cwd
  return { options, command: args.slice(end + 1) }
}

/** Build the head of methodArgs from options (the BasicAgent form and schedules use this). */
export function runArgs(o: { user?: string | undefined; group?: string | undefined; cwd?: string | undefined; env?: Record<string, string> | undefined }, command: string[]): string[] {
  const head: string[] = []
  if (o.user !== undefined) head.push(`--user=${o.user}`)
  if (o.group !== undefined) head.push(`--group=${o.group}`)
  if (o.cwd !== undefined) head.push(`--cwd=${o.cwd}`)
  for (const [k, v] of Object.entries(o.env ?? {})) head.push(`--env=${k}=${v}`)
  return head.length === 0 ? command : [...head, '--', ...command]
}

interface Account { name: string; id: number; gid: number; home: string }

/** name or numeric id → entry of /etc/passwd or /etc/group (no shelling out to id(1)). */
async function lookup(file: '/etc/passwd' | '/etc/group', key: string): Promise<Account | undefined> {
  const text = await fs.readFile(file, 'utf8').catch(() => '')
  for (const line of text.split('\n')) {
    const f = line.split(':')
    if (f.length < 3 || (f[0] !== key && f[2] !== key)) continue
    return { name: f[0]!, id: Number(f[2]), gid: Number(file === '/etc/passwd' ? f[3] : f[2]), home: file === '/etc/passwd' ? (f[5] ?? '/') : '/' }
  }
  if (/^\d+$/.test(key)) return { name: key, id: Number(key), gid: Number(key), home: '/' }
  return undefined
}

export interface SpawnOptions { uid?: number; gid?: number; env?: NodeJS.ProcessEnv; cwd?: string }

/** Check the options against this host and turn them into spawn options. */
export async function resolveRunOptions(o: RunArgOptions, base: NodeJS.ProcessEnv = process.env, method = 'cli.run'): Promise<SpawnOptions> {
  const out: SpawnOptions = {}
  let env: NodeJS.ProcessEnv | undefined
  if (o.user !== undefined || o.group !== undefined) {
    const uid = process.getuid?.() ?? -1
    if (uid !== 0) throw new OutpostError('not_permitted', `${method}: --user/--group need outpost to run as root (it runs as uid ${uid}); run the agent as root or drop the option`)
    if (o.user !== undefined) {
      const u = await lookup('/etc/passwd', o.user)
      if (u === undefined) throw new OutpostError('not_found', `${method}: no user ${JSON.stringify(o.user)} in /etc/passwd`)
      out.uid = u.id
      out.gid = u.gid
      env = { ...base, HOME: u.home, USER: u.name, LOGNAME: u.name }
    }
    if (o.group !== undefined) {
      const g = await lookup('/etc/group', o.group)
      if (g === undefined) throw new OutpostError('not_found', `${method}: no group ${JSON.stringify(o.group)} in /etc/group`)
      out.gid = g.id
    }
  }
  if (o.env.length > 0) {
    env = { ...(env ?? base) }
    for (const kv of o.env) {
      const eq = kv.indexOf('=')
      if (eq <= 0) throw new OutpostError('method_args', `${method}: --env takes KEY=VALUE, got ${JSON.stringify(kv)}`)
      putOwn(env, kv.slice(0, eq), kv.slice(eq + 1))
    }
  }
  if (env !== undefined) out.env = env
  if (o.cwd !== undefined) {
    const st = await fs.stat(o.cwd).catch(() => undefined)
    if (!st?.isDirectory()) throw new OutpostError('method_args', `${method}: --cwd ${JSON.stringify(o.cwd)} is not a directory on this node`)
    out.cwd = o.cwd
  }
  return out
}
