/**
 * `outpost send` on a terminal: output whose last line has no newline gets one at the end, so
 * the shell's prompt does not land on it; piped, the output keeps its bytes exactly.
 */
import { spawn } from 'node:child_process'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, Cluster } from '../fixtures/cluster'
import { Term } from '../sessions/term'

test('send - an unterminated last line ends with a newline on a terminal, not when piped', async () => {
  const c = await Cluster.create(['ship1'])
  let t: Term | undefined
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const args = ['send', '--config', c.node('central').config, '--to', 'ship1', 'cli.run', '--', 'printf', 'no-newline']

    t = new Term(args)
    assert.is(await t.exited, 0)
    assert.match(t.text(), /no-newline\n$/)

    // Ended lines get nothing extra.
    t = new Term(['send', '--config', c.node('central').config, '--to', 'ship1', 'cli.run', '--', 'echo', 'ended'])
    assert.is(await t.exited, 0)
    assert.match(t.text(), /ended\n$/)
    assert.not.match(t.text(), /ended\n\n/)

    const piped = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    piped.stdout.on('data', (d: Buffer) => { out += d.toString() })
    const code = await new Promise((resolve) => piped.on('close', resolve))
    assert.is(code, 0)
    assert.is(out, 'no-newline')
  } finally {
    t?.p.kill()
    await c.destroy()
  }
})

test.run()
