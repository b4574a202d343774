/**
 * Replies: what a method produced (or why it failed, or why its request was never delivered)
 * as the envelope that goes back to the requester. The one place a reply is built:
 *
 *   dispatcher.ts  a method's output, a stream's chunks, a refusal  ─▶ replyTo
 *   node.ts        a request whose attempts or ttl ran out           ─▶ undeliveredReply
 */
import { DEFAULT_REPLY_METHOD } from './method-names'
import type { MethodResult } from './method'
import { dataText, type Envelope } from './wire/envelope'

/** A method's result as a reply carries it; `seq`/`final` number a stream's replies. */
export type ReplyResult = MethodResult & { error?: { code: string; message: string }; seq?: number; final?: boolean }

/** Who builds the reply: the node answering, a fresh id and the time. */
export interface ReplyStamp {
  self: string
  id: string
  now: number
}

/** The reply to `req`: to its sender, running the reply method it named, with its reply delivery settings. */
export function replyTo(req: Envelope, result: ReplyResult, stamp: ReplyStamp): Envelope {
  const data = result.data
  return {
    id: stamp.id,
    toNode: req.fromNode,
    fromNode: stamp.self,
    method: req.replyMethod ?? DEFAULT_REPLY_METHOD,
    methodArgs: expandData(req.replyMethodArgs ?? [], dataText(data)),
    inReplyTo: req.id,
    ...(result.seq !== undefined ? { seq: result.seq } : {}),
    final: result.final ?? true,
    createdAt: stamp.now,
    ...(data !== undefined ? { data } : {}),
    ...(result.stderr !== undefined && result.stderr.length > 0 ? { stderr: result.stderr } : {}),
    ...(result.exitCode !== undefined ? { exitCode: result.exitCode } : {}),
    ...(result.error ? { error: result.error } : {}),
    ...(req.replyAckTimeout !== undefined ? { ackTimeout: req.replyAckTimeout } : {}),
    ...(req.replyRetries !== undefined ? { retries: req.replyRetries } : {}),
    ...(req.replyMethodTimeout !== undefined ? { methodTimeout: req.replyMethodTimeout } : {}),
    ...(req.directory !== undefined ? { directory: req.directory } : {}),
    ...(req.fileName !== undefined ? { fileName: req.fileName } : {}),
  }
}

/**
 * The error reply a sender gives itself for a request that was never delivered: as if the
 * receiver had answered, handed to the sender's own dispatcher (an event: nothing to deliver).
 */
export function undeliveredReply(req: Envelope, error: { code: string; message: string }, id: string, now: number): Envelope {
  return { ...replyTo(req, { error }, { self: req.toNode, id, now }), ackTimeout: 0 }
}

/** `{{DATA}}` (alias `{{STEWARD_DATA}}`) in replyMethodArgs becomes the method's output. */
export function expandData(args: string[], data: string): string[] {
  return args.map((a) => a.replaceAll('{{DATA}}', data).replaceAll('{{STEWARD_DATA}}', data))
}
