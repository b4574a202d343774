/**
 * reply.none: a reply sink that keeps nothing, for a request whose replies nobody needs
 * (steward's REQNone, "used when there should be no reply"). The reply still ends the request
 * at the sender (a waiting `outpost send` prints it and exits by it); nothing is written.
 */
import type { MethodResult, UnaryMethod } from '../src/method'

export default {
  name: 'reply.none',
  aliases: ['REQNone'],
  sink: true,
  kind: 'unary',
  summary: 'Keep nothing of a reply (steward\'s REQNone): for requests whose replies nobody needs.',
  async run(): Promise<MethodResult> {
    return {}
  },
} satisfies UnaryMethod
