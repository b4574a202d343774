/**
 * What a journal record does to the outbox's memory (applyOp: the same at replay and live), the
 * keys of the sender's request records in the `seen` set, and how the journal treats each kind
 * of record (isUrgentOp, isLazyOp, settlesOp: see JournalHooks).
 */
import { createHash } from 'node:crypto'
import { OutpostError } from '../errors'
import type { LiveEntry, OutboxIndex } from './outbox-index'
import { isNewMessage, OP_ATTEMPT, OP_ENQUEUE, OP_ENQUEUE_ROUTED, OP_INBOX_ADD, OP_INBOX_DONE, OP_INBOX_START, OP_REMOVE, OP_REPLY, OP_REPLY_ROUTED, OP_SEEN, routeOf, type Op } from './outbox-ops'
import type { OutboxEntry } from './outbox-types'
import type { PendingMessages } from './outbox-pending'
import type { ReceiverIndex } from './receiver-index'

/** Keys of the sender's request records in the seen set ('!' sorts below every ULID). */
export const SENT_PREFIX = '!'

/** Digests of recent (receiver, reply method) pairs: a stream of requests names few, and a SHA-256 costs ~1.5 µs. */
const sentDigests = new Map<string, string>()
const SENT_DIGESTS = 1024

/** 43 bytes whatever the names' lengths: the id, and a digest of the receiver and reply method. */
export function sentKey(id: string, dest: string, replyMethod: string): string {
  // A stream of requests names one pair over and over: the last one's digest, without a lookup.
  if (last === undefined || dest !== last.dest || replyMethod !== last.replyMethod) {
    const pair = `${dest}\0${replyMethod}`
    let digest = sentDigests.get(pair)
    if (digest === undefined) {
      digest = createHash('sha256').update(pair).digest('base64url').slice(0, 16)
      if (sentDigests.size >= SENT_DIGESTS) sentDigests.clear()
      sentDigests.set(pair, digest)
    }
    last = { dest, replyMethod, digest }
  }
  return SENT_PREFIX + id + last.digest
}
let last: { dest: string; replyMethod: string; digest: string } | undefined

/** Receipts are ACKed once durable: a burst of them commits in pieces. A request's record (a `!` key) is not a receipt: it rides with its enqueue, in whole batches. */
export function isUrgentOp(op: Op): boolean {
  return op[0] === OP_INBOX_ADD || (op[0] === OP_SEEN && !op[1].startsWith(SENT_PREFIX))
}

/** Nobody waits on these promptly (delivery frees the window slot before the removal is written): they ride with the next record someone waits on. */
export function isLazyOp(op: Op): boolean {
  return op[0] === OP_REMOVE || op[0] === OP_ATTEMPT || op[0] === OP_INBOX_DONE
}

/**
 * On a full disk, what settles messages already accepted (removals, attempts, receipts, runs,
 * replies) is still written, from the reserve; new messages and their request records are
 * refused until space is back.
 */
export function settlesOp(op: Op): boolean {
  return !isNewMessage(op) && !(op[0] === OP_SEEN && op[1].startsWith(SENT_PREFIX))
}

export function reservedId(id: string): OutpostError {
  return new OutpostError('envelope_invalid', `store: id ${JSON.stringify(id.slice(0, 40))} starts with '${SENT_PREFIX}', which is reserved for this node's request records; not recorded`)
}

/** A committed batch applied to memory: each record (applyOp), what it held settled, removals last. */
export function applyBatch(index: OutboxIndex, receiver: ReceiverIndex, ops: Op[], pending: PendingMessages, pendingSeen: Set<string>): void {
  // Removals go last, together: a stored message then costs a share of one sql.js statement,
  // not one each. (Nothing else in a commit depends on them: an id is never enqueued again
  // while its removal is unwritten, since it is still queued until then.)
  let removed: string[] | undefined
  for (const op of ops) {
    if (op[0] === OP_REMOVE) {
      (removed ??= []).push(op[1])
      continue
    }
    const m = applyOp(index, receiver, op)
    if (m !== undefined) pending.settled(m.id, m.body.length)
    else if (op[0] === OP_SEEN || op[0] === OP_INBOX_ADD) pendingSeen.delete(op[1])
  }
  if (removed !== undefined) index.removeAll(removed)
}

/** One journal op applied to the in-memory state: the same at replay and live. Returns the message an op queued. */
export function applyOp(index: OutboxIndex, receiver: ReceiverIndex, op: Op): LiveEntry | undefined {
  // The message ops become their index entry directly (this runs for every message committed).
  let e: LiveEntry
  switch (op[0]) {
    case OP_ENQUEUE:
      e = { id: op[1], dest: op[2], seq: op[3], createdAt: op[4], expiresAt: op[5], attempts: 0, nextAt: 0, body: op[6] }
      index.add(e)
      return e
    case OP_ENQUEUE_ROUTED:
      e = { id: op[1], dest: op[2], seq: op[3], createdAt: op[4], expiresAt: op[5], attempts: 0, nextAt: 0, body: op[11] }
      e.route = routeOf(op[6], op[7], op[8])
      index.add(e)
      if (op[9] !== '') receiver.seen(sentKey(op[1], op[2], op[9]), op[10])
      return e
    case OP_REPLY:
      e = { id: op[1], dest: op[2], seq: op[3], createdAt: op[4], expiresAt: op[5], attempts: 0, nextAt: 0, body: op[6] }
      index.add(e)
      receiver.done(op[7])
      return e
    case OP_REPLY_ROUTED:
      e = { id: op[1], dest: op[2], seq: op[3], createdAt: op[4], expiresAt: op[5], attempts: 0, nextAt: 0, body: op[10] }
      e.route = routeOf(op[6], op[7], op[8])
      index.add(e)
      receiver.done(op[9])
      return e
    case OP_REMOVE:
      index.remove(op[1])
      break
    case OP_ATTEMPT:
      index.attempt(op[1], op[2], op[3])
      break
    case OP_SEEN:
      receiver.seen(op[1], op[2])
      break
    case OP_INBOX_ADD:
      receiver.add(op[1], op[2], op[3], op[4])
      break
    case OP_INBOX_START:
      receiver.start(op[1])
      break
    case OP_INBOX_DONE:
      receiver.done(op[1])
      break
  }
  return undefined
}

/** A copy for callers: they may keep it while the index changes the live one. */
export function entry(e: LiveEntry): OutboxEntry {
  const out: OutboxEntry = { id: e.id, dest: e.dest, seq: e.seq, body: e.body, createdAt: e.createdAt, expiresAt: e.expiresAt, attempts: e.attempts, nextAt: e.nextAt }
  if (e.route) out.route = e.route
  return out
}
