/**
 * `outpost up` run twice in one folder: the second says at once that the first holds the folder
 * (`locked`, exit 1), as docs/cli.md promises, rather than that the port is taken and to try
 * `--port N` (which only met the same lock after starting a second hub).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Proc, freePort, tmpDir } from '../fixtures/cluster'
import { runCli } from '../fixtures/run-cli'

test('up - a second outpost up in the same folder is refused as locked, naming the first, with or without --port', async () => {
  const dir = tmpDir()
  const first = new Proc(['up', '--port', String(await freePort())], { cwd: dir })
  try {
    await first.waitFor(/Ctrl-C stops/, 30_000)
    const again = await runCli(['up'], dir)
    assert.is(again.code, 1, again.stderr)
    assert.match(again.stderr, `[locked]`)
    assert.match(again.stderr, `process ${first.child.pid}`)
    assert.not.match(again.stderr, 'EADDRINUSE')
    const moved = await runCli(['up', '--port', String(await freePort())], dir)
    assert.is(moved.code, 1, moved.stderr)
    assert.match(moved.stderr, `process ${first.child.pid}`)
    assert.not.match(moved.stderr, 'hub listening')
  } finally {
    await first.stop('SIGINT')
  }
})

test.run()
