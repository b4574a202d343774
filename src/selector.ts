/**
 * Selectors: naming nodes by what they are instead of one by one. Central resolves a selector
 * in a request's toNodes against its node list (submit.ts) into the names it matches.
 *
 *   role=db,arch=arm64      every term must hold (a comma means and)
 *   site in (oslo,bergen)   site is one of these;  site notin (oslo)  is none of them (or unset)
 *   role!=test              role is not test (a node without role matches too)
 *   decommissioned          the label is set;  !decommissioned  it is not
 *   ship*  web-?  *         the node's name matches the glob (* any run, ? one character)
 *
 * Label terms look at the node's labels, terms on a fact name (os, arch, …) at its facts. A node
 * whose labels (or facts) central does not know never matches a term on them, not even a `!`
 * one: unknown is not "absent". Name globs need only the name.
 */
import { FACT_NAMES, LABEL_KEY, LABEL_VALUE } from './labels'
import { OutpostError } from './errors'
import { own } from './lib/own'

export type Term =
  | { type: 'name'; glob: string }
  | { type: 'has'; key: string }
  | { type: 'lacks'; key: string }
  | { type: 'in'; key: string; values: string[] }
  | { type: 'notin'; key: string; values: string[] }

export interface Selector {
  text: string
  terms: Term[]
}

/** What a selector is matched against: a node of central's list. */
export interface Selectable {
  name: string
  labels?: Record<string, string>
  facts?: Record<string, string>
}

const GLOB = /^[A-Za-z0-9_*?-]{1,127}$/
const FACTS: ReadonlySet<string> = new Set(FACT_NAMES)
const MAX_LENGTH = 4096

/** Whether a receiver is meant as a selector rather than a node name: it has = ! * ? , or (. */
export function isSelector(target: string): boolean {
  return /[=!*?,(]/.test(target)
}

/** Parse a selector; throws selector_invalid naming the term that is wrong. */
export function parseSelector(text: string): Selector {
  if (text.length > MAX_LENGTH) bad(`${text.slice(0, 40)}…`, `is ${text.length} characters long; a selector has at most ${MAX_LENGTH}`)
  const parts = splitTerms(text)
  if (parts.length === 0) bad(text, 'is empty')
  return { text, terms: parts.map((p) => parseTerm(text, p)) }
}

/** Whether `node` matches every term of `sel`. */
export function matches(sel: Selector, node: Selectable): boolean {
  return sel.terms.every((t) => {
    if (t.type === 'name') return globMatch(t.glob, node.name)
    const table = FACTS.has(t.key) ? node.facts : node.labels
    if (table === undefined) return false
    const v = own(table, t.key)
    switch (t.type) {
      case 'has': return v !== undefined
      case 'lacks': return v === undefined
      case 'in': return v !== undefined && t.values.includes(v)
      case 'notin': return v === undefined || !t.values.includes(v)
    }
  })
}

/**
 * Whether `name` matches the glob (* any run, ? one character). Walked by hand, not a RegExp:
 * a pattern from a request such as *a*a*a*b would make a regular expression backtrack for long.
 */
export function globMatch(glob: string, name: string): boolean {
  let g = 0
  let n = 0
  let star = -1
  let mark = 0
  while (n < name.length) {
    if (g < glob.length && (glob[g] === '?' || glob[g] === name[n])) { g++; n++ }
    else if (g < glob.length && glob[g] === '*') { star = g++; mark = n }
    else if (star >= 0) { g = star + 1; n = ++mark }
    else return false
  }
  while (glob[g] === '*') g++
  return g === glob.length
}

/** Split at commas outside parentheses; empty terms are errors. */
function splitTerms(text: string): string[] {
  const out: string[] = []
  let depth = 0
  let start = 0
  for (let i = 0; i <= text.length; i++) {
    const c = text[i]
    if (c === '(') depth++
    else if (c === ')') depth--
    if (depth < 0) bad(text, 'has a ) without its (')
    if (i === text.length || (c === ',' && depth === 0)) {
      const part = text.slice(start, i).trim()
      if (part === '' && text.trim() !== '') bad(text, 'has an empty term (two commas, or one at an end)')
      if (part !== '') out.push(part)
      start = i + 1
    }
  }
  if (depth > 0) bad(text, 'has a ( without its )')
  return out
}

function parseTerm(text: string, term: string): Term {
  const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(term)
  if (set) {
    const key = checkKey(text, set[1]!)
    const values = set[3]!.split(',').map((v) => checkValue(text, v.trim()))
    return { type: set[2] === 'in' ? 'in' : 'notin', key, values }
  }
  const op = /^([^=!\s]+)\s*(!=|==|=)\s*(.*)$/.exec(term)
  if (op) {
    const key = checkKey(text, op[1]!)
    const value = checkValue(text, op[3]!)
    return op[2] === '!=' ? { type: 'notin', key, values: [value] } : { type: 'in', key, values: [value] }
  }
  if (term.startsWith('!')) return { type: 'lacks', key: checkKey(text, term.slice(1).trim()) }
  if (/[*?]/.test(term)) {
    if (!GLOB.test(term)) bad(text, `has the name pattern ${JSON.stringify(term)}: a node name with * (any run) and ? (one character), at most 127 characters`)
    return { type: 'name', glob: term }
  }
  return { type: 'has', key: checkKey(text, term) }
}

function checkKey(text: string, key: string): string {
  if (!LABEL_KEY.test(key)) bad(text, `has ${JSON.stringify(key)} where a label name goes (a letter first, then letters, digits, _ . and -)`)
  return key
}

function checkValue(text: string, value: string): string {
  if (!LABEL_VALUE.test(value)) bad(text, `has ${value === '' ? 'an empty value' : JSON.stringify(value)} where a label value goes (a letter or digit first, then letters, digits, _ . + and -)`)
  return value
}

function bad(text: string, what: string): never {
  throw new OutpostError('selector_invalid', `selector ${JSON.stringify(text)} ${what}. A selector is terms joined by commas: role=db, role!=test, site in (oslo,bergen), site notin (oslo), decommissioned, !decommissioned, a name pattern such as ship*`)
}
