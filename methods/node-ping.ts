/** node.ping / node.pong: a liveness round trip. ping answers; pong is the reply sink that notes it. */
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'
import { dataText } from '../src/wire/envelope'

export const nodePing = {
  name: 'node.ping',
  aliases: ['REQPing'],
  kind: 'unary',
  summary: 'Answer "pong <node> <time>" to show this node is alive.',
  async run(ctx: MethodContext): Promise<MethodResult> {
    return { data: `pong ${ctx.node} ${new Date().toISOString()}` }
  },
} satisfies UnaryMethod

export const nodePong = {
  name: 'node.pong',
  aliases: ['REQPong'],
  sink: true,
  kind: 'unary',
  summary: 'Reply sink for node.ping: log the answer.',
  async run(ctx: MethodContext): Promise<MethodResult> {
    const data = dataText(ctx.env.data)
    const error = ctx.env.error === undefined ? '' : ` [error ${ctx.env.error.code}] ${ctx.env.error.message}`
    ctx.log('info', `pong from ${ctx.env.fromNode}: ${data}${error}`)
    return {}
  },
} satisfies UnaryMethod
