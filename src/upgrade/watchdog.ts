/**
 * The rollback watchdog. After an upgrade replaced the binary while an agent runs on the data
 * directory:
 *
 *   upgrader: writes <dataDir>/upgrade-pending.json, starts `<binary>.previous upgrade --watchdog`
 *             (the known-good binary, outside the agent: detached, or `systemd-run` under
 *             systemd so the agent's restart does not take it down), sends the agent SIGHUP
 *   agent:    SIGHUP = restart: exits with 75 under a service manager (which restarts it),
 *             else starts itself again detached; the new binary deletes the pending file
 *             once its transport is connected (confirm)
 *   watchdog: pending file gone before upgrade.rollbackAfter s → done. Otherwise (the new
 *             binary crashed, exits at once or never connects): <binary> → <binary>.failed,
 *             <binary>.previous → <binary>, <dataDir>/upgrade-rolled-back.json, and the agent
 *             is restarted again (SIGHUP, or started from <dataDir>/agent.json when none runs
 *             and no service manager will).
 */
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { isAlive } from '../lib/process'

export interface Pending {
  from: string
  to: string
  binary: string
  previous: string
  installedAt: number
  rollbackAfter: number
}

/** What a running agent records so a watchdog can restart it. */
export interface AgentInfo {
  pid: number
  /** argv after the executable, and how to start it. */
  command: string[]
  cwd: string
  /** Under a service manager that restarts it (systemd, or OUTPOST_RESTART=exit). */
  supervised: boolean
}

export const EXIT_RESTART = 75

const pendingFile = (dataDir: string): string => path.join(dataDir, 'upgrade-pending.json')
const rolledBackFile = (dataDir: string): string => path.join(dataDir, 'upgrade-rolled-back.json')
const agentFile = (dataDir: string): string => path.join(dataDir, 'agent.json')

function readJson<T>(file: string): T | undefined {
  try { return JSON.parse(fs.readFileSync(file, 'utf8')) as T } catch { return undefined }
}

function writeJson(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 })
  fs.renameSync(tmp, file)
}

export const readPending = (dataDir: string): Pending | undefined => readJson<Pending>(pendingFile(dataDir))
export const writePending = (dataDir: string, p: Pending): void => writeJson(pendingFile(dataDir), p)
export const readRolledBack = (dataDir: string): (Pending & { at: number; reason: string }) | undefined => readJson(rolledBackFile(dataDir))

export function isSupervised(env: NodeJS.ProcessEnv): boolean {
  return env.OUTPOST_RESTART === 'exit' || (env.INVOCATION_ID !== undefined && env.OUTPOST_RESTART !== 'exec')
}

/** The pid of the agent holding the data directory's lock, when it is alive. */
export function runningAgent(dataDir: string): number | undefined {
  let pid: number
  try { pid = Number.parseInt(fs.readFileSync(path.join(dataDir, 'outbox', 'lock'), 'utf8'), 10) } catch { return undefined }
  if (!Number.isInteger(pid) || pid <= 0) return undefined
  return isAlive(pid) ? pid : undefined
}

/**
 * Called by `agent` at start: records how to restart it, reports a rollback, and returns
 * `confirm`, to call when the transport connects (it clears a pending upgrade to this version).
 */
export function onAgentStart(dataDir: string, version: string, info: AgentInfo, log: (level: 'info' | 'warn', msg: string) => void): { confirm(): void } {
  writeJson(agentFile(dataDir), info)
  const rolled = readRolledBack(dataDir)
  if (rolled) {
    log('warn', `the upgrade from ${rolled.from} to ${rolled.to} was rolled back at ${new Date(rolled.at).toISOString()}: ${rolled.reason} (the failed binary is kept as ${rolled.binary}.failed)`)
    fs.rmSync(rolledBackFile(dataDir), { force: true })
  }
  const p = readPending(dataDir)
  if (!p || p.to !== version) return { confirm: () => {} }
  log('info', `running ${version} after an upgrade from ${p.from}: it is kept once the transport connects (within ${p.rollbackAfter} s)`)
  let done = false
  return {
    confirm: () => {
      if (done) return
      done = true
      const now = readPending(dataDir)
      if (now && now.to === version && now.installedAt === p.installedAt) {
        fs.rmSync(pendingFile(dataDir), { force: true })
        log('info', `upgrade to ${version} confirmed: connected`)
      }
    },
  }
}

/** Starts the watchdog from the known-good previous binary, outside the agent's process group. */
export function startWatchdog(previous: string, dataDir: string, env: NodeJS.ProcessEnv): void {
  const args = ['upgrade', '--watchdog', '--data-dir', dataDir]
  if (env.INVOCATION_ID !== undefined && spawnSync('systemd-run', ['--version'], { stdio: 'ignore' }).status === 0) {
    const r = spawnSync('systemd-run', ['--collect', '--quiet', `--unit=outpost-upgrade-watchdog-${Date.now()}`, previous, ...args], { stdio: 'ignore' })
    if (r.status === 0) return
  }
  const out = fs.openSync(path.join(dataDir, 'upgrade-watchdog.log'), 'a', 0o600)
  const child = spawn(previous, args, { detached: true, stdio: ['ignore', out, out], env })
  child.unref()
  fs.closeSync(out)
}

export interface WatchdogDeps {
  now?: () => number
  sleep?: (ms: number) => Promise<void>
  log: (msg: string) => void
}

/** `outpost upgrade --watchdog`: waits for the confirmation or rolls back. Bounded by rollbackAfter. */
export async function runWatchdog(dataDir: string, d: WatchdogDeps): Promise<'none' | 'confirmed' | 'rolled-back'> {
  const now = d.now ?? Date.now
  const sleep = d.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)))
  const p = readPending(dataDir)
  if (!p) return 'none'
  d.log(`watching the upgrade ${p.from} → ${p.to} of ${p.binary} for ${p.rollbackAfter} s`)
  const deadline = p.installedAt + p.rollbackAfter * 1000
  while (now() < deadline) {
    const cur = readPending(dataDir)
    if (!cur || cur.installedAt !== p.installedAt) {
      d.log(`upgrade to ${p.to} confirmed`)
      return 'confirmed'
    }
    await sleep(500)
  }
  if (!readPending(dataDir)) return 'confirmed'
  rollback(dataDir, p, `the new binary did not connect within ${p.rollbackAfter} s`)
  d.log(`rolled back ${p.binary} to ${p.from}; the failed binary is ${p.binary}.failed`)
  await restartAgent(dataDir, p.binary, sleep)
  return 'rolled-back'
}

export function rollback(dataDir: string, p: Pending, reason: string): void {
  const failed = `${p.binary}.failed`
  fs.rmSync(failed, { force: true })
  try { fs.linkSync(p.binary, failed) } catch { /* keeping it is a courtesy */ }
  fs.renameSync(p.previous, p.binary)
  writeJson(rolledBackFile(dataDir), { ...p, at: Date.now(), reason })
  fs.rmSync(pendingFile(dataDir), { force: true })
}

/** Makes the agent start again from the binary now in place. */
async function restartAgent(dataDir: string, binary: string, sleep: (ms: number) => Promise<void>): Promise<void> {
  const info = readJson<AgentInfo>(agentFile(dataDir))
  const pid = runningAgent(dataDir)
  if (pid !== undefined) {
    process.kill(pid, 'SIGHUP')
    for (let i = 0; i < 20 && runningAgent(dataDir) === pid; i++) await sleep(500)
    if (runningAgent(dataDir) === pid) { try { process.kill(pid, 'SIGKILL') } catch { /* gone */ } }
    if (info?.supervised !== false) return
    // A foreground agent restarts itself on SIGHUP; give it a moment before doing it for it.
    await sleep(2000)
    if (runningAgent(dataDir) !== undefined) return
  }
  // No agent, and none a service manager will start: start it ourselves.
  if (info && !info.supervised && runningAgent(dataDir) === undefined) {
    spawn(binary, info.command, { cwd: info.cwd, detached: true, stdio: 'ignore' }).unref()
  }
}
