/**
 * config.rollback: put `<config>.previous` back (validated first) and keep the config it
 * replaces as the new `.previous`, so a second rollback undoes the first. Applied like
 * config.deploy; the result record says which keys need a restart.
 */
import { securityGuard } from '../src/sign-check'
import { rollback } from '../src/config/remote'
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'

export default {
  name: 'config.rollback',
  kind: 'unary',
  summary: 'Restore the config file before the last config.set / config.deploy (<config>.previous).',
  async run(ctx: MethodContext): Promise<MethodResult> {
    if (ctx.args.length > 0) throw new OutpostError('method_args', 'config.rollback takes no arguments')
    const result = rollback(ctx.control, ctx.node, ctx.dataDir, securityGuard(ctx, 'config.rollback'))
    ctx.log('info', `config.rollback by ${ctx.env.fromNode}: changed ${result.changed.join(', ') || 'nothing'}`)
    return { data: JSON.stringify(result) }
  },
} satisfies UnaryMethod
