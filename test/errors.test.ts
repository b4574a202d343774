import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ERROR_CODES, OutpostError, isOutpostError } from '../src/errors'

/** Where operators look a code up. */
const doc = fs.readFileSync(path.join(__dirname, '..', 'docs', 'errors.md'), 'utf8')
const listed = [...doc.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]!)

test('errors - docs/errors.md lists every error code', () => {
  const missing = Object.keys(ERROR_CODES).filter((code) => !listed.includes(code))
  assert.equal(missing, [], `docs/errors.md lacks rows for: ${missing.join(', ')}`)
})

test('errors - docs/errors.md lists no code that does not exist, and each once', () => {
  assert.ok(listed.length > 0, 'docs/errors.md has a table of codes')
  const unknown = listed.filter((c) => !(c in ERROR_CODES))
  assert.equal(unknown, [])
  assert.equal(listed.filter((c, i) => listed.indexOf(c) !== i), [], 'a code listed twice')
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
