/**
 * The documentation against the code: the configuration reference is the one the schema
 * generates (npm run docs), every method and config key is documented, and every relative link
 * and #anchor in README.md and docs/ points at a file and heading that exist.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { CONFIG_DOC, configReference, generatedPart } from '../scripts/docs'
import { SCHEMA } from '../src/config/schema'
import type { Fields } from '../src/config/spec'
import { METHODS } from '../methods/index'

const ROOT = path.join(__dirname, '..')
const read = (file: string): string => fs.readFileSync(path.join(ROOT, file), 'utf8')

/** The markdown files whose links are checked: the front door, the library, the folder notes. */
const DOCS = [
  'README.md',
  ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`),
  ...['transports/README.md', 'methods/README.md'].filter((f) => fs.existsSync(path.join(ROOT, f))),
]

/** The lines of a markdown text outside fenced code blocks. */
function prose(text: string): string[] {
  let fenced = false
  return text.split('\n').filter((line) => {
    if (/^\s*```/.test(line)) { fenced = !fenced; return false }
    return !fenced
  })
}

/** A heading's anchor as GitHub makes it: the rendered text, lower-cased, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  const text = heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // links: their text
    .replace(/<[^>]+>/g, '') // inline HTML
    .replace(/`/g, '')
  return text.trim().toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-')
}

/** The anchors of a markdown file: one per heading, repeats numbered -1, -2, … as GitHub does. */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  for (const line of prose(text)) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)
    if (!m) continue
    const base = slug(m[1]!)
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n === 0 ? base : `${base}-${n}`)
  }
  return out
}

/** Inline links `[text](target)` outside code blocks and code spans. */
function links(text: string): string[] {
  const out: string[] = []
  for (const line of prose(text)) {
    const bare = line.replace(/`[^`]*`/g, '')
    for (const m of bare.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) out.push(m[1]!)
  }
  return out
}

test('docs - the configuration reference is what the schema generates (npm run docs)', () => {
  const text = fs.readFileSync(CONFIG_DOC, 'utf8')
  assert.fixture(generatedPart(text), configReference(), 'docs/configuration.md is out of date with the config schema: run npm run docs')
})

test('docs - every config key has a row in the configuration reference', () => {
  const part = generatedPart(read('docs/configuration.md'))
  const missing: string[] = []
  const walk = (fields: Fields, prefix: string): void => {
    for (const [key, spec] of Object.entries(fields)) {
      const name = `${prefix}${key}`
      // A top-level section is a heading with its table; everything else a row.
      const shown = prefix === '' && spec.t === 'object' ? `### \`${name}\`` : `| \`${name}\` |`
      if (!part.includes(shown)) missing.push(name)
      if (spec.t === 'object') walk(spec.fields, `${name}.`)
      if (spec.t === 'list') walk(spec.item.fields, `${name}[].`)
    }
  }
  walk(SCHEMA.fields, '')
  assert.equal(missing, [])
  // The transport plugins' sections are part of it.
  for (const key of ['transport.mqtt.window', 'transport.nats.creds', 'transport.memory.drop']) assert.ok(part.includes(`\`${key}\``), key)
})

test('docs - every method and its aliases are documented', () => {
  const text = read('docs/messages-and-methods.md')
  const rows = text.split('\n').filter((l) => l.startsWith('| `'))
  const missing: string[] = []
  // The node's own heartbeat method (node.ts) besides every module of methods/.
  const all: [string, readonly string[]][] = [['node.hello', ['REQHello']], ...[...METHODS.values()].map((m): [string, readonly string[]] => [m.name, m.aliases ?? []])]
  for (const [name, aliases] of all) {
    const row = rows.find((r) => (r.split('|')[1] ?? '').includes(`\`${name}\``))
    if (row === undefined) { missing.push(name); continue }
    for (const alias of aliases) if (!row.includes(`\`${alias}\``)) missing.push(`${name} (alias ${alias})`)
  }
  assert.equal(missing, [])
})

test('docs - anchors are made as GitHub makes them', () => {
  assert.is(slug('`outpost config`'), 'outpost-config')
  assert.is(slug('The hub and the TCP wire'), 'the-hub-and-the-tcp-wire')
  assert.is(slug('Status of this version (0.1.0)'), 'status-of-this-version-010')
  assert.is(slug('Replies and their reply method'), 'replies-and-their-reply-method')
  assert.equal([...anchors('# A\n## B\n```\n# not a heading\n```\n## B\n')], ['a', 'b', 'b-1'])
})

test('docs - every relative link and #anchor points at a file and heading that exist', () => {
  const broken: string[] = []
  for (const file of DOCS) {
    for (const target of links(read(file))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue // https:, mailto:, …
      const [p = '', anchor] = target.split('#', 2)
      const dest = p === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), p))
      if (dest.startsWith('..') || !fs.existsSync(path.join(ROOT, dest))) { broken.push(`${file}: ${target} (no file ${dest})`); continue }
      if (anchor === undefined) continue
      if (!dest.endsWith('.md')) { broken.push(`${file}: ${target} (an anchor into a file that is not markdown)`); continue }
      if (!anchors(read(dest)).has(anchor)) broken.push(`${file}: ${target} (no heading #${anchor} in ${dest})`)
    }
  }
  assert.equal(broken, [])
})

test('docs - the README and docs point at nothing outside the repository', () => {
  const found: string[] = []
  for (const file of DOCS) {
    for (const [i, line] of read(file).split('\n').entries()) {
      if (/SPEC|§|\/work\/|shared folder|\bissues? \d/.test(line)) found.push(`${file}:${i + 1}: ${line.trim()}`)
    }
  }
  assert.equal(found, [])
})

test('docs - the README stays a front door', () => {
  const lines = read('README.md').split('\n').length
  assert.ok(lines <= 300, `README.md has ${lines} lines; move detail into docs/`)
})

test.run()
