/**
 * A job central left behind when it was killed, read back at start: a node marked sent whose
 * message the outbox never took is handed over again (same id) and runs once; a node not yet
 * started starts; a node whose final reply was kept is not sent again; one marked sent longer
 * ago than its ttl, with no trace in the outbox, ends expired rather than being sent again.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ulid } from '../../src/wire/ulid'
import { Cluster } from '../fixtures/cluster'
import { outpost } from './fleet-helpers'

test('resume - a job left by a killed central goes on: handed over again, started, or settled from its kept reply', async () => {
  const c = await Cluster.create(['ship1', 'ship2', 'ship3', 'ship4'])
  try {
    const marks = path.join(c.dir, 'marks')
    const jobs = path.join(c.node('central').dataDir, 'jobs')
    fs.mkdirSync(jobs, { recursive: true })
    const id = ulid()
    const [m1, m2, m3, m4] = [ulid(), ulid(), ulid(), ulid()]
    const t = Date.now()
    const job = {
      id, createdAt: t, targets: ['ship1', 'ship2', 'ship3', 'ship4'], options: { batch: '2' }, status: 'running',
      message: { method: 'cli.run', methodArgs: [`echo "$NODE_TAG" >> ${marks}; echo hi`], replyMethod: 'reply.job', replyMethodArgs: [id], ttl: 60 },
      // ship1: marked sent, never stored in the outbox (the crash came between); ship2: its reply
      // was kept; ship3: waiting for its turn; ship4: marked sent two minutes ago, past its ttl of
      // 60 s, with no trace in the outbox (its record may be gone while it ran): not sent again.
      nodes: [{ name: 'ship1', id: m1, state: 'pending' }, { name: 'ship2', id: m2, state: 'delivered', sentAt: t }, { name: 'ship3', id: m3, state: 'pending' }, { name: 'ship4', id: m4, state: 'pending' }],
    }
    fs.writeFileSync(path.join(jobs, `${id}.json`), JSON.stringify(job))
    fs.writeFileSync(path.join(jobs, `${id}.sent`), `${m1} ${t}\n${m2} ${t}\n${m4} ${t - 120_000}\n01M9`)
    fs.writeFileSync(path.join(jobs, `${id}.replies`), JSON.stringify({ id: m2, node: 'ship2', at: t, exitCode: 0, output: 'kept\n' }) + '\n{"id":"cut')
    await c.startHub()
    for (const n of ['ship1', 'ship2', 'ship3', 'ship4']) await c.start(n, true, { NODE_TAG: n })
    await c.start('central')
    const watched = await outpost(['job', id, '--watch', '--json', '--config', c.node('central').config])
    assert.is(watched.code, 3, watched.stdout + watched.stderr)
    const last = JSON.parse(watched.stdout.trim().split('\n').at(-1)!) as { status: string; nodes: { name: string; state: string; output?: string; error?: { message: string } }[] }
    assert.is(last.status, 'done')
    assert.equal(last.nodes.map((n) => [n.name, n.state, n.output]), [['ship1', 'ok', 'hi\n'], ['ship2', 'ok', 'kept\n'], ['ship3', 'ok', 'hi\n'], ['ship4', 'expired', undefined]])
    assert.match(last.nodes[3]!.error?.message ?? '', /down past the ttl \(60 s\).*not sent again/)
    assert.equal(fs.readFileSync(marks, 'utf8').trim().split('\n').sort(), ['ship1', 'ship3'])
  } finally {
    await c.destroy()
  }
})

test.run()
