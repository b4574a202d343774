/**
 * Self-upgrade between real single binaries built from this tree with different versions (the
 * same cached base, so each build is quick), through a version endpoint on loopback, with a hub
 * and an agent under a miniature service manager.
 */
import { createHash, generateKeyPairSync } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { hashToken } from '../../src/hub'
import { signRelease, type Release } from '../../src/upgrade/release'
import { BinProc, ROOT, Supervisor, VERSION, binary, buildVariant, runAsync, serve, tmpDir } from './helpers'

const work = tmpDir('outpost-upgrade-e2e-')
const [maj, min, patch] = VERSION.split(/[.-]/).map(Number) as [number, number, number]
const NEXT = `${maj}.${min}.${patch + 1}`
const BROKEN = `${maj}.${min}.${patch + 2}`
const keys = generateKeyPairSync('ed25519')
const publicKey = keys.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64')
const privatePem = keys.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
const otherPem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
const sha = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex')

let server: Awaited<ReturnType<typeof serve>>

/** A release folder `name` holding `file` as outpost-linux-x64 and a version.json. */
function release(name: string, version: string, file: string, o: { sha256?: string; key?: string } = {}): string {
  const dir = path.join(work, 'www', name)
  fs.mkdirSync(dir, { recursive: true })
  fs.copyFileSync(file, path.join(dir, 'outpost-linux-x64'))
  const r: Release = { version, assets: { 'linux-x64': { url: 'outpost-linux-x64', sha256: o.sha256 ?? sha(file) } } }
  r.signature = signRelease(r, o.key ?? privatePem)
  fs.writeFileSync(path.join(dir, 'version.json'), JSON.stringify(r))
  return `${server.url}/${name}/version.json`
}

function installAt(name: string): string {
  const dir = path.join(work, name)
  fs.mkdirSync(dir, { recursive: true })
  fs.copyFileSync(binary('x64'), path.join(dir, 'outpost'))
  fs.chmodSync(path.join(dir, 'outpost'), 0o755)
  return path.join(dir, 'outpost')
}

function config(file: string, url: string, extra = ''): string {
  fs.writeFileSync(file, `node: { name: n1, central: n1 }\ndataDir: ${JSON.stringify(path.join(path.dirname(file), 'data'))}\n${extra}upgrade: { url: "${url}", publicKey: "${publicKey}", allowHttp: true, rollbackAfter: 8 }\n`)
  return file
}

async function versionOf(file: string): Promise<string> {
  return (JSON.parse((await runAsync(file, ['version', '--json'])).stdout) as { version: string }).version
}

let next = ''
let broken = ''

test.before(async () => {
  fs.mkdirSync(path.join(work, 'www'), { recursive: true })
  server = await serve(path.join(work, 'www'))
  next = buildVariant(path.join(work, 'build-next'), NEXT)
  broken = buildVariant(path.join(work, 'build-broken'), BROKEN, path.join(ROOT, 'test', 'fixtures', 'exits-at-once.ts'))
})
test.after(async () => { await server.close() })

test('upgrade e2e - --check reports the next version; plain http is refused without allowHttp', async () => {
  const bin = installAt('check')
  const url = release('next', NEXT, next)
  const cfg = config(path.join(path.dirname(bin), 'outpost.yaml'), url)
  const r = await runAsync(bin, ['upgrade', '--check', '--config', cfg])
  assert.is(r.code, 0, r.stderr)
  assert.match(r.stdout, `${NEXT} is available`)
  fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace('allowHttp: true', 'allowHttp: false'))
  const h = await runAsync(bin, ['-u', '--check', '--config', cfg])
  assert.is(h.code, 2)
  assert.match(h.stderr, 'upgrade_insecure')
})

test('upgrade e2e - a tampered binary and a bad signature are refused; the binary is untouched', async () => {
  const bin = installAt('refuse')
  const before = sha(bin)
  const cfg = path.join(path.dirname(bin), 'outpost.yaml')
  config(cfg, release('tampered', NEXT, next, { sha256: sha(broken) }))
  const t = await runAsync(bin, ['upgrade', '--config', cfg], { timeout: 120_000 })
  assert.is(t.code, 1, t.stdout)
  assert.match(t.stderr, 'upgrade_hash_mismatch')
  config(cfg, release('badsig', NEXT, next, { key: otherPem }))
  const s = await runAsync(bin, ['--upgrade', '--config', cfg], { timeout: 120_000 })
  assert.is(s.code, 1, s.stdout)
  assert.match(s.stderr, 'upgrade_signature')
  assert.is(sha(bin), before)
  assert.equal(fs.readdirSync(path.dirname(bin)).sort(), ['outpost', 'outpost.yaml'])
})

test('upgrade e2e - a running agent moves to the next version, then rolls back from one that exits at once', async () => {
  const bin = installAt('live')
  const dir = path.dirname(bin)
  const port = await new Promise<number>((resolve) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const { port: p } = s.address() as net.AddressInfo; s.close(() => resolve(p)) }) })
  const hubDir = path.join(work, 'hub')
  fs.mkdirSync(hubDir, { recursive: true })
  fs.writeFileSync(path.join(hubDir, 'hub.yaml'), `dataDir: ${JSON.stringify(path.join(hubDir, 'data'))}\nhub: { listen: "127.0.0.1:${port}", tokens: { n1: "${hashToken('tok')}" } }\n`)
  const hub = new BinProc(binary('x64'), ['hub', '--config', path.join(hubDir, 'hub.yaml')], { cwd: hubDir })
  const cfg = config(path.join(dir, 'outpost.yaml'), release('next', NEXT, next), `transport: { kind: tcp, servers: ["tcp://127.0.0.1:${port}"], token: tok }\n`)
  const data = path.join(dir, 'data')
  const agent = new Supervisor(bin, ['agent', '--config', cfg], dir)
  try {
    await agent.waitFor(() => /connected to/.test(agent.output), 20_000, 'the agent to connect')
    // 1. The next version: installed, the agent restarts into it, connects, the upgrade is kept.
    const up = await runAsync(bin, ['upgrade', '--config', cfg], { timeout: 120_000 })
    assert.is(up.code, 0, up.stderr)
    assert.match(up.stdout, `installed outpost ${NEXT}`)
    assert.match(up.stdout, 'restarting the agent')
    await agent.waitFor(() => agent.output.includes(`upgrade to ${NEXT} confirmed`), 30_000, 'the new version to confirm')
    assert.is(await versionOf(bin), NEXT)
    assert.is(await versionOf(`${bin}.previous`), VERSION)
    assert.not.ok(fs.existsSync(path.join(data, 'upgrade-pending.json')))
    // 2. A version that passes the smoke test but exits at once as an agent: rolled back.
    config(cfg, release('broken', BROKEN, broken), `transport: { kind: tcp, servers: ["tcp://127.0.0.1:${port}"], token: tok }\n`)
    const from = agent.output.length
    const bad = await runAsync(bin, ['upgrade', '--config', cfg], { timeout: 120_000 })
    assert.is(bad.code, 0, bad.stderr)
    assert.match(bad.stdout, `installed outpost ${BROKEN}`)
    await agent.waitFor(() => agent.output.slice(from).includes('exits-at-once: failing on purpose'), 20_000, 'the broken binary to run')
    await agent.waitFor(() => /was rolled back/.test(agent.output.slice(from)), 40_000, 'the rollback')
    assert.is(await versionOf(bin), NEXT, 'the binary is the last good one again')
    assert.is(await versionOf(`${bin}.failed`), BROKEN, 'the failed one is kept for a look')
    await agent.waitFor(() => /connected to/.test(agent.output.slice(agent.output.lastIndexOf('was rolled back'))), 20_000, 'the restored agent to connect')
    const log = fs.readFileSync(path.join(data, 'upgrade-watchdog.log'), 'utf8')
    assert.match(log, 'rolled back')
  } finally {
    await agent.stop()
    await hub.stop()
  }
})

test.run()
