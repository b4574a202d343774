/**
 * config.set KEY VALUE: change one key of the receiver's config file (VALUE read as YAML:
 * `7` a number, `[a, b]` a list, `{uptime: uptime}` a mapping), keeping its comments. The
 * edited file is validated first; the file before is kept as `<config>.previous`. Keys that
 * the running node can take over apply at once; the result record lists the others.
 */
import { securityGuard } from '../src/sign-check'
import { setKey } from '../src/config/remote'
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'

export default {
  name: 'config.set',
  kind: 'unary',
  summary: 'Set KEY to VALUE (YAML) in the config file, comments kept, validated first; applied at once where no restart is needed.',
  async run(ctx: MethodContext): Promise<MethodResult> {
    if (ctx.args.length !== 2) throw new OutpostError('method_args', 'usage: config.set KEY VALUE (VALUE is YAML: 7, "7", [a, b], {k: v})')
    const [key, raw] = ctx.args as [string, string]
    const result = setKey(ctx.control, ctx.node, ctx.env.id, key, raw, securityGuard(ctx, 'config.set'))
    ctx.log('info', `config.set ${key} by ${ctx.env.fromNode}: ${result.restartNeeded.length > 0 ? `restart needed for ${result.restartNeeded.join(', ')}` : 'applied'}`)
    return { data: JSON.stringify(result) }
  },
} satisfies UnaryMethod
