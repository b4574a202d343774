/**
 * A steward message file as steward users write it: `"replyMethod": "REQNone"` ("used when
 * there should be no reply"). The command runs and `outpost send --file` exits 0 with its
 * output; the reply is kept nowhere (found in an operator's trial, 2026-12-06: central answered
 * method_unknown for REQNone and send exited 3 though the command had run). Real hub and agents.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, Cluster } from '../fixtures/cluster'

test('send --file - steward\'s replyMethod REQNone: the command runs, send exits 0, no reply file is written', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const file = path.join(c.dir, 'msgs.json')
    fs.writeFileSync(file, JSON.stringify([{ toNodes: ['ship1'], method: 'REQCliCommand', methodArgs: ['bash', '-c', 'echo steward $((40+2))'], ACKTimeout: 5, retries: 3, replyMethod: 'REQNone', methodTimeout: 10 }]))
    const r = spawnSync(process.execPath, [BIN, 'send', '--config', c.node('central').config, '--file', file], { encoding: 'utf8', timeout: 60_000 })
    assert.is(r.status, 0, r.stderr)
    assert.match(r.stdout, /steward 42/)
    assert.not.match(r.stderr, /method_unknown/)
    const replies = path.join(c.node('central').dataDir, 'replies', 'ship1')
    assert.equal(fs.existsSync(replies) ? fs.readdirSync(replies) : [], [])
  } finally {
    await c.destroy()
  }
})

test.run()
