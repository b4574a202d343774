/**
 * The command `outpost up` prints for "another terminal" works as printed: outside the checkout
 * it is `outpost …` (npx finds the checkout's CLI only inside it, and elsewhere would ask the npm
 * registry for a package named outpost), and with `up --config FILE` it names that file (the
 * lookup from the folder would find ./outpost.yaml or nothing, not the node `up` runs).
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, Proc, freePort, tmpDir } from '../fixtures/cluster'
import { cliHint } from '../../src/cli/hint'

const ROOT = path.join(__dirname, '..', '..')

test('up - outside the checkout, with --config, the printed command is `outpost send --config FILE …` and runs as printed', async () => {
  const dir = tmpDir('outpost-up-hint-')
  const port = await freePort()
  const up = new Proc(['up', '--port', String(port), '--config', 'quick.yaml'], { cwd: dir, env: { OUTPOST_CONFIG: '', CONFIG: '' } })
  try {
    await up.waitFor(/Ctrl-C stops/, 20_000)
    const hint = /In another terminal, from .*:\n {2}(.*)\n/.exec(up.output)?.[1]
    assert.is(hint, 'outpost send --config quick.yaml --to local cli.run -- uname -a', up.output)
    // Typed as printed, with `outpost` being this checkout's CLI.
    const r = spawnSync('bash', ['-c', `outpost() { "${process.execPath}" "${BIN}" "$@"; }\n${hint}`], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, OUTPOST_CONFIG: '', CONFIG: '' } })
    assert.is(r.status, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /Linux/)
  } finally {
    await up.stop('SIGINT')
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('up - the hint says npx outpost inside the checkout the CLI comes from, outpost elsewhere and from a single binary', () => {
  const inside = path.join(ROOT, 'docs')
  const file = path.join(inside, 'outpost.yaml')
  const env = { OUTPOST_CONFIG: file }
  assert.is(cliHint({ cwd: inside, env, file, script: BIN, packaged: false }, 'send --to local node.ping'), 'npx outpost send --to local node.ping')
  assert.is(cliHint({ cwd: inside, env, file, script: BIN, packaged: true }, 'send --to local node.ping'), 'outpost send --to local node.ping')
  const outside = tmpDir('outpost-up-hint-')
  try {
    const there = path.join(outside, 'outpost.yaml')
    assert.is(cliHint({ cwd: outside, env: { OUTPOST_CONFIG: there }, file: there, script: BIN, packaged: false }, 'send --to local node.ping'), 'outpost send --to local node.ping')
    // A config the lookup would not find is named, quoted when it needs it.
    const odd = path.join(outside, 'my quick.yaml')
    assert.is(cliHint({ cwd: outside, env: { OUTPOST_CONFIG: there }, file: odd, script: BIN, packaged: false }, 'send --to local node.ping'), `outpost send --config 'my quick.yaml' --to local node.ping`)
  } finally {
    fs.rmSync(outside, { recursive: true, force: true })
  }
})

test.run()
