import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { fingerprint, publicKeyText, readKeyFile } from '../../src/keys'
import { tmpDir } from '../fixtures/ports'

// The real entry point, as `npx outpost` runs it (built dist/).
const BIN = path.join(__dirname, '..', '..', 'bin', 'outpost.cjs')

function outpost(args: string[], cwd: string) {
  const env = { ...process.env }
  delete env.OUTPOST_CONFIG
  delete env.CONFIG
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, env, encoding: 'utf8' })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

test('keys - gen writes a 0600 private key and prints its public key; show prints the same', () => {
  const cwd = tmpDir()
  const gen = outpost(['keys', 'gen', '--out', 'ops.key'], cwd)
  assert.is(gen.code, 0, gen.stderr)
  const file = path.join(cwd, 'ops.key')
  assert.is(fs.statSync(file).mode & 0o777, 0o600)
  const pub = publicKeyText(readKeyFile(file).publicKey)
  assert.is(gen.stdout, `${pub}\n${fingerprint(pub)}\n`)
  assert.match(gen.stderr, 'ops.key')
  assert.not.match(gen.stdout + gen.stderr, 'PRIVATE KEY')
  const show = outpost(['keys', 'show', 'ops.key'], cwd)
  assert.is(show.code, 0, show.stderr)
  assert.is(show.stdout, gen.stdout)
  const json = JSON.parse(outpost(['keys', 'show', 'ops.key', '--json'], cwd).stdout) as Record<string, string>
  assert.equal(json, { file, publicKey: pub, fingerprint: fingerprint(pub) })
})

test('keys - gen refuses to overwrite a key file (exit 2, key_exists) unless --force', () => {
  const cwd = tmpDir()
  assert.is(outpost(['keys', 'gen'], cwd).code, 0)
  const file = path.join(cwd, 'operator.key')
  const before = fs.readFileSync(file, 'utf8')
  const again = outpost(['keys', 'gen'], cwd)
  assert.is(again.code, 2)
  assert.match(again.stderr, '[key_exists]')
  assert.match(again.stderr, '--force')
  assert.is(fs.readFileSync(file, 'utf8'), before)
  const forced = outpost(['keys', 'gen', '--force', '--json'], cwd)
  assert.is(forced.code, 0, forced.stderr)
  assert.is.not(fs.readFileSync(file, 'utf8'), before)
  assert.is((JSON.parse(forced.stdout) as { publicKey: string }).publicKey, publicKeyText(readKeyFile(file).publicKey))
})

test('keys - gen --out naming a directory is a usage error that names a file to use, with or without --force', () => {
  const cwd = tmpDir()
  fs.mkdirSync(path.join(cwd, 'keys'))
  for (const args of [['keys', 'gen', '--out', 'keys'], ['keys', 'gen', '--out', 'keys', '--force']]) {
    const r = outpost(args, cwd)
    assert.is(r.code, 2, r.stderr)
    assert.match(r.stderr, 'is a directory')
    assert.match(r.stderr, path.join(cwd, 'keys', 'operator.key'))
    assert.match(r.stderr, '[usage]')
  }
  assert.equal(fs.readdirSync(path.join(cwd, 'keys')), [], 'nothing written')
})

test('keys - show of a missing or foreign file is key_invalid (exit 2); --help and usage errors', () => {
  const cwd = tmpDir()
  const none = outpost(['keys', 'show'], cwd)
  assert.is(none.code, 2)
  assert.match(none.stderr, 'operator.key')
  assert.match(none.stderr, '[key_invalid]')
  fs.writeFileSync(path.join(cwd, 'x.key'), 'not a key')
  const junk = outpost(['keys', 'show', 'x.key', '--json'], cwd)
  assert.is(junk.code, 2)
  assert.is((JSON.parse(junk.stderr) as { error: { code: string } }).error.code, 'key_invalid')
  const help = outpost(['keys', '--help'], cwd)
  assert.is(help.code, 0)
  assert.match(help.stdout, 'Usage: outpost keys')
  assert.is(outpost(['keys'], cwd).code, 2)
  assert.is(outpost(['keys', 'frob'], cwd).code, 2)
  assert.is(outpost(['keys', 'show', 'a', 'b'], cwd).code, 2)
})

test.run()
