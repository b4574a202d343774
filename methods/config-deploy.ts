/**
 * config.deploy [--force] ID [YAML]: replace the receiver's whole config file with a YAML
 * document (the last argument, or the message's data). It is validated before anything is
 * written (errors name the key and line); the file before is kept as `<config>.previous`
 * for config.rollback; what needs no restart is applied at once. Deploying the id already in
 * force again does nothing unless --force.
 */
import { securityGuard } from '../src/sign-check'
import { deploy } from '../src/config/remote'
import { dataText } from '../src/wire/envelope'
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

export default {
  name: 'config.deploy',
  kind: 'unary',
  summary: 'Replace the config file with a YAML document under a deployment id (validated first, previous kept; --force redeploys the same id).',
  async run(ctx: MethodContext): Promise<MethodResult> {
    const force = ctx.args.includes('--force')
    const rest = ctx.args.filter((a) => a !== '--force')
    const [id, inline, ...extra] = rest
    if (id === undefined || extra.length > 0 || !ID.test(id)) throw new OutpostError('method_args', 'usage: config.deploy [--force] ID [YAML] (ID: letters, digits and ._:-; the YAML is the argument after ID or the message data)')
    const text = inline ?? (ctx.env.data !== undefined ? dataText(ctx.env.data) : undefined)
    if (text === undefined || text.trim() === '') throw new OutpostError('method_args', `config.deploy ${id}: no YAML document (give it after the id, or as the message data)`)
    const result = deploy(ctx.control, ctx.node, ctx.dataDir, id, text, force, securityGuard(ctx, 'config.deploy'))
    ctx.log('info', `config.deploy ${id} by ${ctx.env.fromNode}: ${result.noop ? 'already in force' : `changed ${result.changed.join(', ') || 'nothing'}`}`)
    return { data: JSON.stringify(result) }
  },
} satisfies UnaryMethod
