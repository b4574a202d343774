/**
 * The config file as an operator handles it in the first hour, with real processes: `outpost
 * config set|unset` beside a running node, `api.http: 8080`, flags written back by `agent`,
 * comments kept by `unset`, and the file `outpost up` writes (and leaves behind in a checkout).
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parseConfig, defaultConfig } from '../../src/config'
import { diffConfig } from '../../src/config/apply'
import { defaultsContext } from '../../src/config/schema'
import { Cluster, Proc, freePort, sendVia, status, tmpDir } from '../fixtures/cluster'
import { runCli, type CliRun } from '../fixtures/run-cli'

type Run = CliRun

/** The CLI as a user runs it, in its own process (async: the nodes under test keep running). */
function outpost(args: string[], cwd: string = tmpDir('outpost-cfgcli-')): Promise<Run> {
  return runCli(args, cwd)
}

async function named(socket: string, name: string): Promise<Record<string, unknown>> {
  const r = await sendVia(socket, [{ toNode: 'ship1', method: 'cli.named', methodArgs: [name] }], { ms: 15_000 })
  const reply = r.replies.find((x) => x.final === true) ?? r.replies[0]
  assert.ok(reply, `no reply to cli.named ${name}`)
  return reply
}

async function waitSocket(socket: string, proc: Proc, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while ((await status(socket).catch(() => undefined)) === undefined) {
    if (Date.now() > end || proc.child.exitCode !== null) throw new Error(`no node on ${socket}:\n${proc.output.slice(-3000)}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

test('config cli - set and unset on the machine of a running node apply live keys at once and name the ones that need a restart', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('ship1')
    const ship1 = c.node('ship1')
    assert.is((await named(ship1.socket, 'hi')).error !== undefined, true, 'no command hi yet')

    const set = await outpost(['config', 'set', 'methods.commands', '{hi: "echo hi-there"}', '--config', ship1.config])
    assert.is(set.code, 0, set.stderr)
    assert.match(set.stdout, `methods.commands = {"hi":"echo hi-there"}: written to ${ship1.config}`)
    assert.match(set.stdout, 'the running node ship1 applied at once: methods.commands')
    assert.not.match(set.stdout, 'restart')
    assert.is((await named(ship1.socket, 'hi')).data, 'hi-there\n', 'the running node took the new command without a restart')

    const token = await outpost(['config', 'set', 'transport.token', 'another-token', '--config', ship1.config, '--json'])
    assert.is(token.code, 0, token.stderr)
    const j = JSON.parse(token.stdout) as { path: string; running: { node: string; applied: boolean; changed: string[]; restartNeeded: string[]; restartable: boolean } }
    assert.is(j.path, ship1.config)
    assert.equal(j.running, { node: 'ship1', socket: ship1.socket, applied: true, changed: ['transport.token'], restartNeeded: ['transport.token'], restartable: true })
    const back = await outpost(['config', 'set', 'transport.token', ship1.token, '--config', ship1.config])
    assert.match(back.stdout, 'the running node ship1 has this value already')

    const tok = await outpost(['config', 'set', 'transport.token', 'x', '--config', ship1.config])
    assert.match(tok.stdout, 'the running node ship1 needs a restart for: transport.token')
    assert.match(tok.stdout, `written to ${ship1.config}`)
    await outpost(['config', 'set', 'transport.token', ship1.token, '--config', ship1.config])

    const unset = await outpost(['config', 'unset', 'methods.commands', '--config', ship1.config])
    assert.is(unset.code, 0, unset.stderr)
    assert.match(unset.stdout, `methods.commands unset (its default applies): written to ${ship1.config}`)
    assert.match(unset.stdout, 'the running node ship1 applied at once: methods.commands')
    assert.is(((await named(ship1.socket, 'hi')).error as { code: string }).code, 'command_unknown')

    // A second file naming the same data directory: that node runs from the first file.
    const other = path.join(c.dir, 'other.yaml')
    fs.copyFileSync(ship1.config, other)
    const o = await outpost(['config', 'set', 'delivery.retries', '3', '--config', other])
    assert.is(o.code, 0, o.stderr)
    assert.match(o.stdout, `the node ship1 running here (${ship1.socket}) reads ${ship1.config}, not this file: nothing applied to it`)

    // No node running: the file is edited as before, and nothing else is said.
    await ship1.proc!.stop()
    const off = await outpost(['config', 'set', 'delivery.retries', '4', '--config', ship1.config])
    assert.is(off.code, 0, off.stderr)
    assert.is(off.stdout, `delivery.retries = 4: written to ${ship1.config}\n`)
    assert.match(fs.readFileSync(ship1.config, 'utf8'), /retries: 4/)
  } finally {
    await c.destroy()
  }
})

test('config cli - api.http: a bare number is a port on 127.0.0.1 (a client connects there, not on another address)', async () => {
  const dir = tmpDir('outpost-cfgcli-')
  try {
    const port = await freePort()
    const file = path.join(dir, 'outpost.yaml')
    fs.writeFileSync(file, `node: { name: ship1 }\ndataDir: ${path.join(dir, 'data')}\ntransport: { servers: ["tcp://127.0.0.1:${await freePort()}"] }\napi:\n  http: ${port}\n  token: t0ken-for-the-test\n`)
    assert.is((await outpost(['config', 'get', 'api.http', '--config', file])).stdout, `${port}\n`)
    const agent = new Proc(['agent', '--config', file])
    try {
      await agent.waitFor(new RegExp(`HTTP API listening on http://127\\.0\\.0\\.1:${port}`))
      const res = await fetch(`http://127.0.0.1:${port}/v1/status`, { headers: { authorization: 'Bearer t0ken-for-the-test' } })
      assert.is(res.status, 200)
      assert.is(((await res.json()) as { node: string }).node, 'ship1')
      // Any other address of this machine is refused: the port is bound to loopback only.
      const elsewhere = Object.values(os.networkInterfaces()).flat().find((a) => a !== undefined && !a.internal && a.family === 'IPv4')
      if (elsewhere !== undefined) {
        const refused = await new Promise<string>((resolve) => {
          const s = net.connect(port, elsewhere.address, () => { s.destroy(); resolve('connected') })
          s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
        })
        assert.is(refused, 'ECONNREFUSED', `${elsewhere.address}:${port}`)
      }
    } finally {
      await agent.stop()
    }
    // `config set api.http 8081` stores the number, and the file is valid.
    const set = await outpost(['config', 'set', 'api.http', '8081', '--config', file])
    assert.is(set.code, 0, set.stderr)
    assert.match(fs.readFileSync(file, 'utf8'), /http: 8081\n/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('config cli - flags written back by agent keep one-line flow maps on one line, and their padding', async () => {
  const dir = tmpDir('outpost-cfgcli-')
  try {
    const hub = await freePort()
    const servers = `tcp://127.0.0.1:${hub}, tcp://127.0.0.2:${hub}`
    // The same file written by two hands: yaml's `{ a: 1 }` and the tight `{a: 1}`.
    for (const [pad, end] of [[' ', ' '], ['', '']] as const) {
      const file = path.join(dir, 'ship1.yaml')
      const lines = [
        '# ship1, on the roof',
        `node: {${pad}name: ship1, central: central${end}} # who it is`,
        // Longer than 80 characters: stays one line too.
        `transport: {${pad}kind: tcp, servers: [${pad}${servers}${end}], token: 0123456789abcdef0123456789abcdef${end}}`,
        `delivery: {${pad}retries: 7${end}}`,
      ]
      fs.writeFileSync(file, lines.join('\n') + '\n')
      const data = path.join(dir, 'data')
      const agent = new Proc(['agent', '--config', file, '--data-dir', data, '--log-level', 'debug'])
      try {
        await waitSocket(path.join(data, 'outpost.sock'), agent)
      } finally {
        await agent.stop()
      }
      assert.is(fs.readFileSync(file, 'utf8'), [...lines, 'log:', '  level: debug', `dataDir: ${data}`, ''].join('\n'))
      // A flag written into an existing flow map: the map stays one line.
      fs.writeFileSync(file, [...lines, `log: {${pad}level: info${end}}`, `dataDir: ${data}`, ''].join('\n'))
      const again = new Proc(['agent', '--config', file, '--log-level', 'warn'])
      try {
        await waitSocket(path.join(data, 'outpost.sock'), again)
      } finally {
        await again.stop()
      }
      assert.is(fs.readFileSync(file, 'utf8'), [...lines, `log: {${pad}level: warn${end}}`, `dataDir: ${data}`, ''].join('\n'))
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('config cli - unset keeps the comment above the key and the one after its value', async () => {
  const dir = tmpDir('outpost-cfgcli-')
  try {
    const file = path.join(dir, 'outpost.yaml')
    fs.writeFileSync(file, [
      '# my fleet',
      'delivery:',
      '  # slow satellite link: be patient',
      '  ackTimeout: 30  # measured 2026-11',
      '  # a night without link is normal',
      '  ttl: 172800  # two days',
      'log:',
      '  level: info',
      '',
    ].join('\n'))
    const a = await outpost(['config', 'unset', 'delivery.ackTimeout'], dir)
    assert.is(a.code, 0, a.stderr)
    assert.is(fs.readFileSync(file, 'utf8'), [
      '# my fleet',
      'delivery:',
      '  # slow satellite link: be patient',
      '  # measured 2026-11',
      '  # a night without link is normal',
      '  ttl: 172800  # two days', // a line the edit does not change stays as written, spacing included
      'log:',
      '  level: info',
      '',
    ].join('\n'))
    // The last key of a section: the section stays as `{}` (all defaults), its comments above it.
    assert.is((await outpost(['config', 'unset', 'delivery.ttl'], dir)).code, 0)
    const emptied = [
      '# my fleet',
      '# slow satellite link: be patient',
      '# measured 2026-11',
      '# a night without link is normal',
      '# two days',
      'delivery: {}',
      'log:',
      '  level: info',
      '',
    ]
    assert.is(fs.readFileSync(file, 'utf8'), emptied.join('\n'))
    assert.is((await outpost(['config', 'get', 'delivery.ttl'], dir)).stdout, '86400\n')
    // And a key set there again goes into it, leaving the comments and the next section alone.
    assert.is((await outpost(['config', 'set', 'delivery.retries', '7'], dir)).code, 0)
    assert.is(fs.readFileSync(file, 'utf8'), emptied.join('\n').replace('delivery: {}', 'delivery: { retries: 7 }'))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('config cli - the file outpost up writes marks every value that is not the default, and .gitignore covers what up leaves', async () => {
  const dir = tmpDir('outpost-cfgcli-')
  try {
    // The checkout's .gitignore in a scratch repository: what `npm start` leaves must be ignored.
    assert.is(spawnSync('git', ['init', '-q'], { cwd: dir }).status, 0)
    fs.copyFileSync(path.join(__dirname, '..', '..', '.gitignore'), path.join(dir, '.gitignore'))
    const port = await freePort()
    const up = new Proc(['up', '--port', String(port)], { cwd: dir })
    try {
      await up.waitFor(/Ctrl-C stops/, 20_000)
      // The quickstart's first commands, and a config.set that keeps outpost.yaml.previous.
      const send = await outpost(['send', '--to', 'local', 'cli.run', '--', 'echo hello'], dir)
      assert.is(send.code, 0, send.stderr)
      const set = await outpost(['send', '--to', 'central', 'config.set', '--', 'delivery.retries', '9'], dir)
      assert.is(set.code, 0, set.stderr)
      const live = await outpost(['config', 'set', 'methods.timeout', '120'], dir)
      assert.match(live.stdout, 'the running node central applied at once: methods.timeout')
    } finally {
      await up.stop('SIGINT')
    }
    assert.ok(fs.existsSync(path.join(dir, 'outpost.yaml.previous')))
    const git = spawnSync('git', ['status', '--porcelain', '--untracked-files=all'], { cwd: dir, encoding: 'utf8' })
    assert.is(git.stdout, '?? .gitignore\n', 'everything else is ignored')

    const text = fs.readFileSync(path.join(dir, 'outpost.yaml'), 'utf8')
    const ctx = defaultsContext()
    const changed = diffConfig(defaultConfig(ctx), parseConfig(text, 'outpost.yaml', ctx), dir).changed
    // delivery.retries and methods.timeout were set afterwards; the rest up chose.
    assert.equal(changed.filter((k) => k !== 'delivery.retries' && k !== 'methods.timeout'), ['api.signingKey', 'dataDir', 'hello.interval', 'hub.listen', 'hub.tokens', 'node.name', 'security.requireSignatures', 'security.trustedKeys', 'transport.servers', 'transport.token'])
    const header = /those marked "not the default": ([^\n]*)\.\n/.exec(text)
    assert.ok(header, text.slice(0, 400))
    assert.equal(header[1]!.split(', ').sort(), ['api.signingKey', 'dataDir', 'hello.interval', 'hub.listen', 'hub.tokens', 'node.name', 'security.requireSignatures', 'security.trustedKeys', 'transport.servers', 'transport.token'])
    assert.is(text.match(/# not the default \(/g)?.length, 10)
    assert.match(text, /\n {2}listen: 127\.0\.0\.1:\d+ # not the default \(0\.0\.0\.0:7430\)/)
    assert.match(text, /\n {2}interval: 10 # not the default \(30\)/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('config cli - a config file that cannot be read (a directory by that name) is a config error: exit 2, config_unreadable', async () => {
  const dir = tmpDir()
  fs.mkdirSync(path.join(dir, 'outpost.yaml'))
  for (const args of [['config', 'show', '--config', path.join(dir, 'outpost.yaml')], ['status'], ['agent']]) {
    const r = await runCli(args, dir)
    assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, /config: cannot read .*outpost\.yaml: EISDIR.*\[config_unreadable\]/)
  }
})

test.run()
