import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ERROR_CODES, OutpostError, isOutpostError } from '../src/errors'

const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8')

test('errors - the README lists every error code', () => {
  const missing = Object.keys(ERROR_CODES).filter((code) => !readme.includes(`| \`${code}\` |`))
  assert.equal(missing, [], `README.md lacks rows for: ${missing.join(', ')}`)
})

test('errors - the README lists no code that does not exist', () => {
  const section = readme.split('## Error codes')[1]?.split('\n## ')[0] ?? ''
  const listed = [...section.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1])
  assert.ok(listed.length > 0, 'the README has an "## Error codes" table')
  const unknown = listed.filter((c) => !(c! in ERROR_CODES))
  assert.equal(unknown, [])
})

test('errors - an OutpostError keeps its code and cause and serialises to {code, message}', () => {
  const cause = new Error('disk on fire')
  const err = new OutpostError('io', 'journal: write failed', { cause })
  assert.ok(isOutpostError(err, 'io'))
  assert.not.ok(isOutpostError(err, 'outbox_full'))
  assert.is(err.cause, cause)
  assert.equal(JSON.parse(JSON.stringify(err)), { code: 'io', message: 'journal: write failed' })
})

test.run()
