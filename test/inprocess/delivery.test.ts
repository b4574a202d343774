/**
 * Delivery and the dispatcher, in this process over the in-memory transport: resends when
 * messages or ACKs are lost, once-only execution, nack offline without spending attempts, ttl,
 * attempts running out, and messages kept across a restart of the sender.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { METHODS } from '../../methods/index'
import type { Method } from '../../src/method'
import { Bus, request, sleep, until } from '../fixtures/inprocess'

const errorCode = (r: { error?: { code: string } } | undefined): string | undefined => r?.error?.code
const text = (r: { data?: string | Uint8Array } | undefined): string => (r?.data === undefined ? '' : typeof r.data === 'string' ? r.data : Buffer.from(r.data).toString('utf8'))

test('in-process - a command runs on the other node and its output comes back', async () => {
  const bus = new Bus()
  try {
    const central = await bus.start('central')
    await bus.start('ship1')
    const [reply] = await request(central, { toNode: 'ship1', method: 'cli.run', methodArgs: ['echo hello from $0'] })
    assert.match(text(reply), /hello from/)
    assert.is(reply?.fromNode, 'ship1')
    assert.is(reply?.exitCode, 0)
  } finally {
    await bus.destroy()
  }
})

test('in-process - with every third publish lost (messages, ACKs and replies), each command runs exactly once and every reply arrives', async () => {
  const bus = new Bus()
  const fast = { delivery: { ackTimeout: 1, retries: 20 } }
  try {
    const central = await bus.start('central', fast, 3)
    await bus.start('ship1', fast, 3)
    const runs = path.join(bus.dir, 'runs.txt')
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) =>
      request(central, { toNode: 'ship1', method: 'cli.run', methodArgs: [`echo run-${i} >> ${runs}; echo done-${i}`], replyAckTimeout: 1, replyRetries: 20 } as never, 60_000)))
    for (const [i, replies] of results.entries()) assert.match(text(replies.at(-1)), new RegExp(`done-${i}`), JSON.stringify(replies))
    const lines = fs.readFileSync(runs, 'utf8').trim().split('\n')
    assert.is(lines.length, 12, lines.join(','))
    assert.is(new Set(lines).size, 12, 'no command ran twice')
    // Lost ACKs made central resend messages ship1 had already run: recognised, ACKed, not run.
    assert.ok(bus.nodes.get('central')!.logs.some((l) => /no ACK for .* attempt 2/.test(l)), 'central resent')
    assert.ok(bus.nodes.get('ship1')!.logs.some((l) => /is a duplicate; ACKed again, not run/.test(l)), 'ship1 recognised a resend of a command it had run')
  } finally {
    await bus.destroy()
  }
})

test('in-process - a receiver that is away is nacked: no attempt is spent, and the message goes once it is back', async () => {
  const bus = new Bus()
  try {
    // One attempt in all, 1 s for the ACK: were attempts spent while ship1 is away, it would end as not_delivered.
    const central = await bus.start('central', { delivery: { ackTimeout: 1, retries: 0 } })
    const ship1 = await bus.start('ship1')
    ship1.detach()
    const pending = request(central, { toNode: 'ship1', method: 'node.ping' })
    await sleep(3000)
    ship1.attach()
    const [reply] = await pending
    assert.match(text(reply), /^pong ship1/, JSON.stringify(reply))
  } finally {
    await bus.destroy()
  }
})

test('in-process - a message whose ttl runs out ends in a ttl_expired error reply and an error.log at central', async () => {
  const bus = new Bus()
  try {
    const central = await bus.start('central')
    const [reply] = await request(central, { toNode: 'nowhere', method: 'node.ping', ttl: 1 })
    assert.is(errorCode(reply), 'ttl_expired')
    assert.is(reply?.final, true)
    const errorsLog = path.join(central.dataDir, 'errors.log')
    await until(() => fs.existsSync(errorsLog) && /ttl_expired/.test(fs.readFileSync(errorsLog, 'utf8')), 5000, 'errors.log')
  } finally {
    await bus.destroy()
  }
})

test('in-process - with no ACK ever coming, the message ends as not_delivered after its retries', async () => {
  const bus = new Bus()
  try {
    // drop 1: every message central publishes is lost.
    const central = await bus.start('central', { delivery: { ackTimeout: 1, retries: 1 } }, 1)
    await bus.start('ship1')
    const [reply] = await request(central, { toNode: 'ship1', method: 'node.ping' })
    assert.is(errorCode(reply), 'not_delivered')
    assert.match(String(reply?.error?.message), /2 attempts/)
  } finally {
    await bus.destroy()
  }
})

test('in-process - messages stored before the sender stops are delivered by its next start, each once', async () => {
  const bus = new Bus()
  try {
    let central = await bus.start('central')
    const ship1 = await bus.start('ship1')
    ship1.detach()
    const runs = path.join(bus.dir, 'runs.txt')
    await central.node.submit(Array.from({ length: 5 }, (_, i) => ({ toNode: 'ship1', method: 'cli.run', methodArgs: [`echo kept-${i} >> ${runs}`] })))
    await bus.stop('central')
    central = await bus.start('central')
    ship1.attach()
    await until(() => fs.existsSync(runs) && fs.readFileSync(runs, 'utf8').trim().split('\n').length === 5, 10_000, 'five runs')
    await sleep(500)
    assert.equal(fs.readFileSync(runs, 'utf8').trim().split('\n'), ['kept-0', 'kept-1', 'kept-2', 'kept-3', 'kept-4'], 'in order, once each')
    // central hears the replies, not as strangers: each is for a message it sent.
    await until(() => central.node.outbox.stats().count === 0, 10_000, 'an empty outbox at central')
  } finally {
    await bus.destroy()
  }
})

test('in-process - a method only the receiver has, named by a sender that does not know it, runs there; one nobody has is method_unknown', async () => {
  const bus = new Bus()
  try {
    const central = await bus.start('central')
    // ship1 is "newer": it has a method central's build does not, with an alias of its own.
    const shout: Method = { name: 'test.shout', aliases: ['REQShout'], kind: 'unary', summary: 'upper-cases its argument', run: async (ctx) => ({ data: (ctx.args[0] ?? '').toUpperCase() }) }
    await bus.start('ship1', {}, 0, new Map([...METHODS, [shout.name, shout]]))
    const [byName] = await request(central, { toNode: 'ship1', method: 'test.shout', methodArgs: ['hello'] })
    assert.is(text(byName), 'HELLO', JSON.stringify(byName))
    const [byAlias] = await request(central, { toNode: 'ship1', method: 'REQShout', methodArgs: ['alias'] })
    assert.is(text(byAlias), 'ALIAS', JSON.stringify(byAlias))
    const [none] = await request(central, { toNode: 'ship1', method: 'test.nothing' })
    assert.is(errorCode(none), 'method_unknown')
  } finally {
    await bus.destroy()
  }
})

test.run()
