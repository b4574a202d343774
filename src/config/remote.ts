/**
 * Remote configuration (config.set, config.deploy, config.rollback): change the running node's
 * config file, keep the one before as `<file>.previous`, take over what needs no restart, and
 * answer with a result record.
 *
 *   validate the new document (key and line on error; nothing written) ─▶ <file>.previous ← old
 *   ─▶ <file> ← new (atomic) ─▶ control.apply ─▶ { ok, id, changed, restartNeeded, previous }
 *
 * `outpost config set|unset` on the node's own machine writes the file itself, then asks the node
 * over its socket to re-read it (reloadFile): the same apply, without `.previous`.
 *
 * `<dataDir>/config-state.json` remembers the id of the last deployment (and the one before,
 * for rollback), so the same id deployed again is a no-op unless forced.
 */
import fs from 'node:fs'
import path from 'node:path'
import { editConfig, keyPath, parseCliValue, parseConfig, writeAtomic, type Config } from './index'
import { isOutpostError, OutpostError } from '../errors'
import type { ApplyResult, Control } from './apply'

export interface ConfigResult {
  ok: true
  method: 'config.set' | 'config.deploy' | 'config.rollback'
  /** The deployment id (config.deploy, config.rollback: the id now in force), else the request id. */
  id: string
  file: string
  changed: string[]
  restartNeeded: string[]
  /** Where the config before this change was kept (null when there was no file). */
  previous: string | null
  /** config.deploy of the id already in force: nothing was done. */
  noop?: true
}

interface State { deployId: string | null; previousDeployId: string | null }

function stateFile(dataDir: string): string {
  return path.join(dataDir, 'config-state.json')
}

function readState(dataDir: string): State {
  try {
    const s = JSON.parse(fs.readFileSync(stateFile(dataDir), 'utf8')) as Partial<State>
    return { deployId: s.deployId ?? null, previousDeployId: s.previousDeployId ?? null }
  } catch {
    return { deployId: null, previousDeployId: null }
  }
}

function configFileOf(control: Control | undefined): string {
  if (control === undefined) throw new OutpostError('config_readonly', 'remote configuration works only inside a running agent or hub')
  if (control.configFile === undefined) throw new OutpostError('config_readonly', 'this node has no config file of its own (it runs inside `outpost up`); change the file of `outpost up` instead')
  return control.configFile
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new OutpostError('io', `config: cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
}

/** A config for another node would rename this one at its next start: refused. */
function sameNode(next: Config, self: string, what: string): void {
  if (next.node.name !== self) {
    throw new OutpostError('config_node_mismatch', `${what}: node.name would be ${JSON.stringify(next.node.name)}, but this is ${self}; set node.name: ${self} in the document (nothing was written)`)
  }
}

function keepPrevious(file: string, old: string | undefined): string | null {
  if (old === undefined) return null
  writeAtomic(`${file}.previous`, old)
  return `${file}.previous`
}

/** Refuses a validated next config before anything is written (the security keys' guard, sign-check.ts). */
export type Guard = (next: Config) => void

/**
 * A value config.set was given and the schema refused: the line it names is one of the edited
 * text, which was never written (the file has no such line). Said as the value given instead.
 */
export function givenValueRefused(err: unknown, key: string, file: string): unknown {
  if (!isOutpostError(err, 'config_invalid') || !err.message.startsWith(`config: ${key}`)) return err
  return new OutpostError('config_invalid', `${err.message.replace(/ \(line \d+\)$/, '')} (the value given; ${file} is unchanged)`, { cause: err })
}

/** config.set KEY VALUE: VALUE is read as YAML (7 a number, [a, b] a list); comments are kept. */
export function setKey(control: Control | undefined, self: string, id: string, key: string, raw: string, guard?: Guard): ConfigResult {
  const file = configFileOf(control)
  keyPath(key)
  const old = readText(file)
  // Checked on a copy first: an edit that breaks the file, or renames the node, writes nothing.
  const probe = `${file}.probe-${process.pid}`
  let next: Config
  try {
    if (old !== undefined) fs.copyFileSync(file, probe) // keeps the mode (0600 for files holding tokens)
    try {
      next = editConfig(probe, [{ key, value: parseCliValue(raw) }])
    } catch (err) {
      throw givenValueRefused(err, key, file)
    }
    sameNode(next, self, `config.set ${key}`)
    guard?.(next)
    const previous = keepPrevious(file, old)
    fs.renameSync(probe, file)
    const applied = control!.apply(next)
    return { ok: true, method: 'config.set', id, file, ...applied, previous }
  } finally {
    fs.rmSync(probe, { force: true })
  }
}

/** config.deploy: a whole YAML document, validated, written as it is (its comments with it). */
export function deploy(control: Control | undefined, self: string, dataDir: string, deployId: string, text: string, force: boolean, guard?: Guard): ConfigResult {
  const file = configFileOf(control)
  const state = readState(dataDir)
  if (state.deployId === deployId && !force) {
    return { ok: true, method: 'config.deploy', id: deployId, file, changed: [], restartNeeded: [], previous: fs.existsSync(`${file}.previous`) ? `${file}.previous` : null, noop: true }
  }
  const next = parseConfig(text, `config.deploy ${deployId}`)
  sameNode(next, self, `config.deploy ${deployId}`)
  guard?.(next)
  const previous = keepPrevious(file, readText(file))
  writeAtomic(file, text)
  writeAtomic(stateFile(dataDir), JSON.stringify({ deployId, previousDeployId: state.deployId }) + '\n')
  return { ok: true, method: 'config.deploy', id: deployId, file, ...control!.apply(next), previous }
}

/** config.rollback: `<file>.previous` becomes the config again, and the current one the new `.previous`. */
export function rollback(control: Control | undefined, self: string, dataDir: string, guard?: Guard): ConfigResult {
  const file = configFileOf(control)
  const prevFile = `${file}.previous`
  const text = readText(prevFile)
  if (text === undefined) throw new OutpostError('not_found', `config.rollback: there is no ${prevFile} (no config.set or config.deploy has changed this node's config yet)`)
  const next = parseConfig(text, prevFile)
  sameNode(next, self, 'config.rollback')
  guard?.(next)
  const current = readText(file)
  writeAtomic(file, text)
  if (current !== undefined) writeAtomic(prevFile, current)
  else fs.rmSync(prevFile, { force: true })
  const state = readState(dataDir)
  writeAtomic(stateFile(dataDir), JSON.stringify({ deployId: state.previousDeployId, previousDeployId: state.deployId }) + '\n')
  return { ok: true, method: 'config.rollback', id: state.previousDeployId ?? '', file, ...control!.apply(next), previous: current !== undefined ? prevFile : null }
}

/** What reloadFile did: applied the file, or nothing because this node runs from another file. */
export type ReloadResult =
  | ({ type: 'applied'; file: string } & ApplyResult)
  | { type: 'other-file'; file: string }

/**
 * The config file was edited beside the running node (`outpost config set`): read it again and
 * take over what needs no restart. `file` is the one the editor wrote; when this node runs
 * from another file, nothing is applied.
 */
export function reloadFile(control: Control | undefined, file: string): ReloadResult {
  const own = configFileOf(control)
  if (realPath(own) !== realPath(file)) return { type: 'other-file', file: own }
  const text = readText(own) ?? ''
  return { type: 'applied', file: own, ...control!.apply(parseConfig(text, own)) }
}

function realPath(file: string): string {
  try {
    return fs.realpathSync(file)
  } catch {
    return path.resolve(file)
  }
}
