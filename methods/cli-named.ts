/**
 * cli.named: the allowlist mode of cli.run. methodArgs[0] names an entry of the receiver's
 * `methods.commands`; only that configured command runs (through methods.shell), with the
 * same output cap, process-group kill and result as cli.run. Any other name, or extra
 * arguments (which would let a caller change the command), is refused with command_unknown /
 * method_args and nothing runs.
 *
 *   methods: { enabled: [cli.named, "info.*"], commands: { uptime: "uptime", disk: "df -hl" } }
 */
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'
import { runCommand } from './cli-run'

export default {
  name: 'cli.named',
  kind: 'unary',
  summary: 'Run a command configured by name in methods.commands (allowlist mode); nothing else runs.',
  run(ctx: MethodContext): Promise<MethodResult> {
    const { commands, shell, outputCap } = ctx.config.methods
    const [name, ...extra] = ctx.args
    const known = Object.keys(commands).sort().join(', ') || 'none configured'
    if (name === undefined) return Promise.reject(new OutpostError('method_args', `cli.named: which command? ${ctx.node} has: ${known}`))
    if (extra.length > 0) return Promise.reject(new OutpostError('method_args', `cli.named: takes only a command name; the command line is fixed in ${ctx.node}'s methods.commands`))
    const command = Object.hasOwn(commands, name) ? commands[name] : undefined
    if (command === undefined) return Promise.reject(new OutpostError('command_unknown', `cli.named: ${ctx.node} has no command ${JSON.stringify(name)} in methods.commands (it has: ${known})`))
    return runCommand(shell, ['-c', command], { outputCap, signal: ctx.signal })
  },
} satisfies UnaryMethod
