/**
 * outpost.yaml: where it is, what it holds, and edits that keep the operator's comments.
 *
 *   resolveConfigPath ─▶ readConfig (YAML text ─ parseConfig ─▶ Config, errors with key and line)
 *   editConfig: parse as a yaml Document ─ setIn / removeKey (config-layout.ts) ─ re-validate ─ atomic write
 */
import fs from 'node:fs'
import path from 'node:path'
import YAML, { isCollection, isMap, isScalar, isSeq, LineCounter, type Document, type Node as YamlNode } from 'yaml'
import { writeFileAtomic } from '../lib/atomic-file'
import { own, putOwn } from '../lib/own'
import { removeKey, render } from './layout'
import { nearKey, suggest } from './suggest'
import { OutpostError } from '../errors'
import { TRANSPORTS } from '../../transports/index'
import { SCHEMA, defaultsContext, specAt, type Config, type DefaultsContext, type Fields, type Spec } from './schema'

export type { Config } from './schema'

export interface ConfigSource {
  /** The file that is (or would be) read. */
  path: string
  exists: boolean
  /** How it was chosen: flag, environment variable, or a default location. */
  from: '--config' | 'OUTPOST_CONFIG' | 'CONFIG' | 'cwd' | 'etc' | 'none'
}

export interface ResolveOptions {
  flag?: string | undefined
  env?: NodeJS.ProcessEnv
  cwd?: string
  etcPath?: string
}

/** SPEC §4: --config FILE, else $OUTPOST_CONFIG, else $CONFIG, else ./outpost.yaml, else /etc/outpost/outpost.yaml. */
export function resolveConfigPath(opts: ResolveOptions = {}): ConfigSource {
  const env = opts.env ?? process.env
  const cwd = opts.cwd ?? process.cwd()
  const explicit: Array<[ConfigSource['from'], string | undefined]> = [
    ['--config', opts.flag],
    ['OUTPOST_CONFIG', env.OUTPOST_CONFIG],
    ['CONFIG', env.CONFIG],
  ]
  for (const [from, p] of explicit) {
    if (p !== undefined && p !== '') {
      const abs = path.resolve(cwd, p)
      return { path: abs, exists: fs.existsSync(abs), from }
    }
  }
  const local = path.join(cwd, 'outpost.yaml')
  if (fs.existsSync(local)) return { path: local, exists: true, from: 'cwd' }
  const etc = opts.etcPath ?? '/etc/outpost/outpost.yaml'
  if (fs.existsSync(etc)) return { path: etc, exists: true, from: 'etc' }
  // Nothing found: the file `config set` / `config init` would create.
  return { path: local, exists: false, from: 'none' }
}

export interface LoadedConfig {
  config: Config
  source: ConfigSource
}

/**
 * Read the config the lookup order points at. A path given explicitly must exist; with no
 * file at the default places every key takes its default.
 */
export function loadConfig(opts: ResolveOptions & { defaults?: DefaultsContext } = {}): LoadedConfig {
  const source = resolveConfigPath(opts)
  const ctx = opts.defaults ?? defaultsContext()
  if (!source.exists) {
    if (source.from !== 'none') {
      throw new OutpostError('config_not_found', `config: ${source.path} (from ${source.from}) does not exist; create it with \`outpost config init\``)
    }
    return { config: defaultConfig(ctx), source }
  }
  let text: string
  try {
    text = fs.readFileSync(source.path, 'utf8')
  } catch (err) {
    throw new OutpostError('config_unreadable', `config: cannot read ${source.path}: ${(err as Error).message}`, { cause: err })
  }
  return { config: parseConfig(text, source.path, ctx), source }
}

export function defaultConfig(ctx: DefaultsContext = defaultsContext()): Config {
  return parseConfig('', '(defaults)', ctx)
}

interface Problem { key: string; line: number | undefined; text: string }

/** Validate YAML text against the schema; every problem names its key and line. */
export function parseConfig(text: string, fileName: string, ctx: DefaultsContext = defaultsContext()): Config {
  const lc = new LineCounter()
  const doc = YAML.parseDocument(text, { lineCounter: lc })
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    const line = e.linePos?.[0]?.line
    throw new OutpostError('config_parse', `config: ${fileName} is not valid YAML${line !== undefined ? ` (line ${line})` : ''}: ${e.message.split('\n')[0]}`)
  }
  const problems: Problem[] = []
  const lineOf = (n: YamlNode | null | undefined): number | undefined => (n?.range ? lc.linePos(n.range[0]).line : undefined)
  const value = check(SCHEMA, doc.contents as YamlNode | null, [], problems, lineOf, ctx)
  if (problems.length === 0) {
    // Across keys: the server URLs must suit the transport.
    const t = (value as Config).transport
    const plugin = TRANSPORTS.get(t.kind)!
    const wrong = t.servers.find((s) => { try { plugin.parseServer(s); return false } catch { return true } })
    if (wrong !== undefined) {
      const node = doc.getIn(['transport', 'servers'], true) as YamlNode | undefined
      const usable = plugin.schemes.map((s) => `${s}://`)
      problems.push({ key: 'transport.servers', line: lineOf(node) ?? lineOf(doc.getIn(['transport', 'kind'], true) as YamlNode | undefined), text: `has ${JSON.stringify(wrong)}, which transport.kind ${t.kind} cannot use (${usable.slice(0, -1).join(', ')}${usable.length > 1 ? ' or ' : ''}${usable.at(-1)!}host:port)` })
    }
    // The HTTP API never runs without a token, on loopback too: other local users can reach it.
    const api = (value as Config).api
    if (api.http !== null && (api.token === null || api.token.trim() === '')) {
      problems.push({ key: 'api.token', line: lineOf(doc.getIn(['api', 'token'], true) as YamlNode | undefined) ?? lineOf(doc.getIn(['api', 'http'], true) as YamlNode | undefined), text: 'must be set when api.http is (the HTTP API always requires a bearer token; e.g. `openssl rand -hex 32`)' })
    }
  }
  if (problems.length > 0) {
    problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0))
    const lines = problems.map((p) => `config: ${p.key === '' ? '(top level)' : p.key} ${p.text}${p.line !== undefined ? ` (line ${p.line})` : ''}`)
    throw new OutpostError('config_invalid', lines.length === 1 ? lines[0]! : `${fileName} has ${lines.length} problems:\n  ${lines.join('\n  ')}`)
  }
  return value as Config
}

function check(spec: Spec, node: YamlNode | null, keyPath: string[], problems: Problem[], lineOf: (n: YamlNode | null | undefined) => number | undefined, ctx: DefaultsContext): unknown {
  const key = keyPath.join('.')
  const bad = (text: string, at: YamlNode | null = node): undefined => { problems.push({ key, line: lineOf(at), text }); return undefined }
  const scalarValue = isScalar(node) ? node.value : node === null ? null : Symbol('collection')
  const got = (): string => (isMap(node) ? 'a mapping' : isSeq(node) ? 'a list' : scalarValue === null ? 'nothing (remove the key to use the default)' : JSON.stringify(scalarValue))

  if (node === null || (isScalar(node) && node.value === null)) {
    // An empty section (every key below commented out) means "all defaults".
    if (spec.t === 'object' || spec.t === 'map' || spec.t === 'list') node = null
    else if (spec.t === 'string?') return null
    else return bad(`must be ${expected(spec)}, got ${got()}`)
  }
  switch (spec.t) {
    case 'object': {
      if (node !== null && !isMap(node)) return bad(`must be a mapping of keys, got ${got()}`)
      const out: Record<string, unknown> = {}
      const seen = new Map<string, YamlNode | null>()
      for (const pair of node !== null && isMap(node) ? node.items : []) {
        const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key)
        if (!Object.hasOwn(spec.fields, k)) {
          problems.push({ key: [...keyPath, k].join('.'), line: lineOf(pair.key as YamlNode), text: `is not a known key${suggest(k, spec.fields)}` })
          continue
        }
        seen.set(k, (pair.value as YamlNode | null) ?? null)
      }
      for (const [k, sub] of Object.entries(spec.fields)) {
        out[k] = seen.has(k) ? check(sub, seen.get(k) ?? null, [...keyPath, k], problems, lineOf, ctx) : defaultOf(sub, ctx)
      }
      return out
    }
    case 'list': {
      if (node === null) return structuredClone(spec.def)
      if (!isSeq(node)) return bad(`must be a list, got ${got()}`)
      return node.items.map((item, i) => {
        const itemPath = [...keyPath, String(i)]
        if (!isMap(item)) { problems.push({ key: itemPath.join('.'), line: lineOf(item as YamlNode), text: 'must be a mapping' }); return undefined }
        const out: Record<string, unknown> = {}
        for (const pair of item.items) {
          const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key)
          const sub = Object.hasOwn(spec.item.fields, k) ? spec.item.fields[k] : undefined
          if (sub === undefined) { problems.push({ key: [...itemPath, k].join('.'), line: lineOf(pair.key as YamlNode), text: `is not a known key${suggest(k, spec.item.fields)}` }); continue }
          out[k] = check(sub, (pair.value as YamlNode | null) ?? null, [...itemPath, k], problems, lineOf, ctx)
        }
        for (const r of spec.item.required) if (!(r in out)) problems.push({ key: itemPath.join('.'), line: lineOf(item), text: `needs the key '${r}'` })
        return out
      })
    }
    case 'map': {
      if (node === null) return { ...spec.def }
      if (!isMap(node)) return bad(`must be a mapping of names to strings, got ${got()}`)
      const out: Record<string, string> = {}
      for (const pair of node.items) {
        const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key)
        const v = pair.value as YamlNode | null
        if (!isScalar(v) || typeof v.value !== 'string') {
          const quote = isScalar(v) && (typeof v.value === 'number' || typeof v.value === 'boolean') ? ` (quote it: "${String(v.value)}")` : ''
          problems.push({ key: `${key}.${k}`, line: lineOf(v ?? (pair.key as YamlNode)), text: `must be a string${quote}` })
          continue
        }
        const problem = spec.entry?.(k, v.value)
        if (problem !== undefined) problems.push({ key: `${key}.${k}`, line: lineOf(v), text: problem })
        // A name like any other: `__proto__: x` is kept, not taken as the map's prototype.
        else putOwn(out, k, v.value)
      }
      return runCheck(spec, out, bad)
    }
    case 'strings': {
      if (spec.boolOk === true && typeof scalarValue === 'boolean') return scalarValue ? ['*'] : []
      if (!isSeq(node)) return bad(`must be a list of strings, got ${got()}`)
      const out: string[] = []
      for (const item of node.items) {
        if (spec.numbersOk === true && isScalar(item) && typeof item.value === 'number' && Number.isSafeInteger(item.value)) { out.push(String(item.value)); continue }
        if (!isScalar(item) || typeof item.value !== 'string') { problems.push({ key, line: lineOf(item as YamlNode), text: 'must be a list of strings (quote numbers)' }); continue }
        out.push(item.value)
      }
      return runCheck(spec, out, bad)
    }
    case 'string':
    case 'string?':
      if (spec.t === 'string?' && spec.numberOk === true && typeof scalarValue === 'number' && Number.isSafeInteger(scalarValue)) return runCheck(spec, String(scalarValue), bad)
      if (typeof scalarValue !== 'string') return bad(`must be a string, got ${got()}${typeof scalarValue === 'number' || typeof scalarValue === 'boolean' ? ' (quote it)' : ''}`)
      return runCheck(spec, scalarValue, bad)
    case 'enum':
      if (typeof scalarValue !== 'string' || !spec.values.includes(scalarValue)) return bad(`must be one of ${spec.values.join(', ')}, got ${got()}`)
      return scalarValue
    case 'int':
      if (typeof scalarValue !== 'number' || !Number.isSafeInteger(scalarValue)) return bad(`must be a whole number, got ${got()}`)
      if (scalarValue < spec.min) return bad(`must be at least ${spec.min}, got ${scalarValue}`)
      if (spec.max !== undefined && scalarValue > spec.max) return bad(`must be at most ${spec.max}, got ${scalarValue}`)
      return scalarValue
    case 'bool':
      if (typeof scalarValue !== 'boolean') return bad(`must be true or false, got ${got()}`)
      return scalarValue
  }
}

function runCheck<T>(spec: Spec, value: T, bad: (text: string) => undefined): T | undefined {
  const problem = spec.check?.(value as never)
  return problem === undefined ? value : bad(problem)
}

function expected(spec: Spec): string {
  switch (spec.t) {
    case 'int': return 'a whole number'
    case 'bool': return 'true or false'
    case 'enum': return `one of ${spec.values.join(', ')}`
    case 'strings': return 'a list of strings'
    default: return 'a string'
  }
}

function defaultOf(spec: Spec, ctx: DefaultsContext): unknown {
  switch (spec.t) {
    case 'object': return Object.fromEntries(Object.entries(spec.fields).map(([k, s]) => [k, defaultOf(s, ctx)]))
    case 'string': return spec.dyn ? spec.dyn(ctx) : spec.def
    case 'list': case 'strings': return structuredClone(spec.def)
    case 'map': return { ...spec.def }
    default: return spec.def
  }
}

/** Split `delivery.retries` into a path, refusing keys the schema does not have. */
export function keyPath(key: string): string[] {
  const parts = key.split('.')
  if (key === '' || parts.some((p) => p === '') || specAt(parts) === undefined) {
    throw new OutpostError('config_key', `config: '${key}' is not a config key${nearKey(parts)} (see \`outpost config show\` for all keys)`)
  }
  return parts
}

/** The effective value at a key (defaults included); null for a name a map (hub.tokens) does not have. */
export function getKey(config: Config, key: string): unknown {
  let v: unknown = config
  for (const p of keyPath(key)) v = v === null || typeof v !== 'object' ? undefined : own(v as Record<string, unknown>, p)
  return v ?? null
}

export type ConfigEdit = { key: string; value: unknown } | { key: string; unset: true }

/**
 * Apply edits to a config file, keeping its comments and layout, and write it atomically.
 * The edited file is validated as a whole first: an edit that would break it changes nothing.
 * Returns the new effective config.
 */
export function editConfig(file: string, edits: readonly ConfigEdit[], ctx: DefaultsContext = defaultsContext()): Config {
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''
  const doc: Document = YAML.parseDocument(text)
  if (doc.errors.length > 0) parseConfig(text, file, ctx) // throws config_parse with the line
  for (const edit of edits) {
    const p = keyPath(edit.key)
    if ('unset' in edit) {
      removeKey(doc, p)
    } else {
      if (doc.contents === null || !isMap(doc.contents)) doc.contents = doc.createNode({}) as typeof doc.contents
      ensureMaps(doc, p.slice(0, -1))
      // A list or map written on one line (`servers: [a]`) stays on one line with its new value,
      // and the comment after the old value stays after the new one.
      const was = doc.getIn(p, true) as YamlNode | undefined
      const node = doc.createNode(edit.value)
      if (isCollection(was) && was.flow === true && isCollection(node)) node.flow = true
      if (typeof was?.comment === 'string' && was.comment !== '') node.comment = was.comment
      doc.setIn(p, node)
    }
  }
  // Unsetting the last key leaves no `{}` behind, only the file's comments.
  const top = doc.contents
  const empty = isMap(top) && top.items.length === 0
  const out = empty
    ? [doc.commentBefore, top.commentBefore, top.comment, doc.comment].flatMap((c) => (c ?? '').split('\n')).filter((l) => l !== '').map((l) => `#${l}\n`).join('')
    : render(doc, text).replace(/^\n+/, '') // a first key removed leaves no blank line on top
  const config = parseConfig(out, file, ctx)
  writeAtomic(file, out)
  return config
}

/** Intermediate sections that are null (all keys commented out) become mappings before setIn. */
function ensureMaps(doc: Document, parents: string[]): void {
  for (let i = 1; i <= parents.length; i++) {
    const sub = parents.slice(0, i)
    const v = doc.getIn(sub, true)
    if (v === undefined || v === null || (isScalar(v) && v.value === null)) {
      // Keys commented out under an empty section are the comment of its null value: keep them.
      const map = doc.createNode({})
      if (isScalar(v) && v.comment) map.commentBefore = v.comment
      doc.setIn(sub, map)
    }
  }
}

/** Parse a value typed on the command line as YAML: `7` is a number, `[a, b]` a list, `on` a string. */
export function parseCliValue(raw: string): unknown {
  try {
    return YAML.parse(raw)
  } catch {
    return raw
  }
}

export function writeAtomic(file: string, text: string): void {
  let mode = 0o644
  try { mode = fs.statSync(file).mode & 0o777 } catch { /* new file */ }
  writeFileAtomic(file, text, mode)
}

/** A key a generated file sets to something other than its default, and why (`outpost up`). */
export interface InitChange { key: string; value: unknown; why: string }

/**
 * The text `outpost config init` writes: every key with its default and a comment saying what
 * it is. Keys in `changes` that differ from their default say so on their line, and the header
 * lists them: the file tells which values were chosen for it.
 */
export function initText(ctx: DefaultsContext = defaultsContext(), changes: readonly InitChange[] = []): string {
  const defaults = defaultConfig(ctx)
  const doc = new YAML.Document(defaults)
  annotate(doc.contents, SCHEMA.fields)
  const marked: string[] = []
  for (const c of changes) {
    const p = keyPath(c.key)
    const def = getKey(defaults, c.key)
    if (JSON.stringify(def) === JSON.stringify(c.value)) continue
    const node = doc.createNode(c.value)
    if (isSeq(node) && specAt(p)?.t === 'strings') node.flow = true
    doc.setIn(p, node)
    marked.push(c.key)
    const note = ` not the default (${def === null || typeof def !== 'object' ? String(def) : JSON.stringify(def)}): ${c.why}`
    const parent = doc.getIn(p.slice(0, -1), true) ?? doc.contents
    const pair = isMap(parent) ? parent.items.find((x) => isScalar(x.key) && x.key.value === p[p.length - 1]) : undefined
    if (isScalar(node) || (isSeq(node) && node.flow)) node.comment = note
    else if (pair !== undefined && isScalar(pair.key)) pair.key.commentBefore = `${pair.key.commentBefore ?? ''}\n${note}`
  }
  doc.commentBefore = [
    marked.length === 0
      ? ' outpost configuration. Every key is optional: the values below are the defaults.'
      : ` outpost configuration. Every key is optional. The values below are the defaults, except\n those marked "not the default": ${marked.join(', ')}.`,
    ' Change one with `outpost config set KEY VALUE` (comments are kept) or edit this file.',
  ].join('\n')
  return doc.toString({ lineWidth: 0 })
}

function annotate(node: unknown, fields: Fields): void {
  if (!isMap(node)) return
  for (const pair of node.items) {
    const k = isScalar(pair.key) ? String(pair.key.value) : ''
    const spec = own(fields, k)
    if (spec === undefined || !isScalar(pair.key)) continue
    pair.key.commentBefore = ` ${spec.doc}`
    const v = pair.value
    if (spec.t === 'object') annotate(v, spec.fields)
    if (isSeq(v) && (spec.t === 'strings' || v.items.length === 0)) v.flow = true
    if (isMap(v) && v.items.length === 0) v.flow = true
    if (isSeq(v) && spec.t === 'list') for (const item of v.items) if (isMap(item)) for (const p of item.items) if (isSeq(p.value)) p.value.flow = true
  }
}
