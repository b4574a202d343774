/**
 * file.put, file.chunk, file.commit: the receiving side of a file transfer (outpost cp to this
 * node), and file.reply, where the sending node takes the answers. The work is the node's file
 * room (src/files/): these only hand it their context.
 *
 *   file.put    [transfer JSON] ─ files.roots, files.maxBytes, free space, owner ─▶ { id, have, chunks }
 *   file.chunk  [id, index, sha256] + data ─▶ written at its place in .NAME.ID.outpost-part (never replied to)
 *   file.commit [id] ─▶ { missing: [...] } or { done, path, size, sha256 } (renamed into place); [id, abort] ─▶ deleted
 *               [id, abort-send] (to the sending node): its receiver cancelled the transfer ─▶ it stops sending
 */
import { OutpostError } from '../src/errors'
import type { MethodContext, UnaryMethod } from '../src/method'

function room(ctx: MethodContext): NonNullable<MethodContext['files']> {
  if (ctx.files === undefined) throw new OutpostError('method_failed', `${ctx.env.method}: file transfer needs a running node (it cannot run in outpost call)`)
  return ctx.files
}

export const filePut = {
  name: 'file.put',
  kind: 'unary',
  summary: 'Open a file transfer to this node (outpost cp builds it): checks files.roots, files.maxBytes and free space; answers the chunks held already.',
  run: (ctx) => room(ctx).put(ctx),
} satisfies UnaryMethod

export const fileChunk = {
  name: 'file.chunk',
  kind: 'unary',
  sink: true,
  selfHealing: true,
  summary: 'One chunk of a file transfer opened by file.put, written at its place in the temp file beside the target.',
  run: (ctx) => room(ctx).chunk(ctx),
} satisfies UnaryMethod

export const fileCommit = {
  name: 'file.commit',
  kind: 'unary',
  summary: 'End a file transfer: answers the chunks missing, or checks the whole sha256 and renames the file into place (abort: deletes it; abort-send: the sender stops).',
  run: (ctx) => room(ctx).commit(ctx),
} satisfies UnaryMethod

export const fileReply = {
  name: 'file.reply',
  kind: 'unary',
  sink: true,
  summary: 'Reply method of file transfers: the answers to file.put, file.commit and file.get drive the sending side.',
  run: (ctx) => room(ctx).reply(ctx),
} satisfies UnaryMethod
