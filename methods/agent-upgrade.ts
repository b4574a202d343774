/**
 * agent.upgrade: check for and apply an upgrade of this node's binary (src/upgrade/index.ts). Args:
 * `--check` only reports; `--force` allows the same or an older version. When installed, the
 * agent restarts a second after the reply is queued, under the rollback watchdog.
 */
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'
import { OutpostError } from '../src/errors'
import { checkUpgrade, isPackaged, upgradeNode } from '../src/upgrade'

export default {
  name: 'agent.upgrade',
  kind: 'unary',
  summary: 'Check for (--check) or apply (--force: also the same or an older version) an upgrade from upgrade.url.',
  async run(ctx: MethodContext): Promise<MethodResult> {
    const unknown = ctx.args.filter((a) => a !== '--check' && a !== '--force')
    if (unknown.length > 0) throw new OutpostError('usage', `agent.upgrade takes --check and --force, not ${unknown.join(' ')}`)
    const base = { upgrade: ctx.config.upgrade, binary: process.execPath, packaged: isPackaged(), signal: ctx.signal }
    if (ctx.args.includes('--check')) {
      const c = await checkUpgrade(base)
      return { data: JSON.stringify({ current: c.current, latest: c.latest, newer: c.order > 0, platform: c.platform, signed: c.signed }) }
    }
    const { result, restarting } = await upgradeNode({ ...base, dataDir: ctx.dataDir, force: ctx.args.includes('--force'), env: process.env })
    ctx.log('info', result.type === 'installed' ? `upgraded ${result.check.current} → ${result.check.latest}` : `upgrade: ${result.check.current} is current`)
    return { data: JSON.stringify({ result: result.type, from: result.check.current, to: result.check.latest, restarting: restarting !== undefined }) }
  },
} satisfies UnaryMethod
