/**
 * file.get: send a file of this node (inside files.read) to the node asking, or to another
 * node. The transfer itself is the node's file room (src/files/sender.ts): chunks through the
 * outbox to the receiver's file.put / file.chunk / file.commit. Answers once the transfer is
 * under way: { id, started, to, size, sha256 }.
 *
 *   args: [transfer JSON {id, path, dest, to?, mode?, owner?, mkdir?, rate?}] (outpost cp builds it)
 *         or steward's REQCopySrc form [SRC_PATH, DST_NODE, DST_PATH]
 */
import { OutpostError } from '../src/errors'
import type { UnaryMethod } from '../src/method'

export default {
  name: 'file.get',
  aliases: ['REQCopySrc'],
  kind: 'unary',
  summary: 'Send a file of this node (inside files.read) to the asking node or to another one, resumably (outpost cp NODE:/path …).',
  async run(ctx) {
    if (ctx.files === undefined) throw new OutpostError('method_failed', 'file.get: file transfer needs a running node (it cannot run in outpost call)')
    return ctx.files.get(ctx)
  },
} satisfies UnaryMethod
