/**
 * What a node tells its local APIs about itself and its messages: its status (`outpost status`,
 * GET /v1/status) and what it knows of a message it sent (GET /v1/messages/:id): still queued in
 * its outbox, else the reply a reply sink stored for it.
 */
import type { ConnectionState } from './link-state'
import type { JobInfo, Method } from './method'
import type { Outbox, OutboxStats } from './store/outbox'
import { decode } from './wire/envelope'

/** This node as `outpost status` and GET /v1/status show it. */
export interface NodeStatus {
  node: string
  version: string
  pid: number
  dataDir: string
  /** When the node started (ms since the epoch). */
  startedAt: number
  /** Whether the transport is connected now (connection says more). */
  connected: boolean
  /** The link to the hub or broker: kind, connected, server, since, the last refusal. */
  connection: ConnectionState
  /** The store's figures, and per destination what waits for it (oldest first by age). */
  outbox: OutboxStats & { destinations: { node: string; count: number; bytes: number; oldest: number }[] }
  /** Methods running on this node now (the inbox's runs in progress): id, method, from, started. */
  runs: JobInfo[]
}

/** What this node knows of a message it sent, from its outbox or a reply it stored. */
export type MessageRecord =
  | { state: 'queued'; id: string; toNode: string; method: string; createdAt: number; expiresAt: number; attempts: number }
  | { state: 'replied' | 'failed'; id: string; toNode: string; replyFile: string; text: string; error?: { code: string; message: string } }

/** What this node knows of message `id` it sent: queued in `outbox`, or a reply some method stored. */
export function lookupMessage(outbox: Pick<Outbox, 'get'>, methods: ReadonlyMap<string, Method>, dataDir: string, id: string): MessageRecord | undefined {
  const queued = outbox.get(id)
  if (queued !== undefined) {
    let method = queued.route?.method ?? ''
    // A message stored without its route (by an older outpost): its method from the body.
    if (queued.route === undefined) try { method = decode(queued.body).method } catch { /* the outbox holds what it sent */ }
    return { state: 'queued', id, toNode: queued.dest, method, createdAt: queued.createdAt, expiresAt: queued.expiresAt, attempts: queued.attempts }
  }
  for (const m of methods.values()) {
    const stored = m.kind === 'unary' ? m.stored?.(dataDir, id) : undefined
    if (stored === undefined) continue
    return { state: stored.error ? 'failed' : 'replied', id, toNode: stored.fromNode, replyFile: stored.file, text: stored.text, ...(stored.error ? { error: stored.error } : {}) }
  }
  return undefined
}
