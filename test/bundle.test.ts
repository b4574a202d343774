import fs from 'node:fs'
import path from 'node:path'
import { brotliCompressSync } from 'node:zlib'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadEmbeddedModule } from '../src/lib/embedded-module'

const BUNDLE = path.join(__dirname, '..', 'dist', 'outpost.cjs')
const pack = (code: string): string => brotliCompressSync(Buffer.from(code)).toString('base64')

test('embedded module - evaluates packed CommonJS code and names it in stack traces', () => {
  const mod = loadEmbeddedModule('demo', pack(`
    exports.sep = require('node:path').sep
    exports.self = this === exports
    exports.where = () => new Error('here').stack
  `)) as { sep: string; self: boolean; where: () => string }
  assert.is(mod.sep, '/')
  assert.ok(mod.self)
  assert.match(mod.where(), 'outpost-embedded/demo.cjs:4')
})

test('embedded module - module.exports replaces the exports object', () => {
  assert.is(loadEmbeddedModule('fn', pack('module.exports = function answer() { return 42 }')) instanceof Function, true)
})

test('bundle - is ASCII only, so V8 keeps its source at one byte a character', () => {
  const bytes = fs.readFileSync(BUNDLE)
  assert.ok(bytes.every((b) => b < 0x80), 'dist/outpost.cjs has non-ASCII bytes')
})

test('bundle - carries mqtt, nats, prom-client and cron-parser packed, not as code parsed at start', () => {
  const code = fs.readFileSync(BUNDLE, 'utf8')
  for (const name of ['mqtt', 'nats', 'prom-client', 'cron-parser']) assert.ok(code.includes(`.loadEmbeddedModule(${JSON.stringify(name)}, "`), name)
  assert.not.ok(code.includes('node_modules/mqtt/'), 'mqtt sources are in the bundle')
  assert.not.ok(code.includes('node_modules/nats/'), 'nats sources are in the bundle')
})

test.run()
