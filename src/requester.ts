/**
 * The requester's side of the receive path: replies arriving for requests this node sent.
 *
 *   reply ─▶ authorised? (this node's record: that request, to that node, naming that reply
 *            method; else refused, logged, reported, and told to a waiting client without its data)
 *         ─▶ run its reply method, one reply of a request at a time, in arrival order
 *         ─▶ the final reply to waiting clients, carrying the first failure of the request's
 *            reply methods (a path_outside, a full disk)
 *
 * The dispatcher (dispatcher.ts) decodes, dedups and runs; this module holds what is particular
 * to replies.
 */
import { OutpostError } from './errors'
import type { MessageEventSink } from './events'
import type { LogFn } from './log'
import type { InboxFacet } from './store/outbox'
import type { Envelope } from './wire/envelope'

type Failure = { code: string; message: string }

export interface RequesterOptions {
  self: string
  outbox: Pick<InboxFacet, 'sentRequest'>
  /** A reply arrived here: hand it to whoever waits for it; true when someone did. */
  onReply: (env: Envelope) => boolean
  report?: (error: Failure) => void
  events?: MessageEventSink
  log: LogFn
}

export class Requester {
  private readonly o: RequesterOptions
  /** Per request id: the reply methods of its replies, run one after another. */
  private readonly chains = new Map<string, Promise<void>>()
  /** Per request id: the first failure of a stream chunk's reply method, told with the final reply. */
  private readonly failures = new Map<string, Failure>()

  constructor(o: RequesterOptions) {
    this.o = o
  }

  /**
   * A reply to a request this node did not send to its sender naming its method (forged, or
   * misdirected): refused and logged, reported to error.log, and told to a waiting client as an
   * error without its data (the client takes it only from the node its request went to).
   */
  forged(env: Envelope): boolean {
    if (this.o.outbox.sentRequest(env.inReplyTo!, env.fromNode, env.method)) return false
    const error = new OutpostError('denied', `${this.o.self} refused reply ${env.id} from ${env.fromNode} to ${env.inReplyTo}: it sent no request ${env.inReplyTo} to ${env.fromNode} naming the reply method ${env.method}; nothing was run`).toJSON()
    this.o.log('warn', `dispatch: ${error.message}`, { id: env.id, from: env.fromNode, method: env.method, code: error.code })
    this.o.events?.({ type: 'denied', id: env.id, fromNode: env.fromNode, method: env.method, error })
    this.o.report?.(error)
    this.o.onReply(withoutOutput(env, error))
    return true
  }

  /**
   * Run `fn` (env's reply method) after the replies to the same request that came before it.
   * Stream chunks reach waiting clients at once; the final reply once its reply method ran.
   */
  async inOrder(env: Envelope, fn: () => Promise<void>): Promise<void> {
    if (env.final === false) this.o.onReply(env)
    const key = env.inReplyTo!
    const run = (this.chains.get(key) ?? Promise.resolve()).then(fn)
    this.chains.set(key, run)
    await run
    if (this.chains.get(key) === run) this.chains.delete(key)
  }

  /**
   * A reply's method ran (or could not): a failure goes to error.log (a full disk's does not:
   * `report` false, the disk guard logged it once); the final reply goes to waiting clients
   * carrying the first failure of its request's reply methods (unless the reply is an error
   * already: the client then learns the remote one, the log has the local one).
   */
  replied(env: Envelope, failure: Failure | undefined, report = true): void {
    const key = env.inReplyTo!
    if (failure !== undefined) {
      if (report) this.o.report?.(failure)
      if (!this.failures.has(key)) this.failures.set(key, failure)
    }
    if (env.final === false) return
    const first = this.failures.get(key)
    this.failures.delete(key)
    this.o.onReply(first !== undefined && env.error === undefined ? { ...env, error: first } : env)
  }
}

/** A refused reply as a waiting client gets it: the error, none of the output. */
function withoutOutput(env: Envelope, error: Failure): Envelope {
  const { data: _data, stderr: _stderr, exitCode: _exitCode, ...rest } = env
  return { ...rest, final: true, error }
}
