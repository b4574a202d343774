/**
 * Withdrawing what was never sent: Ctrl-C on `outpost send` to an offline node, `outpost job
 * --cancel` with a node offline, the socket op `withdraw`. Real agents behind a real hub, the CLI
 * spawned as a process, real SIGINTs and SIGKILLs; whether the command ran is a marker file.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ask, Cluster, Proc, sendVia, status } from '../fixtures/cluster'
import { outpost } from '../jobs/fleet-helpers'

let c: Cluster
let central = ''
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A CLI's exit status; one still running after 30 s is killed (null): it did not end. */
async function exitOf(p: Proc): Promise<number | null> {
  const t = setTimeout(() => p.child.kill('SIGKILL'), 30_000)
  try { return await p.exited } finally { clearTimeout(t) }
}

/** Messages waiting in central's outbox for `node`. */
async function waitingFor(node: string): Promise<number> {
  const s = await status(c.node('central').socket) as unknown as { outbox: { destinations: { node: string; count: number }[] } }
  return s.outbox.destinations.find((d) => d.node === node)?.count ?? 0
}

/** ship2 back: a later message to it has its reply, so whatever waited before it went first (FIFO per receiver). */
async function ship2BackAndDrained(): Promise<void> {
  await c.start('ship2')
  const later = path.join(c.dir, `later-${Date.now()}`)
  const r = await sendVia(c.node('central').socket, [{ toNode: 'ship2', method: 'cli.run', methodArgs: [`touch ${later}`] }], { ms: 30_000 })
  assert.is(r.replies.length, 1, 'the later message to ship2 has its reply')
  assert.ok(fs.existsSync(later), 'the later message ran on ship2')
}

/**
 * ship2 away, and central knows it: a probe message to it is refused by the hub (offline), then
 * withdrawn (asked again while it is still in flight). Central hands nothing more to ship2 until it is back.
 */
async function ship2Away(): Promise<void> {
  await c.node('ship2').proc?.stop('SIGKILL')
  const socket = c.node('central').socket
  const probe = (await sendVia(socket, [{ toNode: 'ship2', method: 'node.ping' }], { wait: false, allowUnknown: true })).accepted[0]!.id
  for (const end = Date.now() + 20_000; ; await sleep(50)) {
    const answer = (await ask(socket, { op: 'withdraw', ids: [probe] })).withdraw as Record<string, string>
    if (answer[probe] === 'withdrawn') return
    assert.is(answer[probe], 'in_flight')
    assert.ok(Date.now() < end, 'the hub never refused the probe to ship2')
  }
}

test.before(async () => {
  c = await Cluster.create(['ship1', 'ship2'])
  central = c.node('central').config
  await c.startHub()
  await Promise.all([c.start('central'), c.start('ship1')]) // ship2 comes later
})

test.after(async () => {
  await c.destroy()
})

test('withdraw - Ctrl-C on a send to an offline node withdraws it: exit 3, it never runs when the node comes back', async () => {
  await ship2Away()
  const marker = path.join(c.dir, 'ctrl-c-offline')
  const cli = new Proc(['send', '--config', central, '--allow-unknown', '--to', 'ship2', 'cli.run', '--', `touch ${marker}`])
  await cli.waitFor(/accepted \w+ → ship2/)
  cli.child.kill('SIGINT')
  assert.is(await exitOf(cli), 3, cli.output)
  assert.match(cli.output, /Ctrl-C: cancelling \w+ on ship2 in 1 s \(withdrawn if not sent yet, else op\.cancel\)/)
  assert.match(cli.output, /ship2: withdrawn: cli\.run \w+ from central to ship2: withdrawn by its sender before it was sent; it never reached ship2 and did not run/)
  assert.not.match(cli.output, /op\.cancel already sent/)
  assert.equal(await waitingFor('ship2'), 0, 'nothing waits in central\'s outbox for ship2')
  await ship2BackAndDrained()
  assert.not.ok(fs.existsSync(marker), 'the withdrawn command did not run on ship2')
  const audit = fs.readFileSync(path.join(c.node('central').dataDir, 'audit.log'), 'utf8')
  assert.match(audit, /"event":"expired","id":"\w+","toNode":"ship2","method":"cli\.run","reason":"withdrawn"/)
})

test('withdraw - a message already handed out is not withdrawn: the op.cancel path, as before', async () => {
  // ship1 is online but stopped (SIGSTOP): the hub takes the message, ship1 does not ACK it.
  const ship1 = c.node('ship1').proc!
  const marker = path.join(c.dir, 'in-flight')
  ship1.child.kill('SIGSTOP')
  try {
    const sent = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: [`touch ${marker}`] }], { wait: false })
    const id = sent.accepted[0]!.id
    // Central hands it to the hub at once; the wait covers a loaded machine's event loop (too short, and it would be withdrawn: a failure, never a false pass).
    await sleep(1500)
    const answer = await ask(c.node('central').socket, { op: 'withdraw', ids: [id, '01ARZ3NDEKTSV4RRFFQ69G5FAV'] })
    assert.equal(answer, { withdraw: { [id]: 'in_flight', '01ARZ3NDEKTSV4RRFFQ69G5FAV': 'unknown' } })
  } finally {
    ship1.child.kill('SIGCONT')
  }
  for (const end = Date.now() + 20_000; !fs.existsSync(marker); await sleep(50)) assert.ok(Date.now() < end, 'the message handed out still ran on ship1')
})

test('withdraw - outpost job --cancel: the offline node\'s message is withdrawn, the node `cancelled`, its command never runs', async () => {
  await ship2Away()
  const marker = path.join(c.dir, 'job-offline')
  const started = await outpost(['send', '--config', central, '--allow-unknown', '--to', 'ship2', '--batch', '1', '--no-wait', 'cli.run', '--', `touch ${marker}`])
  assert.is(started.code, 0, started.stderr)
  const id = started.stdout.trim()
  const cancel = await outpost(['job', id, '--cancel', '--config', central])
  assert.is(cancel.code, 0, cancel.stderr)
  let state = ''
  for (const end = Date.now() + 10_000; state !== 'cancelled'; await sleep(50)) {
    const j = JSON.parse((await outpost(['job', id, '--json', '--config', central])).stdout) as { status: string; endedAt?: number; nodes: { state: string; error?: { code: string } }[] }
    state = j.nodes[0]!.state
    assert.ok(Date.now() < end, `ship2 of the job is ${state}, not cancelled`)
    if (state === 'cancelled') {
      assert.is(j.status, 'cancelled')
      assert.is(j.nodes[0]!.error?.code, 'withdrawn')
      assert.ok(j.endedAt !== undefined, 'the job ended')
    }
  }
  await ship2BackAndDrained()
  assert.not.ok(fs.existsSync(marker), 'the cancelled job\'s command did not run on ship2')
})

test('withdraw - durable: central SIGKILLed right after the withdraw answer; after its restart the message is still gone', async () => {
  await ship2Away()
  const marker = path.join(c.dir, 'after-kill')
  const sent = await sendVia(c.node('central').socket, [{ toNode: 'ship2', method: 'cli.run', methodArgs: [`touch ${marker}`] }], { wait: false, allowUnknown: true })
  const id = sent.accepted[0]!.id
  const answer = await ask(c.node('central').socket, { op: 'withdraw', ids: [id] })
  await c.node('central').proc!.stop('SIGKILL')
  assert.equal(answer, { withdraw: { [id]: 'withdrawn' } })
  await c.start('central')
  assert.equal(await waitingFor('ship2'), 0, 'the withdrawn message is not back in the outbox')
  await ship2BackAndDrained()
  assert.not.ok(fs.existsSync(marker), 'the withdrawn command did not run on ship2')
})

test.run()
