/**
 * install.sh against a release folder served on loopback, into a temporary prefix with
 * --no-service: install, install again, a tampered download, uninstall.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ROOT, VERSION, binary, run, runAsync, serve, tmpDir } from './helpers'

const SCRIPT = path.join(ROOT, 'install.sh')
const release = tmpDir('outpost-release-')
const bin = binary('x64')
fs.copyFileSync(bin, path.join(release, 'outpost-linux-x64'))
const sha = createHash('sha256').update(fs.readFileSync(bin)).digest('hex')
fs.writeFileSync(path.join(release, 'SHA256SUMS'), `${sha}  outpost-linux-x64\n`)
const bad = tmpDir('outpost-release-bad-')
fs.copyFileSync(bin, path.join(bad, 'outpost-linux-x64'))
fs.writeFileSync(path.join(bad, 'SHA256SUMS'), `${'0'.repeat(64)}  outpost-linux-x64\n`)

let server: Awaited<ReturnType<typeof serve>>
const root = tmpDir('outpost-install-')
const dirs = { prefix: path.join(root, 'opt'), config: path.join(root, 'etc'), data: path.join(root, 'data'), bin: path.join(root, 'bin') }
const common = ['--prefix', dirs.prefix, '--config-dir', dirs.config, '--data-dir', dirs.data, '--bin-dir', dirs.bin, '--no-service', '--arch', 'x64']

function install(args: string[]): ReturnType<typeof runAsync> {
  return runAsync('sh', [SCRIPT, ...args], { timeout: 120_000 })
}

test.before(async () => { server = await serve(release) })
test.after(async () => { await server.close() })

test('install.sh - is POSIX sh (sh -n) and shellcheck clean, and answers --help', async () => {
  assert.is(run('sh', ['-n', SCRIPT]).code, 0)
  const sc = run('shellcheck', ['--version'])
  if (sc.code === 0) {
    const r = run('shellcheck', ['-s', 'sh', SCRIPT])
    assert.is(r.code, 0, r.stdout)
  } else {
    console.log('  shellcheck is not installed here; .ci/run installs it')
  }
  const h = await install(['--help'])
  assert.is(h.code, 0)
  assert.match(h.stdout, '--uninstall')
})

test('install.sh - installs from --url, verified, with a config from the flags', async () => {
  const r = await install(['--url', server.url, ...common, '--node-name', 'ship1', '--server', 'tcp://127.0.0.1:7430', '--token', 's3"cr\\et', '--central', 'hq'])
  assert.is(r.code, 0, r.stderr + r.stdout)
  assert.match(r.stdout, 'verified outpost-linux-x64')
  assert.match(run(path.join(dirs.prefix, 'outpost'), ['version']).stdout, `outpost ${VERSION}`)
  assert.match(run(path.join(dirs.bin, 'outpost'), ['version']).stdout, `outpost ${VERSION}`)
  const cfg = path.join(dirs.config, 'outpost.yaml')
  const show = run(path.join(dirs.prefix, 'outpost'), ['config', 'show', '--json', '--config', cfg])
  assert.is(show.code, 0, show.stderr)
  const c = JSON.parse(show.stdout) as { node: { name: string; central: string }; dataDir: string; transport: { kind: string; servers: string[]; token: string } }
  assert.is(c.node.name, 'ship1')
  assert.is(c.node.central, 'hq')
  assert.is(c.dataDir, dirs.data)
  assert.equal(c.transport.servers, ['tcp://127.0.0.1:7430'])
  assert.is(c.transport.token, 's3"cr\\et', 'quotes and backslashes survive into the YAML')
  assert.is(fs.statSync(cfg).mode & 0o077, 0, 'the config holds a token: not readable by others')
})

test('install.sh - running it again keeps the config and the binary works', async () => {
  const cfg = path.join(dirs.config, 'outpost.yaml')
  fs.appendFileSync(cfg, '# edited by the operator\n')
  const r = await install(['--url', server.url, ...common, '--node-name', 'other'])
  assert.is(r.code, 0, r.stderr + r.stdout)
  assert.match(r.stdout, 'keeping the existing')
  assert.match(fs.readFileSync(cfg, 'utf8'), 'edited by the operator')
  assert.match(fs.readFileSync(cfg, 'utf8'), 'ship1')
  assert.is(run(path.join(dirs.prefix, 'outpost'), ['version']).code, 0)
})

test('install.sh - a download that does not match SHA256SUMS is refused and the installed binary stays', async () => {
  const before = createHash('sha256').update(fs.readFileSync(path.join(dirs.prefix, 'outpost'))).digest('hex')
  const badServer = await serve(bad)
  try {
    const r = await install(['--url', badServer.url, ...common])
    assert.is.not(r.code, 0)
    assert.match(r.stderr, 'refusing to install')
  } finally {
    await badServer.close()
  }
  assert.is(createHash('sha256').update(fs.readFileSync(path.join(dirs.prefix, 'outpost'))).digest('hex'), before)
})

test('install.sh - --binary FILE verifies against SHA256SUMS beside it', async () => {
  const r = await install(['--binary', path.join(release, 'outpost-linux-x64'), ...common])
  assert.is(r.code, 0, r.stderr)
  const b = await install(['--binary', path.join(bad, 'outpost-linux-x64'), ...common])
  assert.is.not(b.code, 0)
})

test('install.sh - --uninstall removes binary, link and config but keeps the data', async () => {
  fs.mkdirSync(dirs.data, { recursive: true })
  fs.writeFileSync(path.join(dirs.data, 'keep.me'), 'data')
  const r = await install(['--uninstall', ...common])
  assert.is(r.code, 0, r.stderr)
  assert.not.ok(fs.existsSync(path.join(dirs.prefix, 'outpost')))
  assert.not.ok(fs.existsSync(path.join(dirs.bin, 'outpost')))
  assert.not.ok(fs.existsSync(path.join(dirs.config, 'outpost.yaml')))
  assert.ok(fs.existsSync(path.join(dirs.data, 'keep.me')))
  assert.is((await install(['--uninstall', ...common])).code, 0, 'uninstalling twice is fine')
})

test.run()
