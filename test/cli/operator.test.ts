/**
 * The operator's first hour, as a user meets it: real agents behind a real hub, the CLI spawned
 * as a process, real SIGINTs, and the OS asked whether the remote process group is gone.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, Cluster, Proc, editYaml, section, tmpDir } from '../fixtures/cluster'
import { groupMembers, killGroups, survivors, untilMembers, waitForPid } from '../fixtures/procs'

let c: Cluster
const groups = new Set<number>()
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function outpost(args: string[], cwd = tmpDir()) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, OUTPOST_CONFIG: '', CONFIG: '' } })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** A stream on ship1 that counts for 100 s, its shell's pid (= its process group) in a file. */
function counting(pidFile: string): string {
  return `echo $$ > ${pidFile}; for i in $(seq 100); do echo tick$i; sleep 1; done`
}

test.before(async () => {
  c = await Cluster.create(['ship1', 'ship2', 'ship3', 'ship4'])
  await c.startHub()
  await Promise.all([c.start('central'), c.start('ship1'), c.start('ship2')]) // ship3 never comes
})

test.after(async () => {
  killGroups(groups)
  await c.destroy()
})

test('operator - send, nodes and status with no agent running exit 2 with one line saying how to start one', () => {
  const dir = tmpDir()
  fs.writeFileSync(path.join(dir, 'outpost.yaml'), `node: { name: solo }\ndataDir: ${JSON.stringify(path.join(dir, 'data'))}\n`)
  for (const args of [['send', 'node.ping'], ['nodes'], ['status']]) {
    const r = outpost(args, dir)
    assert.is(r.code, 2, `${args[0]}: ${r.stderr}`)
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr)
    assert.match(r.stderr, /no agent runs for .*outpost\.yaml with data dir .*data/)
    assert.match(r.stderr, /start one with `outpost agent --config .*outpost\.yaml`/)
    assert.match(r.stderr, /\[agent_not_running\]/)
  }
  const j = outpost(['status', '--json'], dir)
  assert.is(j.code, 2)
  assert.is((JSON.parse(j.stderr) as { error: { code: string } }).error.code, 'agent_not_running')
})

test('operator - Ctrl-C on a streamed send cancels the remote job: its process group is gone, exit 1', async () => {
  const pidFile = path.join(c.dir, 'ctrl-c.pid')
  const cli = new Proc(['send', '--config', c.node('central').config, '--to', 'ship1', 'cli.stream', '--', counting(pidFile)])
  await cli.waitFor(/tick2\n/, 15_000)
  const pgid = await waitForPid(pidFile)
  groups.add(pgid)
  assert.ok((await untilMembers(pgid, 1)).length >= 1, 'the job runs on ship1')
  cli.child.kill('SIGINT')
  assert.is(await cli.exited, 1, cli.output)
  assert.match(cli.output, /Ctrl-C: cancelling \w+ on ship1 in 1 s \(withdrawn if not sent yet, else op\.cancel\); Ctrl-C again to leave it running/)
  assert.match(cli.output, /ship1: cancelled: cli\.stream \w+ was cancelled by central \(op\.cancel\)/)
  assert.equal(await survivors(pgid, 5000), [], 'nothing of the job is left on ship1')
})

test('operator - Ctrl-C twice leaves the job running and prints how to cancel it; that command does', async () => {
  const pidFile = path.join(c.dir, 'twice.pid')
  const config = c.node('central').config
  const cli = new Proc(['send', '--config', config, '--to', 'ship1', 'cli.stream', '--', counting(pidFile)])
  await cli.waitFor(/tick1\n/, 15_000)
  const pgid = await waitForPid(pidFile)
  groups.add(pgid)
  cli.child.kill('SIGINT')
  await cli.waitFor(/Ctrl-C again/)
  cli.child.kill('SIGINT')
  assert.is(await cli.exited, 0, cli.output)
  const hint = /left running: (\w+) on ship1\. To cancel later:\n {2}(outpost send .*)\n/.exec(cli.output)
  assert.ok(hint, cli.output)
  assert.is(hint![2], `outpost send --config ${config} --to ship1 op.cancel -- ${hint![1]}`)
  await sleep(2000) // past the grace: no cancel was sent
  assert.ok(groupMembers(pgid).length >= 1, 'still running on ship1')
  const cancel = outpost(hint![2]!.split(' ').slice(1))
  assert.is(cancel.code, 0, cancel.stderr)
  assert.match(cancel.stdout, new RegExp(`"cancelled":"${hint![1]}"`))
  assert.equal(await survivors(pgid, 5000), [])
})

test('operator - send --detach prints the id and the cancel command; status on ship1 lists the run', async () => {
  const pidFile = path.join(c.dir, 'detach.pid')
  const r = outpost(['send', '--config', c.node('central').config, '--detach', '--to', 'ship1', 'cli.stream', '--', counting(pidFile)])
  assert.is(r.code, 0, r.stderr)
  const [id, to] = r.stdout.trim().split(' ')
  assert.is(to, 'ship1')
  assert.match(r.stderr, new RegExp(`left running: ${id} on ship1\\. To cancel later:\\n {2}outpost send --config \\S+ --to ship1 op\\.cancel -- ${id}\\n`))
  const pgid = await waitForPid(pidFile)
  groups.add(pgid)
  const s = JSON.parse(outpost(['status', '--config', c.node('ship1').config, '--json']).stdout) as { runs: { id: string; method: string; from: string; started: number }[] }
  const run = s.runs.find((x) => x.id === id)
  assert.ok(run, JSON.stringify(s.runs))
  assert.is(run!.method, 'cli.stream')
  assert.is(run!.from, 'central')
  const human = outpost(['status', '--config', c.node('ship1').config]).stdout
  assert.match(human, /\nRUNNING\s+METHOD\s+FROM\s+STARTED\n/)
  assert.match(human, new RegExp(`\\n${id}\\s+cli\\.stream\\s+central\\s+\\S+Z \\(\\d+ s ago\\)`))
  assert.is(outpost(['send', '--config', c.node('central').config, '--to', 'ship1', 'op.cancel', '--', id!]).code, 0)
  assert.equal(await survivors(pgid, 5000), [])
})

test('operator - status shows the link, what waits per destination with the age of the oldest, and --json', async () => {
  const config = c.node('central').config
  // ship3 never came: central has not heard of it (--allow-unknown).
  const queued = outpost(['send', '--config', config, '--no-wait', '--allow-unknown', '--to', 'ship3', 'cli.run', '--', 'true'])
  assert.is(queued.code, 0, queued.stderr)
  const again = outpost(['send', '--config', config, '--no-wait', '--allow-unknown', '--to', 'ship3', 'cli.run', '--', 'true'])
  assert.is(again.code, 0, again.stderr)
  await sleep(1200)
  const r = outpost(['status', '--config', config])
  assert.is(r.code, 0, r.stderr)
  assert.match(r.stdout, /^node {6}central \(outpost \S+, pid \d+, up \d+ s\)\n/)
  assert.match(r.stdout, new RegExp(`\\nlink {6}tcp, connected to tcp://127\\.0\\.0\\.1:${c.port} since \\S+Z \\(\\d+ s\\)\\n`))
  // The two to ship3, and whatever an earlier test's messages to ship1 still wait for (an ACK on a loaded machine).
  const total = /\noutbox {4}(\d+) messages?, \d+ B of 256\.0 MiB\n/.exec(r.stdout)
  assert.ok(total !== null && Number(total[1]) >= 2, r.stdout)
  assert.match(r.stdout, /\nTO\s+MESSAGES\s+BYTES\s+OLDEST\n(?:\S+\s+\d+\s+\d+ B\s+.* ago\n)*ship3\s+2\s+\d+ B\s+[1-9]\d* s ago\n/, r.stdout)
  const j = JSON.parse(outpost(['status', '--config', config, '--json']).stdout) as {
    node: string; connection: { kind: string; connected: boolean; server: string }
    outbox: { count: number; destinations: { node: string; count: number; bytes: number; oldest: number }[] }
  }
  assert.is(j.node, 'central')
  assert.equal([j.connection.kind, j.connection.connected, j.connection.server], ['tcp', true, `tcp://127.0.0.1:${c.port}`])
  const ship3 = j.outbox.destinations.find((d) => d.node === 'ship3')
  assert.ok(ship3 !== undefined && ship3.count === 2 && ship3.bytes > 0 && ship3.oldest <= Date.now() - 1000, JSON.stringify(j.outbox))
})

test('operator - status of a node the hub refuses says NOT connected, and why', async () => {
  const n = c.node('ship4')
  editYaml(n.config, (doc) => { section(doc, 'transport').token = 'not-the-token' })
  await c.start('ship4', false)
  let r = outpost(['status', '--config', n.config])
  for (let i = 0; i < 50 && !/refused/.test(r.stdout); i++) { await sleep(100); r = outpost(['status', '--config', n.config]) }
  assert.is(r.code, 0, r.stderr)
  assert.match(r.stdout, /\nlink {6}tcp, NOT connected/)
  assert.match(r.stdout, /\nrefused {3}auth_failed: /)
  await n.proc!.stop()
})

test('operator - fan-out output is labelled by node, line by line, on stdout and stderr', () => {
  const r = outpost(['send', '--config', c.node('central').config, '--to', 'ship1', '--to', 'ship2', 'cli.run', '--', 'printf "one\\ntwo"; echo oops >&2'])
  assert.is(r.code, 0, r.stderr)
  assert.equal(r.stdout.split('\n').filter(Boolean).sort(), ['[ship1] one', '[ship1] two', '[ship2] one', '[ship2] two'])
  assert.match(r.stderr, /^\[ship1\] oops$/m)
  assert.match(r.stderr, /^\[ship2\] oops$/m)
  const single = outpost(['send', '--config', c.node('central').config, '--to', 'ship1', 'cli.run', '--', 'echo plain'])
  assert.is(single.stdout, 'plain\n')
})

test('operator - send --json is JSON Lines: accepted, a reply per node, done with the exit code', () => {
  const r = outpost(['send', '--config', c.node('central').config, '--json', '--to', 'ship1', '--to', 'ship2', 'cli.run', '--', 'exit 3'])
  assert.is(r.code, 1, r.stderr)
  const records = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.equal(records.map((x) => Object.keys(x)[0]), ['accepted', 'reply', 'reply', 'done'])
  assert.equal((records[0]!.accepted as { toNode: string }[]).map((a) => a.toNode), ['ship1', 'ship2'])
  assert.equal(records.slice(1, 3).map((x) => (x.reply as { exitCode: number }).exitCode), [3, 3])
  assert.equal(records[3], { done: true, exitCode: 1 })
})

test.run()
