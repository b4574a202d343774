/**
 * Remote configuration with real processes: central changes ship1's config through the
 * methods config.get / config.set / config.deploy / config.rollback, and restarts it with
 * agent.restart.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, Cluster, Proc, sendVia, status } from '../fixtures/cluster'

type Reply = Record<string, unknown> & { data?: string; error?: { code: string; message: string } }

async function call(c: Cluster, to: string, method: string, methodArgs: string[] = [], extra: Record<string, unknown> = {}): Promise<Reply> {
  const r = await sendVia(c.node('central').socket, [{ toNode: to, method, methodArgs, ...extra }], { ms: 20_000 })
  const reply = r.replies.find((x) => x.final === true) ?? r.replies[0]
  assert.ok(reply, `no reply to ${method}`)
  return reply as Reply
}

const record = (r: Reply): Record<string, unknown> => {
  assert.not.ok(r.error, JSON.stringify(r.error))
  return JSON.parse(r.data!) as Record<string, unknown>
}

async function waitConnected(socket: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    const s = await status(socket).catch(() => undefined)
    if (s?.connected) return
    if (Date.now() > end) throw new Error(`${socket} not connected after ${ms} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

test('remote config - central deploys a config to ship1: applied at once, same id a no-op, invalid YAML refused, rollback restores', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const file = c.node('ship1').config
    const original = fs.readFileSync(file, 'utf8')
    const before = await call(c, 'ship1', 'cli.named', ['greet'])
    assert.is(before.error?.code, 'command_unknown')

    const doc = `# deployed by central\n${original}methods:\n  commands:\n    greet: "echo hello from ship1"   # a new command\n`
    const dep = record(await call(c, 'ship1', 'config.deploy', ['v1'], { data: doc }))
    assert.equal(dep.ok, true)
    assert.equal(dep.id, 'v1')
    assert.equal(dep.changed, ['methods.commands'])
    assert.equal(dep.restartNeeded, [])
    assert.is(dep.previous, `${file}.previous`)
    assert.is(fs.readFileSync(file, 'utf8'), doc, 'written as given, comments and all')
    assert.is(fs.readFileSync(`${file}.previous`, 'utf8'), original)
    // Applied without a restart: the new command runs through cli.named right away.
    assert.is((await call(c, 'ship1', 'cli.named', ['greet'])).data, 'hello from ship1\n')

    // The same id again: nothing happens; with --force it is applied again.
    const again = record(await call(c, 'ship1', 'config.deploy', ['v1'], { data: `${original}bogus: 1\n` }))
    assert.equal(again.noop, true)
    assert.is(fs.readFileSync(file, 'utf8'), doc)

    // Invalid documents are refused naming key and line; the file is untouched.
    const bad = await call(c, 'ship1', 'config.deploy', ['v2'], { data: `${original}delivery:\n  retries: many\n` })
    assert.is(bad.error?.code, 'config_invalid')
    assert.match(bad.error!.message, /delivery\.retries must be a whole number.*\(line \d+\)/)
    const broken = await call(c, 'ship1', 'config.deploy', ['v3'], { data: 'node: [unclosed\n' })
    assert.is(broken.error?.code, 'config_parse')
    assert.match(broken.error!.message, /line \d+/)
    const other = await call(c, 'ship1', 'config.deploy', ['v4'], { data: original.replace('name: ship1', 'name: ship9') })
    assert.is(other.error?.code, 'config_node_mismatch')
    assert.is(fs.readFileSync(file, 'utf8'), doc)

    // A key that needs a restart is written and reported, not applied.
    const dep5 = record(await call(c, 'ship1', 'config.deploy', ['v5'], { data: `${doc}delivery:\n  maxOutboxBytes: 1048576\n` }))
    assert.equal(dep5.changed, ['delivery.maxOutboxBytes'])
    assert.equal(dep5.restartNeeded, ['delivery.maxOutboxBytes'])

    // Rollback: the file before v5 comes back; a second one goes back to v5.
    const rb = record(await call(c, 'ship1', 'config.rollback'))
    assert.is(rb.id, 'v1')
    assert.is(fs.readFileSync(file, 'utf8'), doc)
    record(await call(c, 'ship1', 'config.rollback'))
    assert.match(fs.readFileSync(file, 'utf8'), /maxOutboxBytes/)
    // Back to the original through deploy (from the command line, --data @FILE) + rollback.
    const docFile = path.join(c.dir, 'ship1-v6.yaml')
    fs.writeFileSync(docFile, original)
    const cli = spawnSync(process.execPath, [BIN, 'send', '--config', c.node('central').config, '--to', 'ship1', '--data', `@${docFile}`, 'config.deploy', '--', 'v6'], { encoding: 'utf8' })
    assert.is(cli.status, 0, cli.stderr)
    // changed / restartNeeded compare with the running config: maxOutboxBytes was never taken
    // over (it needs a restart), so going back to the original needs no restart.
    const v6 = JSON.parse(cli.stdout) as { changed: string[]; restartNeeded: string[] }
    assert.equal(v6.changed, ['methods.commands'])
    assert.equal(v6.restartNeeded, [])
    assert.is((await call(c, 'ship1', 'cli.named', ['greet'])).error?.code, 'command_unknown')
    record(await call(c, 'ship1', 'config.rollback'))
    assert.is((await call(c, 'ship1', 'cli.named', ['greet'])).data, 'hello from ship1\n')
  } finally {
    await c.destroy()
  }
})

test('remote config - config.set keeps comments and applies methods.allow at once; config.get reads keys, secrets hidden', async () => {
  const c = await Cluster.create(['ship1', 'ship2'])
  try {
    const file = c.node('ship1').config
    fs.writeFileSync(file, `# ship1, on the roof\n${fs.readFileSync(file, 'utf8')}`)
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    await c.start('ship2')
    const denied = await sendVia(c.node('ship2').socket, [{ toNode: 'ship1', method: 'node.ping' }])
    assert.is((denied.replies[0]!.error as { code: string }).code, 'denied')

    const set = record(await call(c, 'ship1', 'config.set', ['methods.allow', '[{from: [$central, $self]}, {from: [ship2], methods: [node.ping]}, {from: ["*"], methods: [reply.*, error.log, node.hello, node.pong]}]']))
    assert.equal(set.changed, ['methods.allow'])
    assert.equal(set.restartNeeded, [])
    assert.match(fs.readFileSync(file, 'utf8'), /^# ship1, on the roof\n/)
    const ok = await sendVia(c.node('ship2').socket, [{ toNode: 'ship1', method: 'node.ping' }])
    assert.not.ok(ok.replies[0]!.error, JSON.stringify(ok.replies))

    // A schedule added remotely starts at once.
    const sched = record(await call(c, 'ship1', 'config.set', ['schedules', '[{cron: "* * * * * *", method: node.ping, toNode: central, directory: sched, fileName: ping.log}]']))
    assert.equal(sched.restartNeeded, [])
    const pingLog = path.join(c.node('central').dataDir, 'sched', 'ship1', 'ping.log')
    const end = Date.now() + 15_000
    while (!fs.existsSync(pingLog)) {
      if (Date.now() > end) throw new Error(`no ${pingLog}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    assert.match(fs.readFileSync(pingLog, 'utf8'), /pong ship1/)
    record(await call(c, 'ship1', 'config.set', ['schedules', '[]']))

    // A value of the wrong type is refused and the file stays as it was.
    const text = fs.readFileSync(file, 'utf8')
    const bad = await call(c, 'ship1', 'config.set', ['delivery.retries', 'lots'])
    assert.is(bad.error?.code, 'config_invalid')
    // It names the key and the value given, not a line of an edited copy that was never written.
    assert.ok(bad.error?.message.includes('delivery.retries'), bad.error?.message)
    assert.not.ok(/\(line \d+\)|probe/.test(bad.error?.message ?? ''), bad.error?.message)
    assert.ok(bad.error?.message.includes(`${file} is unchanged`), bad.error?.message)
    assert.is(fs.readFileSync(file, 'utf8'), text)
    assert.is((await call(c, 'ship1', 'config.set', ['delivery.nope', '1'])).error?.code, 'config_key')

    const port = record(await call(c, 'ship1', 'config.set', ['transport.token', 'new-token']))
    assert.equal(port.restartNeeded, ['transport.token'])
    assert.is(JSON.parse((await call(c, 'ship1', 'config.get', ['delivery.retries'])).data!), 10)
    const whole = JSON.parse((await call(c, 'ship1', 'config.get')).data!) as { transport: { token: string }; node: { name: string } }
    assert.is(whole.node.name, 'ship1')
    assert.is(whole.transport.token, '(set)')
    const fromFile = JSON.parse((await call(c, 'ship1', 'config.get', ['--file', '--secrets', 'transport.token'])).data!) as string
    assert.is(fromFile, 'new-token')

    // ship2 may ping ship1 but not configure it.
    const r = await sendVia(c.node('ship2').socket, [{ toNode: 'ship1', method: 'config.set', methodArgs: ['delivery.retries', '1'] }])
    assert.is((r.replies[0]!.error as { code: string }).code, 'denied')
  } finally {
    await c.destroy()
  }
})

test('remote config - agent.restart: ship1 exits 75 under a service manager, comes back, and what was sent meanwhile arrives', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    const first = await c.start('ship1', true, { OUTPOST_RESTART: 'exit' })
    const r = record(await call(c, 'ship1', 'agent.restart'))
    assert.equal(r.restarting, true)
    assert.is(await first.exited, 75)
    // Sent while ship1 is down: waits in central's outbox.
    const pending = sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo after restart'] }], { ms: 30_000 })
    await new Promise((resolve) => setTimeout(resolve, 500))
    await c.start('ship1', true, { OUTPOST_RESTART: 'exit' })
    const done = await pending
    assert.is(done.replies[0]?.data, 'after restart\n', JSON.stringify(done))
  } finally {
    await c.destroy()
  }
})

test('remote config - agent.restart without a service manager starts its successor itself (--pid-file follows it)', async () => {
  const c = await Cluster.create(['ship1'])
  const pidFile = path.join(c.dir, 'ship1.pid')
  let successor: number | undefined
  try {
    await c.startHub()
    await c.start('central')
    const n = c.node('ship1')
    const env = { INVOCATION_ID: '', OUTPOST_RESTART: 'exec' }
    const p = new Proc(['agent', '--config', n.config, '--pid-file', pidFile], { env })
    n.proc = p
    await waitConnected(n.socket)
    assert.is(fs.readFileSync(pidFile, 'utf8').trim(), String(p.child.pid))
    // A second copy with the same pid file is refused.
    const twin = new Proc(['agent', '--config', n.config, '--pid-file', pidFile], { env })
    assert.is(await twin.exited, 1)
    assert.match(twin.output, /pid_file_in_use/)

    record(await call(c, 'ship1', 'agent.restart'))
    assert.is(await p.exited, 0)
    const end = Date.now() + 15_000
    for (;;) {
      const s = fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8').trim() : ''
      if (/^\d+$/.test(s) && Number(s) !== p.child.pid) { successor = Number(s); break }
      if (Date.now() > end) throw new Error(`no successor pid in ${pidFile}:\n${p.output.slice(-2000)}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await waitConnected(n.socket)
    assert.is((await call(c, 'ship1', 'cli.run', ['echo back'])).data, 'back\n')
    process.kill(successor, 'SIGTERM')
    const gone = Date.now() + 10_000
    while (fs.existsSync(pidFile) && Date.now() < gone) await new Promise((resolve) => setTimeout(resolve, 50))
    assert.not.ok(fs.existsSync(pidFile), 'the pid file is removed at exit')
    successor = undefined
  } finally {
    if (successor !== undefined) try { process.kill(successor, 'SIGKILL') } catch { /* gone */ }
    await c.destroy()
  }
})

test.run()
