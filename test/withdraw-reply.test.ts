/**
 * Withdraw takes back only this node's own requests. A reply waiting in a node's outbox (its
 * requester offline) is the requester's only outcome (SPEC §1): an API client of the replying node
 * that withdrew it would leave that request with none, its `outpost send` waiting for ever. Real
 * agents behind a real hub; central SIGKILLed so that ship1's reply waits.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ask, Cluster, sendVia } from './fixtures/cluster'

let c: Cluster
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The id of the reply ship1 queued for `request` (its audit log's accepted line). */
async function replyIdOf(request: string): Promise<string> {
  const audit = path.join(c.node('ship1').dataDir, 'audit.log')
  for (const end = Date.now() + 20_000; ; await sleep(50)) {
    const text = fs.existsSync(audit) ? fs.readFileSync(audit, 'utf8') : ''
    for (const line of text.split('\n')) {
      if (!line.includes(request)) continue
      const l = JSON.parse(line) as { event: string; id: string; inReplyTo?: string }
      if (l.event === 'accepted' && l.inReplyTo === request) return l.id
    }
    assert.ok(Date.now() < end, 'ship1 never queued its reply')
  }
}

test.before(async () => {
  c = await Cluster.create(['ship1'])
  await c.startHub()
  await Promise.all([c.start('central'), c.start('ship1')])
})

test.after(async () => {
  await c.destroy()
})

test('withdraw - a reply waiting for its offline requester is not withdrawn (`reply`); the requester gets it once back', async () => {
  const started = path.join(c.dir, 'started')
  const sent = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: [`touch ${started}; sleep 2; echo landed`], replyMethod: 'reply.file', directory: 'w', fileName: 'out.txt' }], { wait: false })
  const request = sent.accepted[0]!.id
  // ship1 runs it when central goes: its reply then waits for central.
  for (const end = Date.now() + 20_000; !fs.existsSync(started); await sleep(25)) assert.ok(Date.now() < end, 'ship1 never ran the request')
  await c.node('central').proc!.stop('SIGKILL')
  const reply = await replyIdOf(request)
  // Asked until the hub has refused it as offline (before: in flight), as a withdrawable request would be.
  let answer = ''
  for (const end = Date.now() + 20_000; ; await sleep(50)) {
    answer = ((await ask(c.node('ship1').socket, { op: 'withdraw', ids: [reply] })).withdraw as Record<string, string>)[reply]!
    if (answer !== 'in_flight') break
    assert.ok(Date.now() < end, 'the hub never refused the reply to central')
  }
  assert.is(answer, 'reply', 'a reply is never withdrawn')
  await c.start('central')
  const out = path.join(c.node('central').dataDir, 'w', 'ship1', 'out.txt')
  for (const end = Date.now() + 30_000; !fs.existsSync(out); await sleep(50)) assert.ok(Date.now() < end, 'the reply never reached central')
  assert.is(fs.readFileSync(out, 'utf8').trim(), 'landed')
})

test.run()
