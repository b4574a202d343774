/**
 * npm run docs: writes the generated part of docs/configuration.md (between the markers
 * `<!-- generated:start -->` and `<!-- generated:end -->`) from the config schema, so every
 * key, its type, default and doc line are listed as the code has them. Everything outside the
 * markers is hand-written and left as it is. `npm run docs -- --check` only says whether the
 * file is up to date (exit 1 when not); test/docs.test.ts fails the same way.
 */
import fs from 'node:fs'
import path from 'node:path'
import { SCHEMA } from '../src/config/schema'
import type { Fields, Spec } from '../src/config/spec'
import { TRANSPORT_LIST } from '../transports/index'

export const CONFIG_DOC = path.join(__dirname, '..', 'docs', 'configuration.md')
export const START = '<!-- generated:start -->'
export const END = '<!-- generated:end -->'

/** Text for a markdown table cell: pipes and `<` escaped (`<prefix>` is not an HTML tag), no line breaks. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/\s*\n\s*/g, ' ')
}

function code(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value)
  return `\`${text}\``
}

function typeOf(spec: Spec): string {
  switch (spec.t) {
    case 'string': return 'string'
    case 'string?': return spec.numberOk ? 'string or null (a port number is taken as a string)' : 'string or null'
    case 'enum': return `one of ${spec.values.map((v) => code(v)).join(', ')}`
    case 'int': return spec.max === undefined ? `integer ≥ ${spec.min}` : `integer ${spec.min}–${spec.max}`
    case 'bool': return 'boolean'
    case 'strings': return spec.numbersOk ? 'list of strings (numbers taken as written)' : 'list of strings'
    case 'map': return 'map: name → string'
    case 'object': return 'section'
    case 'list': return 'list of entries (below)'
  }
}

function defaultOf(spec: Spec): string {
  if (spec.t === 'object') return ''
  if (spec.t === 'string' && spec.dyn !== undefined) return 'depends on the machine (see meaning)'
  if (spec.def === null) return '`null`'
  if (typeof spec.def === 'string') return spec.def === '' ? '`""`' : code(spec.def)
  return code(spec.def)
}

const PLUGIN_KINDS = new Set<string>(TRANSPORT_LIST.filter((p) => 'section' in p).map((p) => p.kind))

function rows(fields: Fields, prefix: string, out: string[]): void {
  for (const [key, spec] of Object.entries(fields)) {
    const name = `${prefix}${key}`
    const from = prefix === 'transport.' && PLUGIN_KINDS.has(key) ? ` Declared by the \`${key}\` transport plugin (\`transports/${key}.ts\`); read only when \`transport.kind\` is \`${key}\`.` : ''
    out.push(`| \`${name}\` | ${cell(typeOf(spec))} | ${cell(defaultOf(spec))} | ${cell(spec.doc + from)} |`)
    if (spec.t === 'object') rows(spec.fields, `${name}.`, out)
    if (spec.t === 'list') {
      const required = new Set<string>(spec.item.required)
      for (const [k, s] of Object.entries(spec.item.fields)) {
        const def = required.has(k) ? 'required' : defaultOf(s)
        out.push(`| \`${name}[].${k}\` | ${cell(typeOf(s))} | ${cell(def)} | ${cell(s.doc)} |`)
      }
    }
  }
}

/** The generated reference: one table per top-level key of the schema, in the schema's order. */
export function configReference(): string {
  const out: string[] = [
    '<!-- This part is written by `npm run docs` from the config schema (src/config/schema.ts and the',
    '     transport plugins\' sections). Edit the schema, not this text: test/docs.test.ts fails when they differ. -->',
    '',
  ]
  for (const [key, spec] of Object.entries(SCHEMA.fields)) {
    out.push(`### \`${key}\``, '')
    if (spec.t === 'object') out.push(cell(spec.doc), '')
    out.push('| key | type | default | meaning |', '|---|---|---|---|')
    if (spec.t === 'object') rows(spec.fields, `${key}.`, out)
    else rows({ [key]: spec }, '', out)
    out.push('')
  }
  return out.join('\n')
}

/** `text` with its generated region replaced by `generated`. */
export function withGenerated(text: string, generated: string): string {
  const a = text.indexOf(START)
  const b = text.indexOf(END)
  if (a < 0 || b < a) throw new Error(`${CONFIG_DOC}: the markers ${START} … ${END} are missing`)
  return `${text.slice(0, a + START.length)}\n${generated}\n${text.slice(b)}`
}

/** The generated region as the file has it now. */
export function generatedPart(text: string): string {
  const a = text.indexOf(START)
  const b = text.indexOf(END)
  if (a < 0 || b < a) throw new Error(`${CONFIG_DOC}: the markers ${START} … ${END} are missing`)
  return text.slice(a + START.length + 1, b - 1)
}

function main(argv: string[]): number {
  const text = fs.readFileSync(CONFIG_DOC, 'utf8')
  const next = withGenerated(text, configReference())
  const rel = path.relative(process.cwd(), CONFIG_DOC)
  if (argv.includes('--check')) {
    if (next === text) return 0
    process.stderr.write(`${rel} is out of date with the config schema: run npm run docs\n`)
    return 1
  }
  if (next !== text) fs.writeFileSync(CONFIG_DOC, next)
  process.stdout.write(`${rel}: ${next === text ? 'up to date' : 'regenerated'}\n`)
  return 0
}

if (require.main === module) process.exitCode = main(process.argv.slice(2))
