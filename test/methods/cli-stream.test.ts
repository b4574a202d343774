import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import cliStream, { streamCommand, type StreamOptions } from '../../methods/cli-stream'
import { defaultConfig } from '../../src/config'
import type { MethodResult } from '../../src/method'
import { BIN, Cluster, Proc, sendVia } from '../fixtures/cluster'
import { forker, killGroups, leavesSetsid, procStat, stubborn, survivors, untilGone, untilMembers, waitForPid } from '../fixtures/procs'

const groups = new Set<number>()
/** Processes a test started in sessions (and groups) of their own; killed at the end too. */
const strays = new Set<number>()
let c: Cluster

test.before(async () => {
  c = await Cluster.create(['ship1', 'ship2'], { methods: { killGrace: 1 } })
  await c.startHub()
  await c.start('central')
  await c.start('ship1')
  // ship2 cannot use the pty: the detached-child fallback.
  await c.start('ship2', true, { OUTPOST_NO_PTY: '1' })
})

test.after(async () => {
  killGroups(groups)
  killGroups(strays) // each leads a group of its own
  await c.destroy()
})

const text = (v: unknown): string => (typeof v === 'string' ? v : v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : '')

/** Drain a stream method: its chunks and its end result. */
async function drain(gen: AsyncGenerator<Uint8Array | string, MethodResult, undefined>): Promise<{ chunks: string[]; end: MethodResult }> {
  const chunks: string[] = []
  for (let step = await gen.next(); ; step = await gen.next()) {
    if (step.done === true) return { chunks, end: step.value }
    chunks.push(text(step.value))
  }
}

const opts = (o: Partial<StreamOptions> = {}): StreamOptions => ({ signal: new AbortController().signal, graceMs: 1000, log: () => {}, ...o })

test('cli.stream - runs in a pseudo-terminal, with plain LF line ends; the fallback has no terminal', async () => {
  const cmd = ['-c', 'test -t 1 && echo tty || echo no-tty; printf "a\\nb\\n"; exit 3']
  const pty = await drain(streamCommand('/bin/sh', cmd, opts()))
  assert.is(pty.chunks.join(''), 'tty\na\nb\n')
  assert.is(pty.end.exitCode, 3)
  const plain = await drain(streamCommand('/bin/sh', cmd, opts({ noPty: true })))
  assert.is(plain.chunks.join(''), 'no-tty\na\nb\n')
  assert.is(plain.end.exitCode, 3)
})

test('cli.stream - no command is method_failed', () => {
  const config = defaultConfig()
  try {
    cliStream.run({ node: 'n', env: { id: 'x', toNode: 'n', fromNode: 'n', method: 'cli.stream', createdAt: 0 }, args: [], config, dataDir: '/tmp', signal: new AbortController().signal, log: () => {} })
    assert.unreachable('expected a throw')
  } catch (err) {
    assert.is((err as { code?: string }).code, 'method_failed')
  }
})

test('cli.stream - output arrives as numbered replies in order, then a final reply with the exit code', async () => {
  const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.stream', methodArgs: ['for i in 1 2 3 4 5 6; do echo line$i; sleep 0.2; done; exit 4'] }])
  const seqs = r.replies.map((x) => x.seq)
  assert.ok(r.replies.length >= 3, `expected several replies while it ran, got ${r.replies.length}`)
  assert.equal(seqs, r.replies.map((_, i) => i), `seq must run 0, 1, 2…: ${JSON.stringify(seqs)}`)
  const last = r.replies[r.replies.length - 1]!
  assert.is(last.final, true)
  assert.is(last.exitCode, 4)
  assert.is(last.error, undefined)
  for (const x of r.replies.slice(0, -1)) { assert.is(x.final, false); assert.is(x.exitCode, undefined) }
  assert.is(r.replies.map((x) => text(x.data)).join(''), 'line1\nline2\nline3\nline4\nline5\nline6\n')
  // reply.file.append wrote every chunk, in order, and the exit status of the final one.
  const file = path.join(c.node('central').dataDir, 'replies', 'ship1', `${r.accepted[0]!.id}.log`)
  for (let i = 0; i < 100 && !(fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes('line6')); i++) await new Promise((res) => setTimeout(res, 50))
  assert.is(fs.readFileSync(file, 'utf8'), 'line1\nline2\nline3\nline4\nline5\nline6\n[exit 4]\n')
})

test('cli.stream - the agent built from the checkout loads the pty addon (it is external to the bundle); the alias works', async () => {
  const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'REQCliCommandCont', methodArgs: ['test -t 1 && echo tty || echo no-tty'] }])
  assert.is(r.replies.map((x) => text(x.data)).join(''), 'tty\n')
  assert.not.match(c.node('ship1').proc!.output, /no pseudo-terminal/)
})

test('cli.stream - a large output comes whole, in pieces of at most 4 KiB', async () => {
  const cmd = 'head -c 300000 /dev/urandom | base64 -w 100'
  const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.stream', methodArgs: [`${cmd} | tee ${c.dir}/big.txt`] }], { ms: 60_000 })
  const last = r.replies[r.replies.length - 1]!
  assert.is(last.final, true)
  assert.is(last.exitCode, 0)
  assert.equal(r.replies.map((x) => x.seq), r.replies.map((_, i) => i))
  for (const x of r.replies) assert.ok(Buffer.byteLength(text(x.data)) <= 4096, `a reply of ${Buffer.byteLength(text(x.data))} bytes`)
  assert.ok(r.replies.length >= 95, `${r.replies.length} replies for about 400 KB`)
  assert.is(r.replies.map((x) => text(x.data)).join(''), fs.readFileSync(path.join(c.dir, 'big.txt'), 'utf8'))
})

test('cli.stream - outpost send prints the stream and exits 1 for a non-zero exit, 0 for success', () => {
  const run = (cmd: string): ReturnType<typeof spawnSync> =>
    spawnSync(process.execPath, [BIN, 'send', '--config', c.node('central').config, '--to', 'ship1', 'cli.stream', '--', cmd], { encoding: 'utf8', timeout: 30_000 })
  const ok = run('echo one; sleep 0.3; echo two')
  assert.is(ok.stdout, 'one\ntwo\n', String(ok.stderr))
  assert.is(ok.status, 0)
  const bad = run('echo out; exit 7')
  assert.is(bad.stdout, 'out\n')
  assert.is(bad.status, 1)
  assert.match(String(bad.stderr), /exit status 7/)
})

test('cli.stream - outpost send prints each chunk as it arrives, before the command ends', async () => {
  const p = new Proc(['send', '--config', c.node('central').config, '--to', 'ship1', 'cli.stream', '--', 'echo first; sleep 3; echo second'])
  await p.waitFor(/first/, 15_000)
  assert.is(p.child.exitCode, null, 'still waiting for the rest')
  assert.not.match(p.output, /second/)
  assert.is(await p.exited, 0)
  assert.match(p.output, /first\nsecond\n/)
})

/** Run a misbehaving command at a node with methodTimeout 3; check the OS that its whole group is gone. */
async function killedAtTimeout(node: string, make: (pidFile: string) => string, minMembers: number): Promise<void> {
  const pidFile = path.join(c.dir, `pid-${node}-${Math.random().toString(36).slice(2)}`)
  const waiting = sendVia(c.node('central').socket, [{ toNode: node, method: 'cli.stream', methodArgs: [make(pidFile)], methodTimeout: 3 }])
  const pgid = await waitForPid(pidFile)
  groups.add(pgid)
  const before = await untilMembers(pgid, minMembers)
  assert.ok(before.length >= minMembers, `expected at least ${minMembers} processes in group ${pgid} while it ran, saw:\n${before.join('\n')}`)
  const r = await waiting
  const last = r.replies[r.replies.length - 1]!
  assert.is(last.final, true)
  assert.is((last.error as { code: string } | undefined)?.code, 'method_timeout', JSON.stringify(last))
  assert.ok(r.replies.map((x) => text(x.data)).join('').includes('started'))
  const left = await survivors(pgid)
  assert.equal(left, [], `processes of group ${pgid} survived methodTimeout:\n${left.join('\n')}`)
}

test('cli.stream - at methodTimeout background children and grandchildren die with the group (pty)', async () => {
  await killedAtTimeout('ship1', forker, 4)
})

test('cli.stream - at methodTimeout a group that ignores SIGTERM is killed after the grace (pty)', async () => {
  await killedAtTimeout('ship1', stubborn, 4)
})

test('cli.stream - at methodTimeout background children and grandchildren die with the group (no pty)', async () => {
  await killedAtTimeout('ship2', forker, 4)
})

test('cli.stream - at methodTimeout a group that ignores SIGTERM is killed after the grace (no pty)', async () => {
  await killedAtTimeout('ship2', stubborn, 4)
  const log = c.node('ship2').proc!.output
  assert.is(log.match(/cli\.stream: no pseudo-terminal/g)?.length, 1, 'the fallback is logged once')
})

for (const noPty of [false, true]) {
  const how = noPty ? 'no pty' : 'pty'
  test(`cli.stream - a stop kills a child that left for a session of its own (setsid) too (${how})`, async () => {
    const pidFile = path.join(c.dir, `pid-setsid-stop-${noPty ? 1 : 0}`)
    const ac = new AbortController()
    const done = drain(streamCommand('/bin/sh', ['-c', leavesSetsid(pidFile)], opts({ signal: ac.signal, noPty })))
    const pid = await waitForPid(pidFile)
    strays.add(pid)
    const before = procStat(pid)
    assert.ok(before !== undefined && before.session === pid, `the sleeper ${pid} should lead a session of its own: ${JSON.stringify(before)}`)
    ac.abort()
    await done
    assert.ok(await untilGone(pid), `the setsid'd sleeper ${pid} survived the stop: ${JSON.stringify(procStat(pid))}`)
  })

  test(`cli.stream - a child that left for a session of its own stops when the command ends, like the rest of its group (${how})`, async () => {
    const pidFile = path.join(c.dir, `pid-setsid-exit-${noPty ? 1 : 0}`)
    const cmd = `setsid -f sh -c 'echo $$ > ${pidFile}; exec sleep 300'; while [ ! -s ${pidFile} ]; do sleep 0.05; done; echo done`
    const r = await drain(streamCommand('/bin/sh', ['-c', cmd], opts({ noPty })))
    assert.is(r.end.exitCode, 0)
    const pid = await waitForPid(pidFile)
    strays.add(pid)
    assert.ok(await untilGone(pid), `the setsid'd sleeper ${pid} outlived its stream: ${JSON.stringify(procStat(pid))}`)
  })
}

test('cli.stream - while the hub is down the chunks spool in the outbox and arrive later, in order', async () => {
  const waiting = sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.stream', methodArgs: ['for i in $(seq 1 15); do echo n$i; sleep 0.2; done'], methodTimeout: 60 }], { ms: 60_000 })
  // Let a few chunks through, then take the link away for longer than the command runs.
  await new Promise((res) => setTimeout(res, 700))
  await c.hub!.stop('SIGKILL')
  await new Promise((res) => setTimeout(res, 4000))
  await c.startHub()
  const r = await waiting
  const seqs = r.replies.map((x) => x.seq)
  assert.equal(seqs, r.replies.map((_, i) => i), `seq must run 0, 1, 2…: ${JSON.stringify(seqs)}`)
  assert.is(r.replies[r.replies.length - 1]!.final, true)
  assert.is(r.replies[r.replies.length - 1]!.exitCode, 0)
  assert.is(r.replies.map((x) => text(x.data)).join(''), Array.from({ length: 15 }, (_, i) => `n${i + 1}\n`).join(''))
})

test('cli.stream - a node stopped mid-stream kills the group first; the stream ends with interrupted', async () => {
  const pidFile = path.join(c.dir, 'pid-stop')
  const waiting = sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.stream', methodArgs: [stubborn(pidFile)], methodTimeout: 60 }], { ms: 60_000 })
  const pgid = await waitForPid(pidFile)
  groups.add(pgid)
  assert.ok((await untilMembers(pgid, 4)).length >= 4)
  await c.node('ship1').proc!.stop('SIGTERM')
  const left = await survivors(pgid)
  assert.equal(left, [], `processes of group ${pgid} outlived their node:\n${left.join('\n')}`)
  await c.start('ship1')
  const r = await waiting
  const last = r.replies[r.replies.length - 1]!
  assert.is(last.final, true)
  assert.is((last.error as { code: string } | undefined)?.code, 'interrupted', JSON.stringify(last))
})

test.run()
