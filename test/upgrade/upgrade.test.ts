/**
 * Self-upgrade, with shell scripts standing in for binaries (they answer `version --json`) and
 * a version endpoint on loopback. The real single binaries go through the same steps in
 * test/package/upgrade.test.ts.
 */
import { createHash, generateKeyPairSync } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { canonicalRelease, compareVersions, parseRelease, publicKeyFrom, signRelease, verifyRelease, type Release } from '../../src/upgrade/release'
import { applyUpgrade, checkUpgrade, type UpgradeOptions } from '../../src/upgrade'
import { onAgentStart, readPending, readRolledBack, runWatchdog, writePending } from '../../src/upgrade/watchdog'
import { scheduleUpgrades } from '../../src/upgrade/schedule'
import { defaultConfig } from '../../src/config'
import { rejectsCode, throwsCode } from '../helpers'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-upgrade-'))
const files = new Map<string, Buffer>()
let base = ''
const server = http.createServer((req, res) => {
  const body = files.get(req.url ?? '')
  if (!body) { res.writeHead(404).end(); return }
  res.writeHead(200, { 'content-length': body.length }).end(body)
})

const keys = generateKeyPairSync('ed25519')
const pubB64 = keys.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64')
const privPem = keys.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
const other = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()

/** A "binary": a script that answers `version --json` with `version`. */
function fakeBinary(version: string, extra = ''): Buffer {
  return Buffer.from(`#!/bin/sh\n${extra}\nif [ "$1" = version ]; then echo '{"version":"${version}"}'; exit 0; fi\nexit 0\n`)
}
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const platform = `linux-${process.arch === 'ppc64' ? 'ppc64le' : process.arch}`

function publish(name: string, version: string, bin: Buffer, opts: { sha256?: string; key?: string | null } = {}): string {
  files.set(`/${name}/bin`, bin)
  const r: Release = { version, assets: { [platform]: { url: 'bin', sha256: opts.sha256 ?? sha(bin) } } }
  if (opts.key !== null) r.signature = signRelease(r, opts.key ?? privPem)
  files.set(`/${name}/version.json`, Buffer.from(JSON.stringify(r)))
  return `${base}/${name}/version.json`
}

function installed(version: string): string {
  const d = fs.mkdtempSync(path.join(dir, 'opt-'))
  const file = path.join(d, 'outpost')
  fs.writeFileSync(file, fakeBinary(version), { mode: 0o755 })
  return file
}

function opts(url: string, binary: string, extra: Partial<UpgradeOptions['upgrade']> = {}): UpgradeOptions {
  return { upgrade: { url, publicKey: pubB64, schedule: null, allowHttp: true, rollbackAfter: 120, ...extra }, binary, packaged: true, current: '1.0.0' }
}

test.before(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
})
test.after(() => { server.close() })

test('release - the canonical form lists version and hashes by sorted platform; the signature covers it', () => {
  const r = { version: '1.2.3', assets: { 'linux-x64': { url: 'a', sha256: 'B'.repeat(64) }, 'linux-arm64': { url: 'b', sha256: 'a'.repeat(64) } } }
  assert.is(canonicalRelease(r), `outpost-release-v1\nversion 1.2.3\nlinux-arm64 ${'a'.repeat(64)}\nlinux-x64 ${'b'.repeat(64)}\n`)
  const signed = { ...r, signature: signRelease(r, privPem) }
  assert.ok(verifyRelease(signed, publicKeyFrom(pubB64)))
  assert.ok(verifyRelease({ ...signed, assets: { ...r.assets, 'linux-x64': { url: 'elsewhere', sha256: 'b'.repeat(64) } } }, publicKeyFrom(pubB64)), 'URLs are not signed')
  assert.not.ok(verifyRelease({ ...signed, version: '1.2.4' }, publicKeyFrom(pubB64)))
  assert.not.ok(verifyRelease({ ...signed, signature: signRelease(r, other) }, publicKeyFrom(pubB64)))
})

test('release - a platform named __proto__ in a version file is an asset like any other, not the prototype of the table', () => {
  const r = parseRelease(JSON.parse(`{"version":"1.2.3","assets":{"__proto__":{"url":"p","sha256":"${'c'.repeat(64)}"},"linux-x64":{"url":"a","sha256":"${'a'.repeat(64)}"}}}`), 'x')
  assert.equal(Object.keys(r.assets), ['__proto__', 'linux-x64'])
  assert.is(Object.getPrototypeOf(r.assets), Object.prototype)
  assert.is(canonicalRelease(r), `outpost-release-v1\nversion 1.2.3\n__proto__ ${'c'.repeat(64)}\nlinux-x64 ${'a'.repeat(64)}\n`)
})

test('release - versions compare numerically and a pre-release sorts before its release', () => {
  assert.is(compareVersions('1.10.0', '1.9.9'), 1)
  assert.is(compareVersions('1.0.0', '1.0.0'), 0)
  assert.is(compareVersions('1.0.0-rc.1', '1.0.0'), -1)
  assert.is(compareVersions('0.1.0', '0.2.0'), -1)
})

test('release - a malformed version file is refused with upgrade_bad_release', () => {
  try { parseRelease({ version: 'one', assets: {} }, 'x'); assert.unreachable() } catch (err) { assert.is((err as { code: string }).code, 'upgrade_bad_release') }
})

test('upgrade - --check reports a newer signed release without touching anything', async () => {
  const bin = installed('1.0.0')
  const c = await checkUpgrade(opts(publish('check', '1.1.0', fakeBinary('1.1.0')), bin))
  assert.is(c.latest, '1.1.0')
  assert.is(c.order, 1)
  assert.ok(c.signed)
  assert.is(c.asset.url, `${base}/check/bin`, 'asset URLs resolve against the version file')
})

test('upgrade - installs a newer release, keeping the old binary as .previous', async () => {
  const bin = installed('1.0.0')
  const r = await applyUpgrade(opts(publish('good', '1.1.0', fakeBinary('1.1.0')), bin), false)
  assert.is(r.type, 'installed')
  assert.match(fs.readFileSync(bin, 'utf8'), '"version":"1.1.0"')
  assert.match(fs.readFileSync(`${bin}.previous`, 'utf8'), '"version":"1.0.0"')
  assert.equal(fs.readdirSync(path.dirname(bin)).sort(), ['outpost', 'outpost.previous'], 'no download left behind')
})

test('upgrade - a binary whose hash does not match is refused and the running one is untouched', async () => {
  const bin = installed('1.0.0')
  const before = fs.readFileSync(bin)
  const url = publish('tampered', '1.1.0', fakeBinary('1.1.0'), { sha256: sha(fakeBinary('6.6.6')) })
  await rejectsCode(applyUpgrade(opts(url, bin), false), 'upgrade_hash_mismatch', 'SHA-256')
  assert.ok(fs.readFileSync(bin).equals(before))
  assert.equal(fs.readdirSync(path.dirname(bin)), ['outpost'])
})

test('upgrade - a bad or missing signature is refused when upgrade.publicKey is set', async () => {
  const bin = installed('1.0.0')
  await rejectsCode(applyUpgrade(opts(publish('badsig', '1.1.0', fakeBinary('1.1.0'), { key: other }), bin), false), 'upgrade_signature', 'does not verify')
  await rejectsCode(applyUpgrade(opts(publish('nosig', '1.1.0', fakeBinary('1.1.0'), { key: null }), bin), false), 'upgrade_signature', 'no signature')
  assert.match(fs.readFileSync(bin, 'utf8'), '"version":"1.0.0"')
  // Without a public key an unsigned release is accepted (the hash still protects the download).
  assert.is((await applyUpgrade(opts(`${base}/nosig/version.json`, bin, { publicKey: null }), false)).type, 'installed')
})

test('upgrade - a downgrade needs --force; the same version is "current"', async () => {
  const bin = installed('1.0.0')
  await rejectsCode(applyUpgrade(opts(publish('old', '0.9.0', fakeBinary('0.9.0')), bin), false), 'upgrade_downgrade', '--force')
  assert.is((await applyUpgrade(opts(publish('same', '1.0.0', fakeBinary('1.0.0')), bin), false)).type, 'current')
  assert.is((await applyUpgrade(opts(`${base}/old/version.json`, bin), true)).type, 'installed')
})

test('upgrade - plain http is refused unless upgrade.allowHttp', async () => {
  await rejectsCode(checkUpgrade(opts(publish('http', '1.1.0', fakeBinary('1.1.0')), installed('1.0.0'), { allowHttp: false })), 'upgrade_insecure', 'allowHttp')
})

test('upgrade - a binary that fails its smoke test is not installed', async () => {
  const bin = installed('1.0.0')
  await rejectsCode(applyUpgrade(opts(publish('liar', '1.1.0', fakeBinary('1.0.9')), bin), false), 'upgrade_smoke_failed', '1.0.9')
  await rejectsCode(applyUpgrade(opts(publish('crash', '1.1.0', Buffer.from('#!/bin/sh\nexit 3\n')), bin), false), 'upgrade_smoke_failed')
  assert.equal(fs.readdirSync(path.dirname(bin)), ['outpost'])
})

test('upgrade - from a checkout (not the single binary) applying is refused with upgrade_unavailable', async () => {
  await rejectsCode(applyUpgrade({ ...opts(`${base}/good/version.json`, installed('1.0.0')), packaged: false }, false), 'upgrade_unavailable', 'checkout')
})

test('watchdog - rolls back to .previous when the new version does not confirm in time', async () => {
  const bin = installed('1.0.0')
  await applyUpgrade(opts(`${base}/good/version.json`, bin), false)
  const data = fs.mkdtempSync(path.join(dir, 'data-'))
  writePending(data, { from: '1.0.0', to: '1.1.0', binary: bin, previous: `${bin}.previous`, installedAt: Date.now(), rollbackAfter: 1 })
  const logs: string[] = []
  assert.is(await runWatchdog(data, { log: (m) => logs.push(m), sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 100))) }), 'rolled-back')
  assert.match(fs.readFileSync(bin, 'utf8'), '"version":"1.0.0"')
  assert.match(fs.readFileSync(`${bin}.failed`, 'utf8'), '"version":"1.1.0"')
  assert.is(readPending(data), undefined)
  assert.is(readRolledBack(data)?.to, '1.1.0')
  // The old version's next start reports the rollback once.
  const warned: string[] = []
  onAgentStart(data, '1.0.0', { pid: process.pid, command: [], cwd: data, supervised: true }, (_l, m) => warned.push(m))
  assert.match(warned.join('\n'), /rolled back/)
  assert.is(readRolledBack(data), undefined)
})

test('watchdog - a connected new version confirms and the watchdog leaves it', async () => {
  const data = fs.mkdtempSync(path.join(dir, 'data-'))
  writePending(data, { from: '1.0.0', to: '1.1.0', binary: '/nonexistent', previous: '/nonexistent.previous', installedAt: Date.now(), rollbackAfter: 30 })
  const { confirm } = onAgentStart(data, '1.1.0', { pid: process.pid, command: [], cwd: data, supervised: true }, () => {})
  assert.ok(readPending(data), 'pending until connected')
  confirm()
  assert.is(readPending(data), undefined)
  assert.is(await runWatchdog(data, { log: () => {} }), 'none')
})

test('upgrade.schedule - a bad cron expression is a config error; from a checkout scheduling stays off', () => {
  const config = defaultConfig()
  config.upgrade.schedule = 'every tuesday'
  throwsCode(() => scheduleUpgrades({ config, dataDir: dir, env: {}, log: () => {} }), 'config_invalid', 'upgrade.schedule')
  config.upgrade.schedule = '0 3 * * *'
  const logs: string[] = []
  scheduleUpgrades({ config, dataDir: dir, env: {}, log: (_l, m) => logs.push(m) }).stop()
  assert.match(logs.join('\n'), 'checkout')
})

test.run()
