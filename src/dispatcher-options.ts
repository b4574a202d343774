/** What the dispatcher (src/dispatcher.ts) is made with. */
import type { Config } from './config'
import type { Control } from './config/apply'
import type { MessageEventSink } from './events'
import type { FileRoom } from './files/types'
import type { LogFn } from './log'
import type { DiskRoom, Method } from './method'
import type { Metrics } from './metrics'
import type { ReplySigning } from './reply-signing'
import type { Live } from './sessions/live'
import type { InboxFacet, Outbox } from './store/outbox'
import type { Envelope } from './wire/envelope'

export interface DispatcherOptions {
  self: string
  config: Config
  dataDir: string
  /** markSeen: a request to a sink is recorded as seen only (receive()). */
  outbox: InboxFacet & Pick<Outbox, 'markSeen'>
  methods: ReadonlyMap<string, Method>
  /** ACK message `id` to node `to`, straight back (never through the outbox; ack-sender.ts makes the envelope). */
  sendAck: (to: string, id: string) => void
  /** Queue an envelope through the outbox; `inboxId` is closed in the same record. */
  enqueue: (env: Envelope, inboxId?: string) => Promise<void>
  onAck: (id: string) => void
  /** A reply arrived here: hand it to whoever waits for it; true when someone did. */
  onReply: (env: Envelope) => boolean
  /** True for a request this node gave up on (its error reply went out already). */
  gaveUp?: (id: string) => boolean
  /** Stream output coalescing (defaults 4096 bytes, 50 ms). */
  stream?: { maxBytes?: number; maxDelayMs?: number }
  /** Told when a method ran here, or a message was refused. */
  events?: MessageEventSink
  /** Something failed with nobody to tell but the operator: central's error.log gets it. */
  report?: (error: { code: string; message: string }) => void
  /** Handed to methods as ctx.control (config.*, agent.restart). */
  control?: Control
  /** Handed to methods as ctx.disk: room on the data directory's disk for reply files and errors.log. */
  disk?: DiskRoom
  /** Handed to methods as ctx.files: the node's file transfers. */
  files?: FileRoom
  /** A message a part of this node expects (a file it pulls): let in whatever methods.allow says. */
  admit?: (env: Envelope) => boolean
  /** Live channels: session.frame envelopes go there, and methods get it as ctx.live. */
  live?: Live
  log: LogFn
  now: () => number
  ulid: () => string
  metrics?: Metrics
  /** Replies signed with this node's key, and replies from other nodes checked against their pinned keys (reply-signing.ts). */
  replySigning?: ReplySigning
}

