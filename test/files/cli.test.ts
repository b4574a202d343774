/** outpost cp's own checks, before any agent is asked, and its --rate units. */
import { spawnSync } from 'node:child_process'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { bar, parseRate } from '../../src/cli/cp'
import { BIN } from '../fixtures/cluster'
import { throwsCode } from '../helpers'

const run = (...args: string[]) => spawnSync(process.execPath, [BIN, 'cp', '--data-dir', '/nonexistent-outpost', ...args], { encoding: 'utf8' })

test('files cli - --rate takes bytes per second with k, m and g', () => {
  assert.is(parseRate('500'), 500)
  assert.is(parseRate('200k'), 200 * 1024)
  assert.is(parseRate('2m'), 2 * 1024 * 1024)
  assert.is(parseRate('1.5M'), 1.5 * 1024 * 1024)
  throwsCode(() => parseRate('fast'), 'usage')
  throwsCode(() => parseRate('-5k'), 'usage')
})

test('files cli - cp needs two paths, one of them NODE:/path, an absolute remote path and an octal mode (exit 2)', () => {
  for (const args of [['only-one'], ['a', 'b'], ['./a', 'ship1:relative/b'], ['--mode', '999', './a', 'ship1:/b'], ['--rate', 'lots', './a', 'ship1:/b']]) {
    const r = run(...args)
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, /\[usage\]/)
  }
})

test('files cli - cp --help says how each side is written', () => {
  const r = run('--help')
  assert.is(r.status, 0)
  assert.match(r.stdout, /NODE:\/absolute\/path/)
  assert.match(r.stdout, /--rate RATE/)
})

test('files cli - the progress bar shows bytes, the rate and the time left', () => {
  const MIB = 1024 * 1024
  const line = bar({ id: 'x', direction: 'out', peer: 'ship1', path: '/a', state: 'sending', size: 40 * MIB, bytes: 10 * MIB, resent: 0, startedAt: 0, updatedAt: 0 }, 5000)
  assert.match(line, '[######..................]')
  assert.match(line, '10.0 MiB / 40.0 MiB')
  assert.match(line, '2.0 MiB/s')
  assert.match(line, 'ETA 15 s')
})

test.run()
