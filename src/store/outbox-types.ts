/**
 * The outbox's public shapes: what is stored (OutboxEntry), what is given to enqueue
 * (EnqueueInput), how it is opened (OutboxOptions) and what it reports (OutboxStats).
 */
import type { Route } from './outbox-ops'

export interface OutboxEntry {
  id: string
  /** The receiving node. */
  dest: string
  /** Position in the global FIFO; per destination, lower goes first. */
  seq: number
  /** The encoded envelope, exactly as it goes on the wire. */
  body: Uint8Array
  createdAt: number
  /** Milliseconds since the epoch after which the message is given up (ttl). */
  expiresAt: number
  /** Delivery attempts spent so far. */
  attempts: number
  /** Not to be sent again before this time (ms since the epoch). */
  nextAt: number
  /**
   * How delivery sends it (ackTimeout, retries, method), stored with it; absent for a message
   * stored by an outpost before routes or while an upgrade may roll back.
   */
  route?: Route
}

export interface EnqueueInput {
  id: string
  dest: string
  body: Uint8Array
  createdAt: number
  expiresAt: number
  route?: Route
  /**
   * A request: remember that it went to `dest` naming `replyMethod`, until the dedup window
   * after `until` (when its reply may last come); what authorises its replies (sentRequest).
   */
  request?: { replyMethod: string; until: number }
}

export interface OutboxOptions {
  dir: string
  /** delivery.maxOutboxBytes: the most bytes of message bodies held at once. */
  maxBytes: number
  /** Journal bytes after which a snapshot is taken (bounds replay time at start). */
  checkpointBytes?: number
  /**
   * delivery.reserveBytes: zeros kept beside the journal (journal-reserve.dat) so that on a full
   * disk removals, replies and receipts are still written while new messages are refused; 0 (the
   * default here; the node passes the config's 4 MiB): none.
   */
  reserveBytes?: number
  /** Free bytes on the disk holding `dir` (tests inject one; default statfs). */
  free?: (dir: string) => Promise<number>
  /** How long ids are remembered for deduplication, in ms. */
  dedupWindowMs?: number
  now?: () => number
  /** Metrics hook: called with the size of each group-committed batch. */
  onBatch?: (records: number, bytes: number) => void
  /** Where warnings go (a torn journal tail, a dropped snapshot). */
  warn?: (message: string) => void
  /**
   * Called once the journal has been quiet for a second after a burst (a checkpoint's worth of
   * writes or more), after the snapshot that moved what it left in memory to the store: the
   * moment to give back memory the burst grew (node-open.ts: heap.ts).
   */
  afterBurst?: () => void
  /**
   * Keep the store in the format it is in (a new one in format 1: bodies inside sql.js; a
   * format-2 one with its `seen` rows) until useNewFormat() is called: while an upgrade may still
   * be rolled back to a binary that reads only that. A store already in format 3 stays in it
   * (its previous binary reads it).
   */
  keepOldFormat?: boolean
}

export interface OutboxStats {
  count: number
  bytes: number
  maxBytes: number
  seen: number
  journalBytes: number
  segment: number
  lastSnapshot: number
  /** Filled in by open(): what the start-up had to do. */
  recovery: { snapshot: number; replayedRecords: number; droppedBytes: number; damagedRecords: number; damagedSnapshots: string[]; ms: number }
  /** The disk filled up: new messages are refused (disk_full) until space is back; the rest is written from the reserve. */
  diskFull: boolean
  /** Bytes of reserve ready for a full disk (0 while it is in use or being made again). */
  reserveBytes: number
}
