/**
 * op.list, op.start, op.stop, op.cancel: look at and steer the method handlers and running
 * jobs of this node at run time, through ctx.ops (the dispatcher's handle). Switching is in
 * memory: a restart goes back to `methods.enabled`.
 *
 *   op.list            ─▶ JSON { node, handlers: [{name, kind, summary, enabled}], jobs: [{id, method, from, started}] }
 *   op.start NAME      ─▶ undo an op.stop (a method the config switched off stays off)
 *   op.stop NAME       ─▶ new requests for NAME get method_disabled; running jobs go on
 *   op.cancel ID       ─▶ abort job ID: its process group is killed, its reply says `cancelled`;
 *                         an id of central's jobs (src/jobs/, through ctx.control): its nodes not started are skipped
 *   steward REQOpCommand: operation { opCmd: ps | startProc | stopProc | cancel, opArg } ─▶ the above
 */
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, Ops, UnaryMethod } from '../src/method'

function opsOf(ctx: MethodContext): Ops {
  if (ctx.ops === undefined) throw new OutpostError('method_failed', `${ctx.env.method}: needs a running node (not available in \`outpost call\`)`)
  return ctx.ops
}

function json(value: unknown): MethodResult {
  return { data: JSON.stringify(value) + '\n', exitCode: 0 }
}

function list(ctx: MethodContext): MethodResult {
  const ops = opsOf(ctx)
  return json({ node: ctx.node, handlers: ops.handlers(), jobs: ops.jobs().filter((j) => j.id !== ctx.env.id) })
}

/** A method name (or alias) from args[0] or steward's opArg (`"NAME"` or `{ method: NAME }`). */
function methodArg(op: string, arg: unknown): string {
  const given = typeof arg === 'string' ? arg : typeof arg === 'object' && arg !== null && typeof (arg as { method?: unknown }).method === 'string' ? (arg as { method: string }).method : undefined
  if (given === undefined || given === '') throw new OutpostError('method_failed', `${op}: which method? e.g. ${op} -- cli.run`)
  return given
}

function switchTo(ctx: MethodContext, op: string, arg: unknown, on: boolean): MethodResult {
  const name = methodArg(op, arg)
  opsOf(ctx).setEnabled(name, on)
  ctx.log('info', `${op}: ${name} switched ${on ? 'on' : 'off'} by ${ctx.env.fromNode}`)
  return json({ node: ctx.node, method: name, enabled: on })
}

function cancel(ctx: MethodContext, arg: unknown): MethodResult {
  const id = typeof arg === 'string' ? arg : typeof arg === 'object' && arg !== null && typeof (arg as { id?: unknown }).id === 'string' ? (arg as { id: string }).id : ''
  if (id === '') throw new OutpostError('method_failed', 'op.cancel: which job? pass the id of the request (see op.list)')
  if (!opsOf(ctx).cancel(id, ctx.env.fromNode)) {
    // A job of many nodes (central's, outpost jobs): what has not started is skipped.
    if (ctx.control?.cancelJob?.(id, `op.cancel from ${ctx.env.fromNode}`) === true) return json({ node: ctx.node, cancelled: id, job: true })
    throw new OutpostError('method_failed', `op.cancel: no job ${id} is running on ${ctx.node} (see op.list; outpost jobs for jobs of many nodes)`)
  }
  ctx.log('info', `op.cancel: ${id} cancelled by ${ctx.env.fromNode}`)
  return json({ node: ctx.node, cancelled: id })
}

export const opList = {
  name: 'op.list',
  aliases: ['REQOpProcessList'],
  alwaysOn: true,
  kind: 'unary',
  summary: 'List the method handlers (on or off) and the jobs running now, as JSON.',
  run: async (ctx: MethodContext) => list(ctx),
} satisfies UnaryMethod

export const opStart = {
  name: 'op.start',
  aliases: ['REQOpProcessStart'],
  alwaysOn: true,
  kind: 'unary',
  summary: 'Switch a method handler back on (undoes op.stop; in memory).',
  run: async (ctx: MethodContext) => switchTo(ctx, 'op.start', ctx.args[0], true),
} satisfies UnaryMethod

export const opStop = {
  name: 'op.stop',
  aliases: ['REQOpProcessStop'],
  alwaysOn: true,
  kind: 'unary',
  summary: 'Switch a method handler off until op.start or a restart.',
  run: async (ctx: MethodContext) => switchTo(ctx, 'op.stop', ctx.args[0], false),
} satisfies UnaryMethod

export const opCancel = {
  name: 'op.cancel',
  aliases: ['REQOpCommand'],
  alwaysOn: true,
  kind: 'unary',
  summary: 'Cancel a running job by its request id; steward REQOpCommand (ps, startProc, stopProc) too.',
  run: async (ctx: MethodContext) => {
    const operation = ctx.env.operation
    if (operation === undefined) return cancel(ctx, ctx.args[0])
    const arg = operation.opArg ?? ctx.args[0]
    switch (operation.opCmd) {
      case 'ps': return list(ctx)
      case 'startProc': return switchTo(ctx, 'op.start', arg, true)
      case 'stopProc': return switchTo(ctx, 'op.stop', arg, false)
      case 'cancel': return cancel(ctx, arg)
      default: throw new OutpostError('method_failed', `op.cancel: unknown operation.opCmd ${JSON.stringify(operation.opCmd)} (ps, startProc, stopProc, cancel)`)
    }
  },
} satisfies UnaryMethod
