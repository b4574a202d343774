/**
 * Self-upgrade of the single binary (`outpost upgrade`, the agent.upgrade method).
 *
 *   upgrade.url ─ fetch version.json ─ signature (upgrade.publicKey) ─ asset linux-<arch>
 *     ─ newer? (else refuse unless --force) ─ free disk ─ download beside the binary, SHA-256
 *     ─ smoke test: `<new> version --json` reports the release version
 *     ─ link <binary> → <binary>.previous, rename <new> → <binary> (atomic, same directory)
 *     ─ upgrade-pending.json in the data dir + a watchdog process (upgrade-watchdog.ts)
 *     ─ the running agent is told to restart (SIGHUP)
 *
 * Nothing is replaced unless every step before the rename passed; the running binary is then
 * untouched and the download deleted.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type { Config } from '../config'
import { OutpostError } from '../errors'
import { compareVersions, parseRelease, platformKey, publicKeyFrom, verifyRelease, type ReleaseAsset } from './release'
import { runningAgent, startWatchdog, writePending } from './watchdog'
import { own } from '../lib/own'
import { VERSION } from '../version'

export interface UpgradeOptions {
  upgrade: Config['upgrade']
  /** The binary to replace: process.execPath in the single binary. */
  binary: string
  /** False when running from a checkout under Node: only --check works then. */
  packaged: boolean
  current?: string
  fetch?: typeof fetch
  /** Download progress, for a bar on a terminal. */
  progress?: (got: number, total: number | undefined) => void
  /** Stops the fetches (agent.upgrade passes its methodTimeout signal). */
  signal?: AbortSignal
}

export interface UpgradeCheck {
  current: string
  latest: string
  /** 1 newer, 0 same, -1 older than the running version. */
  order: number
  platform: string
  asset: ReleaseAsset
  signed: boolean
}

export type UpgradeResult =
  | { type: 'current'; check: UpgradeCheck }
  | { type: 'installed'; check: UpgradeCheck; binary: string; previous: string }

/** The single binary sets this global (packaging/sea-entry.ts). */
export function isPackaged(): boolean {
  return (globalThis as { __OUTPOST_SEA__?: boolean }).__OUTPOST_SEA__ === true
}

function checkScheme(url: URL, allowHttp: boolean, what: string): void {
  if (url.protocol === 'https:') return
  if (url.protocol === 'http:' && allowHttp) return
  if (url.protocol === 'http:') throw new OutpostError('upgrade_insecure', `${what} ${url.href} is plain http://; use https:// or set upgrade.allowHttp: true (a trusted network, or a signed release with upgrade.publicKey)`)
  throw new OutpostError('upgrade_insecure', `${what} ${url.href}: only https:// (and http:// with upgrade.allowHttp) are supported`)
}

async function get(o: UpgradeOptions, url: URL, timeoutMs: number): Promise<Response> {
  let res: Response
  try {
    const timeout = AbortSignal.timeout(timeoutMs)
    res = await (o.fetch ?? fetch)(url, { signal: o.signal ? AbortSignal.any([o.signal, timeout]) : timeout, redirect: 'follow' })
  } catch (err) {
    throw new OutpostError('upgrade_fetch', `cannot fetch ${url.href}: ${(err as Error).message}${(err as { cause?: Error }).cause ? ` (${(err as { cause: Error }).cause.message})` : ''}`, { cause: err })
  }
  if (!res.ok) throw new OutpostError('upgrade_fetch', `${url.href} answered HTTP ${res.status} ${res.statusText}`)
  // A redirect must not downgrade the scheme.
  if (res.url) checkScheme(new URL(res.url), o.upgrade.allowHttp, 'redirected to')
  return res
}

/** Reads the version endpoint and picks this machine's asset. */
export async function checkUpgrade(o: UpgradeOptions): Promise<UpgradeCheck> {
  if (!o.upgrade.url) throw new OutpostError('upgrade_unavailable', 'upgrade.url is not set: point it at the release\'s version.json (outpost config set upgrade.url https://…/version.json)')
  let endpoint: URL
  try { endpoint = new URL(o.upgrade.url) } catch (err) { throw new OutpostError('config_invalid', `upgrade.url ${JSON.stringify(o.upgrade.url)} is not a URL`, { cause: err }) }
  checkScheme(endpoint, o.upgrade.allowHttp, 'upgrade.url')
  const res = await get(o, endpoint, 30_000)
  let json: unknown
  try { json = JSON.parse(await res.text()) } catch (err) { throw new OutpostError('upgrade_bad_release', `${endpoint.href} is not JSON`, { cause: err }) }
  const release = parseRelease(json, endpoint.href)
  let signed = false
  if (o.upgrade.publicKey) {
    if (!release.signature) throw new OutpostError('upgrade_signature', `${endpoint.href} carries no signature, and upgrade.publicKey requires one`)
    if (!verifyRelease(release, publicKeyFrom(o.upgrade.publicKey))) throw new OutpostError('upgrade_signature', `the signature of ${endpoint.href} (version ${release.version}) does not verify with upgrade.publicKey: refusing it`)
    signed = true
  }
  const platform = platformKey()
  const asset = own(release.assets, platform)
  if (!asset) throw new OutpostError('upgrade_no_asset', `release ${release.version} has no binary for ${platform} (it has ${Object.keys(release.assets).join(', ') || 'none'})`)
  // Asset URLs may be relative to the version file.
  const url = new URL(asset.url, endpoint)
  checkScheme(url, o.upgrade.allowHttp, 'the binary URL')
  const current = o.current ?? VERSION
  return { current, latest: release.version, order: compareVersions(release.version, current), platform, asset: { ...asset, url: url.href }, signed }
}

/** Checks, downloads, verifies, smoke-tests and installs; the caller restarts the agent. */
export async function applyUpgrade(o: UpgradeOptions, force: boolean, check?: UpgradeCheck): Promise<UpgradeResult> {
  if (!o.packaged) {
    throw new OutpostError('upgrade_unavailable', 'this outpost runs from a checkout under Node (node bin/outpost.cjs); self-upgrade replaces a single binary. Update a checkout with `git pull && npm ci`, or install the binary with install.sh')
  }
  const c = check ?? await checkUpgrade(o)
  if (c.order === 0 && !force) return { type: 'current', check: c }
  if (c.order < 0 && !force) throw new OutpostError('upgrade_downgrade', `the release (${c.latest}) is older than this outpost (${c.current}); use --force to install it anyway`)
  const binary = fs.realpathSync(o.binary)
  const dir = path.dirname(binary)
  const tmp = path.join(dir, `.${path.basename(binary)}.download-${process.pid}`)
  fs.rmSync(tmp, { force: true })
  try {
    const res = await get(o, new URL(c.asset.url), 30 * 60_000)
    const header = Number(res.headers.get('content-length'))
    const total = c.asset.size ?? (Number.isFinite(header) && header > 0 ? header : undefined)
    checkDisk(dir, total ?? fs.statSync(binary).size)
    const sha256 = await download(res, tmp, total, o.progress)
    if (sha256 !== c.asset.sha256) {
      throw new OutpostError('upgrade_hash_mismatch', `the binary from ${c.asset.url} has SHA-256 ${sha256}, the release says ${c.asset.sha256}: refused and deleted`)
    }
    fs.chmodSync(tmp, 0o755)
    await smokeTest(tmp, c.latest)
    const previous = `${binary}.previous`
    try {
      fs.rmSync(previous, { force: true })
      try { fs.linkSync(binary, previous) } catch { fs.copyFileSync(binary, previous) }
      fs.renameSync(tmp, binary)
    } catch (err) {
      throw new OutpostError('upgrade_replace', `cannot replace ${binary}: ${(err as Error).message} (it is unchanged)`, { cause: err })
    }
    return { type: 'installed', check: c, binary, previous }
  } finally {
    fs.rmSync(tmp, { force: true })
  }
}

/** The new binary plus some room; `.previous` is a hard link to the current one (no extra space). */
function checkDisk(dir: string, size: number): void {
  const need = Math.ceil(size * 1.1) + (16 << 20)
  let free: number
  try {
    const st = fs.statfsSync(dir)
    free = Number(st.bavail) * Number(st.bsize)
  } catch {
    return // no statfs here: the write itself will tell
  }
  if (free < need) throw new OutpostError('upgrade_disk_space', `${dir} has ${(free / 2 ** 20).toFixed(0)} MiB free; the upgrade needs ${(need / 2 ** 20).toFixed(0)} MiB`)
}

async function download(res: Response, file: string, total: number | undefined, progress?: (got: number, total: number | undefined) => void): Promise<string> {
  if (!res.body) throw new OutpostError('upgrade_fetch', `${res.url}: empty response`)
  const hash = createHash('sha256')
  const fd = fs.openSync(file, 'wx', 0o700)
  let got = 0
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk)
      fs.writeSync(fd, chunk)
      got += chunk.length
      progress?.(got, total)
    }
    fs.fsyncSync(fd)
  } catch (err) {
    if (err instanceof OutpostError) throw err
    throw new OutpostError('upgrade_fetch', `download of ${res.url} failed after ${got} bytes: ${(err as Error).message}`, { cause: err })
  } finally {
    fs.closeSync(fd)
  }
  return hash.digest('hex')
}

/** Runs `<file> version --json` and expects the release's version back. */
export function smokeTest(file: string, expected: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, ['version', '--json'], { timeout: 30_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/' } }, (err, stdout, stderr) => {
      let version: unknown
      try { version = (JSON.parse(stdout) as { version?: unknown }).version } catch { /* reported below */ }
      if (!err && version === expected) return resolve()
      const why = err ? `${err.message.split('\n')[0]}${stderr ? `: ${stderr.trim().split('\n').slice(-1)[0]}` : ''}` : `it reported version ${JSON.stringify(version ?? stdout.trim().slice(0, 80))}`
      reject(new OutpostError('upgrade_smoke_failed', `the new binary failed its smoke test (${why}; expected ${expected}): nothing was replaced`))
    })
  })
}

export interface NodeUpgrade {
  result: UpgradeResult
  /** The agent told to restart (its pid), when one runs on the data directory. */
  restarting?: number
}

/**
 * applyUpgrade, then, when an agent runs on the data directory: the pending marker, the
 * watchdog (from the previous binary) and SIGHUP to the agent. With no agent running the new
 * binary simply serves the next start; there is nothing to watch.
 */
export async function upgradeNode(o: UpgradeOptions & { dataDir: string; force: boolean; env: NodeJS.ProcessEnv }): Promise<NodeUpgrade> {
  const result = await applyUpgrade(o, o.force)
  if (result.type !== 'installed') return { result }
  const pid = runningAgent(o.dataDir)
  if (pid === undefined) return { result }
  writePending(o.dataDir, {
    from: result.check.current, to: result.check.latest, binary: result.binary, previous: result.previous,
    installedAt: Date.now(), rollbackAfter: o.upgrade.rollbackAfter,
  })
  startWatchdog(result.previous, o.dataDir, o.env)
  // Inside the agent (agent.upgrade) the reply is queued first; the restart follows.
  if (pid === process.pid) setTimeout(() => process.kill(pid, 'SIGHUP'), 1000).unref()
  else process.kill(pid, 'SIGHUP')
  return { result, restarting: pid }
}
