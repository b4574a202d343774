/**
 * `upgrade.schedule`: the agent checks upgrade.url on a cron schedule and installs a newer
 * release itself (never a downgrade), then restarts under the rollback watchdog like
 * `outpost upgrade`. Only the single binary does this; from a checkout it logs once and stays off.
 */
import type { Config } from '../config'
import { OutpostError, isOutpostError } from '../errors'
import { isPackaged, upgradeNode } from './index'
import { cronExpression, type CronExpression } from '../lib/cron'

export interface UpgradeSchedule { stop(): void }

export function scheduleUpgrades(o: {
  config: Config
  dataDir: string
  env: NodeJS.ProcessEnv
  log: (level: 'info' | 'warn' | 'error', msg: string) => void
  now?: () => number
}): UpgradeSchedule {
  const { schedule } = o.config.upgrade
  if (!schedule) return { stop: () => {} }
  let expr: CronExpression
  try {
    expr = cronExpression(schedule)
  } catch (err) {
    throw new OutpostError('config_invalid', `upgrade.schedule ${JSON.stringify(schedule)} is not a cron expression: ${(err as Error).message}`, { cause: err })
  }
  if (!isPackaged()) {
    o.log('info', 'upgrade.schedule is set, but this outpost runs from a checkout: scheduled upgrades are off')
    return { stop: () => {} }
  }
  const now = o.now ?? Date.now
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  const arm = (): void => {
    if (stopped) return
    const at = expr.next().getTime()
    // Timers past ~24.8 days overflow: wake up daily and re-arm.
    timer = setTimeout(() => { if (now() + 1000 < at) { expr = cronExpression(schedule, { currentDate: new Date(now()) }); arm(); return } void fire() }, Math.min(Math.max(at - now(), 0), 86_400_000))
    timer.unref()
  }
  const fire = async (): Promise<void> => {
    try {
      const { result } = await upgradeNode({ upgrade: o.config.upgrade, binary: process.execPath, packaged: true, dataDir: o.dataDir, force: false, env: o.env })
      if (result.type === 'installed') o.log('info', `scheduled upgrade: installed ${result.check.latest} (was ${result.check.current}); restarting`)
    } catch (err) {
      o.log(isOutpostError(err, 'upgrade_downgrade') ? 'info' : 'warn', `scheduled upgrade check: ${(err as Error).message}`)
    }
    arm()
  }
  arm()
  return { stop: () => { stopped = true; clearTimeout(timer) } }
}
