/**
 * The receiver's check of a selector: central resolves `--to role=db` with the labels it knows;
 * a node whose labels changed since answers not_selected and runs nothing, one that still
 * matches runs the message.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { notSelected } from '../../src/jobs/selected'
import { Cluster, editYaml, section, sendVia } from '../fixtures/cluster'
import { outpost, untilLabels } from './fleet-helpers'

test('not-selected - a selector the node still matches passes; a changed label or an unreadable selector does not', () => {
  const env = { id: 'X', method: 'cli.run' }
  assert.is(notSelected({ ...env, selector: 'role=db' }, 'ship1', { role: 'db' }), undefined)
  assert.is(notSelected({ ...env, selector: 'ship*' }, 'ship1', {}), undefined)
  assert.is(notSelected({ ...env, selector: `arch=${process.arch}` }, 'ship1', {}), undefined)
  assert.is(notSelected({ ...env, selector: 'role=db' }, 'ship1', { role: 'web' })?.code, 'not_selected')
  assert.match(notSelected({ ...env, selector: 'role=db' }, 'ship1', { role: 'web' })!.message, /role=web/)
  assert.is(notSelected({ ...env, selector: 'role in (db' }, 'ship1', { role: 'db' })?.code, 'not_selected')
})

test('not-selected - a node relabelled after central resolved the selector answers not_selected and runs nothing', async () => {
  const c = await Cluster.create(['ship1', 'ship2'])
  try {
    for (const n of ['ship1', 'ship2']) {
      editYaml(c.node(n).config, (d) => {
        section(d, 'node').labels = { role: 'db' }
        section(d, 'hello').interval = 3600
      })
    }
    const hub = await c.startHub()
    for (const n of ['central', 'ship1', 'ship2']) await c.start(n)
    await untilLabels(c, (list) => ['ship1', 'ship2'].every((n) => list.find((x) => x.name === n)?.labels?.role === 'db'))

    // The hub goes away: ship1's new label cannot reach central, which still lists role=db.
    await hub.stop('SIGKILL')
    const set = await outpost(['config', 'set', 'node.labels.role', 'web', '--config', c.node('ship1').config])
    assert.is(set.code, 0, set.stderr)
    const sent = sendVia(c.node('central').socket, [{ toNodes: ['role=db'], method: 'cli.run', methodArgs: ['echo ran'] }], { ms: 30_000 })
    // A job resolved now, too: its ship1 ends not_selected.
    const made = await outpost(['send', '--config', c.node('central').config, '--to', 'role=db', '--job', '--no-wait', 'cli.run', '--', 'echo ran'])
    assert.is(made.code, 0, made.stderr)
    await new Promise((r) => setTimeout(r, 300))
    await c.startHub()
    const watched = await outpost(['job', made.stdout.trim(), '--watch', '--config', c.node('central').config])
    assert.is(watched.code, 3, watched.stdout + watched.stderr)
    assert.match(watched.stdout, /ship1  not_selected  not_selected: ship1 no longer matches the selector "role=db"/)
    assert.match(watched.stdout, /ship2  ok/)
    assert.match(watched.stdout, /2 nodes: ok 1, not_selected 1 \(job done\)/)
    const r = await sent
    assert.equal(r.accepted.map((a) => a.toNode).sort(), ['ship1', 'ship2'])
    const by = Object.fromEntries(r.replies.map((x) => [x.fromNode as string, x]))
    assert.is((by.ship1?.error as { code?: string } | undefined)?.code, 'not_selected', JSON.stringify(r.replies))
    assert.match((by.ship1?.error as { message: string }).message, /no longer matches the selector "role=db"/)
    assert.is(by.ship1?.data, undefined, 'ship1 ran nothing')
    assert.is(by.ship2?.error, undefined, JSON.stringify(by.ship2))
    assert.match(String(by.ship2?.data), /ran/)
    // ship1's audit of what ran: nothing of this request.
    const audit = fs.readFileSync(path.join(c.node('ship1').dataDir, 'audit.log'), 'utf8')
    const id = r.accepted.find((a) => a.toNode === 'ship1')!.id
    assert.match(audit, new RegExp(`"event":"denied","id":"${id}".*not_selected`))
    assert.not.match(audit, new RegExp(`"event":"run","id":"${id}"`))
  } finally {
    await c.destroy()
  }
})

test.run()
