import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { PROTO_NAMES } from '../chaos/fuzz'

// The real entry point, as `npx outpost` runs it after `npm ci` (which builds dist/).
const BIN = path.join(__dirname, '..', '..', 'bin', 'outpost.cjs')

function outpost(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const env = { ...process.env, ...opts.env }
  delete env.OUTPOST_CONFIG
  delete env.CONFIG
  Object.assign(env, opts.env)
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-cli-')), env, encoding: 'utf8' })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

test('cli - --help lists the commands and exits 0', () => {
  const r = outpost(['--help'])
  assert.is(r.code, 0)
  for (const c of ['agent', 'hub', 'up', 'send', 'nodes', 'status', 'call', 'config', 'keys', 'upgrade', 'version']) assert.match(r.stdout, new RegExp(`\\n  ${c} `))
})

test('cli - every command answers --help with exit 0', () => {
  for (const c of ['agent', 'hub', 'up', 'send', 'nodes', 'jobs', 'job', 'status', 'call', 'cp', 'transfers', 'config', 'keys', 'upgrade', 'repl', 'shell', 'tunnel', 'version']) {
    const r = outpost([c, '--help'])
    assert.is(r.code, 0, `${c} --help: ${r.stderr}`)
    assert.match(r.stdout, /Usage: outpost/)
  }
})

test('cli - version prints the package version, as text and as JSON', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }
  assert.match(outpost(['version']).stdout, `outpost ${pkg.version}`)
  assert.match(outpost(['--version']).stdout, `outpost ${pkg.version}`)
  assert.is((JSON.parse(outpost(['version', '--json']).stdout) as { version: string }).version, pkg.version)
})

test('cli - an unknown command or flag is a usage error (exit 2)', () => {
  const a = outpost(['frobnicate'])
  assert.is(a.code, 2)
  assert.match(a.stderr, /unknown command 'frobnicate'/)
  const b = outpost(['config', 'show', '--bogus'])
  assert.is(b.code, 2)
  assert.match(b.stderr, /bogus/)
  // A bad option points at its command's help.
  const c = outpost(['send', '--bogus', 'x'])
  assert.is(c.code, 2)
  assert.is(c.stderr, "outpost: Unknown option '--bogus'; run `outpost send --help` [usage]\n")
})

test('cli - a config key one letter off is refused with the key it was likely meant to be', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-cli-'))
  try {
    fs.writeFileSync(path.join(dir, 'outpost.yaml'), 'node:\n  name: ship1\n')
    for (const [args, meant] of [[['get', 'delivery.retrys'], 'delivery.retries'], [['set', 'delivry.retries', '3'], 'delivery.retries'], [['get', 'hello.intervall'], 'hello.interval']] as const) {
      const r = outpost(['config', ...args], { cwd: dir })
      assert.is(r.code, 2, r.stderr)
      assert.match(r.stderr, `did you mean '${meant}'?`)
    }
    // Nothing near: no guess.
    assert.not.match(outpost(['config', 'get', 'zzz.qqq'], { cwd: dir }).stderr, 'did you mean')
    assert.is(fs.readFileSync(path.join(dir, 'outpost.yaml'), 'utf8'), 'node:\n  name: ship1\n')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('cli - a command or config key named like an Object.prototype member is unknown: exit 2, a coded message, no stack trace', () => {
  for (const name of PROTO_NAMES) {
    const r = outpost([name])
    assert.is(r.code, 2, `outpost ${name}: ${r.stderr}`)
    assert.is(r.stderr, `outpost: unknown command '${name}'; run \`outpost --help\` [usage]\n`)
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-cli-'))
  fs.writeFileSync(path.join(dir, 'outpost.yaml'), 'hub:\n  tokens:\n    constructor: sha256:aa\n')
  for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
    const key = outpost(['config', 'get', name], { cwd: dir })
    assert.is(key.code, 2, key.stderr)
    assert.match(key.stderr, `'${name}' is not a config key`)
    // In a map: what the file holds, else nothing (null), never what Object.prototype has.
    for (const json of [[], ['--json']]) {
      const r = outpost(['config', 'get', `hub.tokens.${name}`, ...json], { cwd: dir })
      assert.is(r.code, 0, r.stderr)
      assert.is(r.stdout, name === 'constructor' ? (json.length > 0 ? '"sha256:aa"\n' : 'sha256:aa\n') : 'null\n', `config get hub.tokens.${name} ${json.join('')}`)
    }
  }
})

test('cli - each config subcommand has its own --help, and its examples work pasted', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-cli-'))
  assert.is(outpost(['config', 'init'], { cwd: dir }).code, 0)
  for (const sub of ['show', 'path', 'get', 'set', 'unset', 'init']) {
    const r = outpost(['config', sub, '--help'], { cwd: dir })
    assert.is(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`^Usage: outpost config ${sub}\\b`))
    assert.not.match(r.stdout, /SUBCOMMAND/, `${sub} --help is its own, not the whole config help`)
    // Every example line runs as written (a shell's quoting of '...' undone here).
    for (const line of r.stdout.split('\n').filter((l) => l.startsWith('  outpost config '))) {
      const args = line.trim().split(/ (?=(?:[^']*'[^']*')*[^']*$)/).slice(1).map((a) => a.replace(/^'(.*)'$/, '$1'))
      const e = outpost(args, { cwd: dir })
      assert.is(e.code, 0, `${line.trim()}: ${e.stderr}`)
    }
  }
})

test('cli - config set stores a YAML scalar, keeps comments, and get reads it back', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-cli-'))
  const file = path.join(dir, 'outpost.yaml')
  fs.writeFileSync(file, '# my fleet\ndelivery:\n  # slow link\n  ackTimeout: 9\n')
  const r = outpost(['config', 'set', 'delivery.retries', '7'], { cwd: dir })
  assert.is(r.code, 0, r.stderr)
  assert.is(fs.readFileSync(file, 'utf8'), '# my fleet\ndelivery:\n  # slow link\n  ackTimeout: 9\n  retries: 7\n')
  assert.is(outpost(['config', 'get', 'delivery.retries'], { cwd: dir }).stdout, '7\n')
  assert.is(outpost(['config', 'get', 'delivery.retries', '--json'], { cwd: dir }).stdout, '7\n')
  assert.is(outpost(['config', 'unset', 'delivery.retries'], { cwd: dir }).code, 0)
  assert.is(outpost(['config', 'get', 'delivery.retries'], { cwd: dir }).stdout, '10\n', 'default again')
})

test('cli - config set refuses a key that does not exist with exit 2 and changes nothing', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-cli-'))
  const file = path.join(dir, 'outpost.yaml')
  fs.writeFileSync(file, 'delivery:\n  retries: 3\n')
  const r = outpost(['config', 'set', 'delivery.retrys', '7'], { cwd: dir })
  assert.is(r.code, 2)
  assert.match(r.stderr, /delivery\.retrys/)
  assert.match(r.stderr, /config_key/)
  const w = outpost(['config', 'set', 'delivery.retries', 'lots'], { cwd: dir })
  assert.is(w.code, 2)
  assert.match(w.stderr, /delivery\.retries must be a whole number/)
  assert.is(fs.readFileSync(file, 'utf8'), 'delivery:\n  retries: 3\n')
})

test('cli - a broken config file exits 2 naming the key and the line', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-cli-'))
  fs.writeFileSync(path.join(dir, 'outpost.yaml'), 'node:\n  name: ship1\ntransport:\n  kind: carrier-pigeon\n')
  const r = outpost(['config', 'show'], { cwd: dir })
  assert.is(r.code, 2)
  assert.match(r.stderr, /transport\.kind must be one of tcp, mqtt, nats, memory, got "carrier-pigeon" \(line 4\)/)
})

test('cli - the config lookup order is --config, $OUTPOST_CONFIG, $CONFIG, ./outpost.yaml', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-cli-'))
  for (const n of ['flag', 'outpost', 'config', 'cwd']) fs.writeFileSync(path.join(dir, n === 'cwd' ? 'outpost.yaml' : `${n}.yaml`), `node:\n  name: from-${n}\n`)
  const env = { OUTPOST_CONFIG: path.join(dir, 'outpost.yaml.unused'), CONFIG: path.join(dir, 'config.yaml') }
  const get = (args: string[], e: NodeJS.ProcessEnv) => outpost(['config', 'get', 'node.name', ...args], { cwd: dir, env: e }).stdout.trim()
  assert.is(get(['--config', 'flag.yaml'], { ...env, OUTPOST_CONFIG: path.join(dir, 'outpost.yaml') }), 'from-flag')
  assert.is(get([], { OUTPOST_CONFIG: path.join(dir, 'outpost.yaml'), CONFIG: path.join(dir, 'config.yaml') }), 'from-cwd')
  fs.renameSync(path.join(dir, 'outpost.yaml'), path.join(dir, 'other.yaml'))
  assert.is(get([], { OUTPOST_CONFIG: path.join(dir, 'other.yaml'), CONFIG: path.join(dir, 'config.yaml') }), 'from-cwd')
  assert.is(get([], { CONFIG: path.join(dir, 'config.yaml') }), 'from-config')
  const missing = outpost(['config', 'show'], { cwd: dir, env: { OUTPOST_CONFIG: path.join(dir, 'nope.yaml') } })
  assert.is(missing.code, 2)
  assert.match(missing.stderr, /config_not_found/)
})

test('cli - config init writes a commented file once, and --force rewrites it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-cli-'))
  assert.is(outpost(['config', 'init'], { cwd: dir }).code, 0)
  const text = fs.readFileSync(path.join(dir, 'outpost.yaml'), 'utf8')
  assert.match(text, /# Seconds to wait for an ACK before resending\.\n  ackTimeout: 5/)
  const again = outpost(['config', 'init'], { cwd: dir })
  assert.is(again.code, 2)
  assert.match(again.stderr, /--force/)
  assert.is(outpost(['config', 'init', '--force'], { cwd: dir }).code, 0)
  assert.is(outpost(['config', 'show', '--json'], { cwd: dir }).code, 0)
})

test('cli - repl reads commands from a pipe too: help, a failing command (it goes on), exit', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-cli-'))
  const r = spawnSync(process.execPath, [BIN, 'repl', '--data-dir', dir, '--history', path.join(dir, 'hist')], { cwd: dir, input: 'help\nnodes\nbogus\nexit\n', encoding: 'utf8', env: { ...process.env, OUTPOST_CONFIG: '', CONFIG: '' } })
  assert.is(r.status, 0, r.stderr)
  assert.match(r.stdout, /send \[--to NODE\]/)
  assert.match(r.stderr, /no agent runs for .*\[agent_not_running\]/)
  assert.match(r.stderr, /unknown command 'bogus'/)
})

test('cli - upgrade from the checkout says it needs the single binary (exit 2); -u and --upgrade name it too', () => {
  for (const spelling of ['upgrade', '-u', '--upgrade']) {
    const r = outpost([spelling])
    assert.is(r.code, 2, r.stderr)
    assert.match(r.stderr, /upgrade_unavailable/)
    assert.match(r.stderr, /checkout/)
  }
})

test('cli - send with no node running exits 2 and says where it looked', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-cli-'))
  fs.writeFileSync(path.join(dir, 'outpost.yaml'), `node: { name: solo }\ndataDir: ${JSON.stringify(path.join(dir, 'data'))}\n`)
  const r = outpost(['send', 'node.ping'], { cwd: dir })
  assert.is(r.code, 2)
  assert.match(r.stderr, /no agent runs for .*outpost\.yaml with data dir .* \(there is no socket .*outpost\.sock\)/)
})

test('cli - send --file of a missing file is a usage error (exit 2)', () => {
  const r = outpost(['send', '--file', 'nope.json'])
  assert.is(r.code, 2)
  assert.match(r.stderr, /cannot read --file nope\.json/)
})

test('cli - tunnel refuses a port out of range before it listens (exit 2, usage)', () => {
  for (const spec of ['18770:127.0.0.1:99999', '99999:127.0.0.1:80', '0:127.0.0.1:0']) {
    const r = outpost(['tunnel', 'ship1', spec, '--once'])
    assert.is(r.code, 2, `${spec}: ${r.stderr}`)
    assert.match(r.stderr, /LOCALPORT is 0 to 65535 and PORT 1 to 65535 \[usage\]/)
  }
})

test('cli - tunnel with no agent running says so at once (exit 2, agent_not_running) instead of listening', () => {
  const env = { ...process.env }
  delete env.OUTPOST_CONFIG
  delete env.CONFIG
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-cli-'))
  fs.writeFileSync(path.join(dir, 'outpost.yaml'), `node: { name: solo }\ndataDir: ${JSON.stringify(path.join(dir, 'data'))}\n`)
  const r = spawnSync(process.execPath, [BIN, 'tunnel', 'ship1', '0:127.0.0.1:80', '--once'], { cwd: dir, env, encoding: 'utf8', timeout: 15_000 })
  assert.is(r.status, 2, r.stderr)
  assert.match(r.stderr, /no agent runs for .*outpost\.yaml .*\[agent_not_running\]/)
  assert.not.match(r.stderr, /listening/)
})

test('cli - output into a pipe whose reader has gone (outpost … | head) ends quietly with exit 0, no EPIPE stack trace', async () => {
  const c = spawn(process.execPath, [BIN, 'config', 'show'], { cwd: fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-cli-')), stdio: ['ignore', 'pipe', 'pipe'] })
  c.stdout.destroy()
  let stderr = ''
  c.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number | null>((resolve) => c.on('close', (n) => resolve(n)))
  assert.is(stderr, '')
  assert.is(code, 0)
})

test.run()
