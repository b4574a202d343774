/**
 * File transfer between this version and the one before it (built from the repository's
 * history): that version wants the whole file's sha256 in file.put, where this one sends it with
 * file.commit, so a push to it hashes the file first and opens the transfer again; a pull from it
 * (its file.put carries the sha256) works as it is.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster } from '../fixtures/cluster'
import { oldBuild } from '../fixtures/old-build'
import { cp, lastTransfer, randomFile, sha256Of } from './helpers'

/** The last commit whose file.put needs the sha256. */
const SHA_IN_PUT = 'bfec2d5561295a030416ed53eb43ba7a467fa885'

test('files - push to and pull from a node of the version before: same sha256 both ways', async () => {
  const old = oldBuild(SHA_IN_PUT)
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1', true, {}, old)
    const src = path.join(c.dir, 'app.bin')
    const sum = randomFile(src, 3_000_000)
    const dest = path.join(c.node('ship1').dataDir, 'files', 'app.bin')

    const push = await cp(c, 'central', [src, `ship1:${dest}`])
    assert.is(push.code, 0, push.stderr)
    assert.is(lastTransfer(push).state, 'done')
    assert.is(sha256Of(dest), sum)
    assert.match(c.node('central').proc!.output, /takes the sha256 only before the chunks/)

    const back = path.join(c.dir, 'back.bin')
    const pull = await cp(c, 'central', [`ship1:${dest}`, back])
    assert.is(pull.code, 0, pull.stderr)
    assert.is(sha256Of(back), sum)
    assert.ok(fs.statSync(back).size === 3_000_000)
  } finally {
    await c.destroy()
  }
})

test.run()
