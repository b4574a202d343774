/**
 * `outpost upgrade [--check] [--force]` (also `--upgrade`, `-u`): see upgrade.ts for the steps
 * and upgrade-watchdog.ts for the rollback. `--watchdog` is the rollback watchdog itself, started
 * by an upgrade from the previous binary; operators do not run it.
 */
import path from 'node:path'
import { EXIT, GLOBAL_HELP, parse, print, type Io } from './common'
import { loadConfig } from '../config'
import { OutpostError } from '../errors'
import { checkUpgrade, isPackaged, upgradeNode } from '../upgrade'
import { runWatchdog } from '../upgrade/watchdog'

const HELP = `Usage: outpost upgrade [--check] [--force]      (also: outpost --upgrade, outpost -u)

  Fetch upgrade.url (version.json), pick the binary for this machine, verify its SHA-256 and,
  with upgrade.publicKey set, the release's ed25519 signature; run the new binary's \`version\`,
  then replace this binary atomically, keeping <binary>.previous. A running agent on the data
  directory restarts into the new version; if it does not connect within upgrade.rollbackAfter
  seconds, the previous binary is put back.

  --check            only report what is available
  --force            install even the same or an older version

${GLOBAL_HELP}`

export async function upgradeCommand(io: Io, args: string[]): Promise<number> {
  const { values } = parse(args, { check: { type: 'boolean' }, force: { type: 'boolean' }, watchdog: { type: 'boolean' } }, false)
  if (values.help) return print(io, HELP)
  if (values.watchdog) {
    if (!values['data-dir']) throw new OutpostError('usage', 'outpost upgrade --watchdog needs --data-dir')
    const log = (m: string): void => { io.stdout.write(`${new Date().toISOString()} watchdog: ${m}\n`) }
    await runWatchdog(path.resolve(io.cwd, values['data-dir']), { log })
    return EXIT.ok
  }
  const { config } = loadConfig({ flag: values.config, env: io.env, cwd: io.cwd })
  const dataDir = path.resolve(io.cwd, values['data-dir'] ?? config.dataDir)
  const base = { upgrade: config.upgrade, binary: process.execPath, packaged: isPackaged() }
  if (values.check) {
    const c = await checkUpgrade(base)
    if (values.json) return print(io, JSON.stringify({ current: c.current, latest: c.latest, newer: c.order > 0, platform: c.platform, url: c.asset.url, sha256: c.asset.sha256, signed: c.signed }))
    const what = c.order > 0 ? `${c.latest} is available` : c.order === 0 ? 'up to date' : `the release (${c.latest}) is older; \`outpost upgrade --force\` would install it`
    return print(io, `outpost ${c.current} (${c.platform}): ${what}${c.order > 0 ? ` (${c.signed ? 'signed' : 'not signed: set upgrade.publicKey to require a signature'}); run \`outpost upgrade\`` : ''}`)
  }
  const tty = (io.stderr as { isTTY?: boolean }).isTTY === true && !values.json
  const { result, restarting } = await upgradeNode({ ...base, dataDir, force: values.force === true, env: io.env, ...(tty ? { progress: bar(io) } : {}) })
  if (tty) io.stderr.write('\n')
  if (values.json) {
    return print(io, JSON.stringify({ result: result.type, from: result.check.current, to: result.check.latest, ...(result.type === 'installed' ? { binary: result.binary, previous: result.previous } : {}), ...(restarting ? { restarting } : {}) }))
  }
  if (result.type === 'current') return print(io, `outpost ${result.check.current} is up to date (use --force to reinstall)`)
  print(io, `installed outpost ${result.check.latest} as ${result.binary} (was ${result.check.current}, kept as ${result.previous})`)
  return print(io, restarting
    ? `restarting the agent (pid ${restarting}); it is rolled back unless it connects within ${config.upgrade.rollbackAfter} s`
    : 'no agent runs on this data directory: the next start runs the new version')
}

/** A one-line progress bar on standard error. */
function bar(io: Io): (got: number, total: number | undefined) => void {
  let last = 0
  return (got, total) => {
    const now = Date.now()
    if (now - last < 100 && got !== total) return
    last = now
    const mib = (n: number): string => (n / 2 ** 20).toFixed(1)
    if (total === undefined) { io.stderr.write(`\rdownloading ${mib(got)} MiB`); return }
    const width = 30
    const done = Math.min(width, Math.round((got / total) * width))
    io.stderr.write(`\rdownloading [${'#'.repeat(done)}${'.'.repeat(width - done)}] ${mib(got)}/${mib(total)} MiB ${Math.floor((got / total) * 100)}%`)
  }
}
