/**
 * What a newcomer operator met trying outpost from the README: the exit codes and records
 * docs/cli.md promises when a copy is refused (`cp --json`), when the local agent dies while
 * a command waits on it, when `outpost up --port` is given with a file already there, and the
 * restart advice `config set` gives for a node inside `outpost up`.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, Proc, editYaml, freePort, section, tmpDir } from '../fixtures/cluster'
import { runCli } from '../fixtures/run-cli'

const lines = (s: string): Record<string, unknown>[] => s.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)

test('cp --json - a copy the receiver refuses ends in an {"error"} record, not {"done":true}, and exits 3; an unknown node is refused naming cp / shell, not send', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const src = path.join(c.dir, 'a.bin')
    fs.writeFileSync(src, 'hello')
    // /tmp is outside ship1's files.roots (default <dataDir>/files): file_outside.
    const r = await runCli(['cp', '--json', '--config', c.node('central').config, src, `ship1:${path.join(c.dir, 'outside.bin')}`], c.dir)
    assert.is(r.code, 3, r.stdout + r.stderr)
    const recs = lines(r.stdout)
    const last = recs[recs.length - 1]!
    assert.equal(Object.keys(last), ['error'], `the last record: ${JSON.stringify(last)}`)
    assert.is((last.error as { code: string }).code, 'file_outside')
    assert.not.ok(recs.some((x) => x.done === true), 'no {"done":true} for a copy that failed')
    assert.not.ok(fs.existsSync(path.join(c.dir, 'outside.bin')))
    // A node central never heard of: the refusal names the command that was run, not `send`.
    const typo = await runCli(['cp', '--config', c.node('central').config, src, 'shipp1:/tmp/x'], c.dir)
    assert.is(typo.code, 2, typo.stderr)
    assert.match(typo.stderr, /^outpost: cp: shipp1 is not a node central has heard of/)
    const shell = await runCli(['shell', '--config', c.node('central').config, 'shipp1', '--', 'true'], c.dir)
    assert.is(shell.code, 2, shell.stderr)
    assert.match(shell.stderr, /^outpost: shell: shipp1 is not a node central has heard of/)
  } finally {
    await c.destroy()
  }
})

test('send - the local agent killed while send waits: agent_lost, exit 1 (not not_delivered, exit 3: the command ran)', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    const central = await c.start('central')
    await c.start('ship1')
    const send = new Proc(['send', '--config', c.node('central').config, '--to', 'ship1', 'cli.stream', '--', 'echo started; sleep 3'], { cwd: c.dir })
    await send.waitFor(/started/, 20_000)
    await central.stop('SIGKILL')
    const code = await send.exited
    assert.is(code, 1, send.output)
    assert.match(send.output, /\[agent_lost\]/)
    assert.not.match(send.output, /not_delivered/)
  } finally {
    await c.destroy()
  }
})

test('outpost up --port - moves the hub of an existing file to that port (written back); config set there does not offer agent.restart', async () => {
  const dir = tmpDir('outpost-up-port-')
  const [first, second] = [await freePort(), await freePort()]
  let up = new Proc(['up', '--port', String(first)], { cwd: dir })
  try {
    await up.waitFor(/Ctrl-C stops/, 20_000)
    await up.stop('SIGINT')
    // The file is there now; another port is asked for.
    up = new Proc(['up', '--port', String(second)], { cwd: dir })
    await up.waitFor(/Ctrl-C stops/, 20_000)
    assert.match(up.output, `hub on 127.0.0.1:${second}`)
    const text = fs.readFileSync(path.join(dir, 'outpost.yaml'), 'utf8')
    assert.match(text, `listen: 127.0.0.1:${second}`)
    assert.match(text, `tcp://127.0.0.1:${second}`)
    assert.match(text, '# not the default', 'the comments up wrote are kept')
    const hi = await runCli(['send', '--to', 'local', 'cli.run', '--', 'echo hi'], dir)
    assert.is(hi.code, 0, hi.stderr)
    // A key that needs a restart: central runs inside `outpost up`, where agent.restart is refused.
    const set = await runCli(['config', 'set', 'api.token', 'a'.repeat(64)], dir)
    assert.is(set.code, 0, set.stderr)
    assert.match(set.stdout, 'needs a restart for: api.token')
    assert.not.match(set.stdout, 'agent.restart')
    assert.match(set.stdout, 'start it again')
    const json = await runCli(['config', 'set', '--json', 'api.token', 'b'.repeat(64)], dir)
    assert.is((JSON.parse(json.stdout) as { running: { restartable: boolean } }).running.restartable, false)
    // A second `up` in the same folder: its nodes' data is locked by the first. It ends (it hung,
    // its hub listening) and leaves the file's port alone.
    const third = await freePort()
    const again = new Proc(['up', '--port', String(third)], { cwd: dir })
    const ended = await Promise.race([again.exited, new Promise((r) => setTimeout(() => r('still running after 30 s'), 30_000))])
    await again.stop('SIGKILL')
    assert.is(ended, 1, again.output)
    assert.match(again.output, '[locked]')
    assert.match(fs.readFileSync(path.join(dir, 'outpost.yaml'), 'utf8'), `listen: 127.0.0.1:${second}`)
    // A bad port is a usage error before anything starts.
    const bad = await runCli(['up', '--port', '70000'], dir)
    assert.is(bad.code, 2, bad.stderr)
    assert.match(bad.stderr, '[usage]')
  } finally {
    await up.stop('SIGINT')
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('config set - a wrong value names the key and says the file is unchanged, not a line the file does not have', async () => {
  const dir = tmpDir('outpost-set-value-')
  try {
    const text = 'node: { name: ship1, central: central }\ndataDir: ./ship1\n'
    fs.writeFileSync(path.join(dir, 'outpost.yaml'), text)
    const r = await runCli(['config', 'set', 'delivery.retries', 'abc'], dir)
    assert.is(r.code, 2, r.stderr)
    assert.match(r.stderr, 'delivery.retries must be a whole number, got "abc"')
    assert.not.match(r.stderr, /\(line \d+\)/, 'the file has 2 lines: no line of it is wrong')
    assert.match(r.stderr, 'is unchanged) [config_invalid]')
    assert.is(fs.readFileSync(path.join(dir, 'outpost.yaml'), 'utf8'), text)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('HTTP API - what the CLI sent over the socket is in /v1/requests and /v1/messages/:id with its method (it was "")', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    const port = await freePort()
    const token = 'f'.repeat(64)
    editYaml(c.node('central').config, (d) => { Object.assign(section(d, 'api'), { http: `127.0.0.1:${port}`, token }) })
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const r = await runCli(['send', '--config', c.node('central').config, '--to', 'ship1', 'cli.run', '--', 'echo hi'], c.dir)
    assert.is(r.code, 0, r.stderr)
    const id = /accepted (\S+)/.exec(r.stderr)![1]!
    const get = async (p: string): Promise<Record<string, unknown>> => (await (await fetch(`http://127.0.0.1:${port}${p}`, { headers: { authorization: `Bearer ${token}` } })).json()) as Record<string, unknown>
    const list = (await get('/v1/requests?toNode=ship1')).requests as { id: string; method: string; acceptedAt?: number }[]
    const row = list.find((x) => x.id === id)
    assert.ok(row, JSON.stringify(list))
    assert.is(row.method, 'cli.run')
    assert.type(row.acceptedAt, 'number')
    assert.is((await get(`/v1/messages/${id}`)).method, 'cli.run')
  } finally {
    await c.destroy()
  }
})

test.run()
