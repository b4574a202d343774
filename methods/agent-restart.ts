/**
 * agent.restart: restart this node a second after its reply is queued, the way an upgrade
 * does (SIGHUP): under a service manager (systemd, or OUTPOST_RESTART=exit) the process exits
 * with 75 for it to start again; otherwise it starts its successor itself. Messages in the
 * outbox wait and go on after the restart; a method running then gets an `interrupted` reply.
 */
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'

export default {
  name: 'agent.restart',
  kind: 'unary',
  summary: 'Restart this node (to take over config keys that need it); the reply goes first.',
  async run(ctx: MethodContext): Promise<MethodResult> {
    if (ctx.args.length > 0) throw new OutpostError('method_args', 'agent.restart takes no arguments')
    if (ctx.control === undefined) throw new OutpostError('restart_unavailable', 'agent.restart works only inside a running agent or hub')
    ctx.control.restart()
    ctx.log('info', `agent.restart by ${ctx.env.fromNode}: restarting in a second`)
    return { data: JSON.stringify({ ok: true, id: ctx.env.id, restarting: true, pid: process.pid }) }
  },
} satisfies UnaryMethod
