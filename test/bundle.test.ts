import fs from 'node:fs'
import path from 'node:path'
import { brotliDecompressSync } from 'node:zlib'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { evaluateModule } from '../src/lib/embedded-module'
import { readIndex } from '../src/lib/pack'

const BUNDLE = path.join(__dirname, '..', 'dist', 'outpost.cjs')
const PACK = path.join(__dirname, '..', 'dist', 'outpost.pack')

test('embedded module - evaluates packed CommonJS code and names it in stack traces', () => {
  const mod = evaluateModule('demo', `
    exports.sep = require('node:path').sep
    exports.self = this === exports
    exports.where = () => new Error('here').stack
  `) as { sep: string; self: boolean; where: () => string }
  assert.is(mod.sep, '/')
  assert.ok(mod.self)
  assert.match(mod.where(), 'outpost-embedded/demo.cjs:4')
})

test('embedded module - module.exports replaces the exports object', () => {
  assert.is(evaluateModule('fn', 'module.exports = function answer() { return 42 }') instanceof Function, true)
})

test('bundle - is ASCII only, so V8 keeps its source at one byte a character', () => {
  const bytes = fs.readFileSync(BUNDLE)
  assert.ok(bytes.every((b) => b < 0x80), 'dist/outpost.cjs has non-ASCII bytes')
})

test('bundle - carries mqtt, nats, prom-client, cron-parser and the console in its pack, not in the source V8 keeps', () => {
  const code = fs.readFileSync(BUNDLE, 'utf8')
  const pack = readIndex(fs.openSync(PACK, 'r'), PACK)
  try {
    for (const name of ['mqtt', 'nats', 'prom-client', 'cron-parser']) {
      assert.ok(code.includes(`.loadEmbeddedModule(${JSON.stringify(name)})`), name)
      const at = pack.index[name]
      assert.ok(at, `${name} is not in dist/outpost.pack`)
      const packed = Buffer.alloc(at[1])
      fs.readSync(pack.fd, packed, 0, at[1], pack.start + at[0])
      assert.ok(brotliDecompressSync(packed).length > at[1], `${name}: not brotli in the pack`)
    }
    assert.ok(pack.index.console, 'the console is not in dist/outpost.pack')
  } finally {
    fs.closeSync(pack.fd)
  }
  assert.not.ok(code.includes('node_modules/mqtt/'), 'mqtt sources are in the bundle')
  assert.not.ok(code.includes('node_modules/nats/'), 'nats sources are in the bundle')
  // Neither as code nor as packed strings: the console's app.js nor a base64 payload of 1 KB+.
  assert.not.ok(code.includes('/console/app.js'), 'the console is in the bundle\'s source')
  assert.not.ok(/[A-Za-z0-9+/]{1024}/.test(code), 'the bundle\'s source carries a base64 payload')
})

test.run()
