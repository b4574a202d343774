/**
 * The receiver's side of the store: ids seen (dedup for 24 h, with the sender's request
 * records: seen-store.ts) and the inbox (messages recorded before their ACK, until their method
 * finished). Like the outbox index, what is new lives in memory and reaches sql.js at the next
 * snapshot; an inbox entry opened and closed between two snapshots, which is nearly all of
 * them, never touches sql.js.
 */
import type { Database, Statement } from 'sql.js'
import { migrateToRuns, openSeen, type SeenLayout, type SeenStore } from './seen-store'
import { BatchStatement, insertRows } from './sqljs'

/** Receiver side: a message recorded before its ACK, until its method has finished. */
export interface InboxEntry {
  id: string
  from: string
  at: number
  body: Uint8Array
  /** received: not started yet (runs after a restart); started: was running (interrupted by a restart). */
  state: 'received' | 'started'
}

export const RECEIVER_TABLES = `
CREATE TABLE IF NOT EXISTS inbox (id TEXT PRIMARY KEY, fromNode TEXT NOT NULL, at INTEGER NOT NULL, body BLOB NOT NULL, state TEXT NOT NULL);
`

type Stmt = 'startInbox' | 'doneInbox'

export class ReceiverIndex {
  private seenSet: SeenStore
  /** The loaded snapshot's rows were moved to runs: a snapshot should write that even if nothing else changes. */
  readonly migratedAtOpen: boolean
  private readonly inboxHot = new Map<string, InboxEntry>()
  private readonly db: Database
  private readonly stmt: Record<Stmt, Statement>
  /** What a snapshot writes: the inbox entries still open. */
  private readonly insertInbox: BatchStatement

  /** `runs`: the dedup set in packed runs (format 3), moving a store's rows to them now. */
  constructor(db: Database, private readonly dir: string, runs: boolean) {
    this.db = db
    const opened = openSeen(db, dir, runs)
    this.seenSet = opened.store
    this.migratedAtOpen = opened.migrated
    this.stmt = {
      startInbox: db.prepare("UPDATE inbox SET state = 'started' WHERE id = ?"),
      doneInbox: db.prepare('DELETE FROM inbox WHERE id = ?'),
    }
    this.insertInbox = new BatchStatement(db, insertRows('INSERT OR REPLACE INTO inbox (id, fromNode, at, body, state) VALUES', 5), 5)
  }

  /** `rows` (formats 1 and 2) or `runs` (format 3). */
  get seenLayout(): SeenLayout {
    return this.seenSet.layout
  }

  /** Move the dedup set from rows to runs (the next snapshot writes format 3). */
  useRuns(): void {
    if (this.seenSet.layout === 'rows') {
      // What is new since the last snapshot goes with it.
      this.db.exec('BEGIN')
      try {
        this.seenSet.sync(-Infinity)
        this.db.exec('COMMIT')
      } catch (err) {
        this.db.exec('ROLLBACK')
        throw err
      }
      this.seenSet.committed()
      this.seenSet = migrateToRuns(this.db, this.dir, this.seenSet)
    }
  }

  seen(id: string, at: number): void {
    this.seenSet.add(id, at)
  }

  hasSeen(id: string): boolean {
    return this.seenSet.has(id)
  }

  add(id: string, from: string, at: number, body: Uint8Array): void {
    this.seenSet.add(id, at)
    if (!this.inboxHot.has(id)) this.inboxHot.set(id, { id, from, at, body, state: 'received' })
  }

  start(id: string): void {
    const e = this.inboxHot.get(id)
    if (e) e.state = 'started'
    else this.stmt.startInbox.run([id])
  }

  done(id: string): void {
    if (!this.inboxHot.delete(id)) this.stmt.doneInbox.run([id])
  }

  /** Open entries, oldest first. */
  inbox(): InboxEntry[] {
    const res = this.db.exec('SELECT id, fromNode, at, body, state FROM inbox')[0]
    const cold: InboxEntry[] = (res?.values ?? []).map((r) => ({ id: String(r[0]), from: String(r[1]), at: Number(r[2]), body: r[3] as Uint8Array, state: r[4] === 'started' ? 'started' : 'received' }))
    return [...cold, ...this.inboxHot.values()].sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1))
  }

  /** Write what is new into sql.js and forget ids older than `pruneBefore`. */
  syncToStore(pruneBefore: number): void {
    const { insertInbox } = this
    this.db.exec('BEGIN')
    try {
      this.seenSet.sync(pruneBefore)
      for (const e of this.inboxHot.values()) insertInbox.add(e.id, e.from, e.at, e.body, e.state)
      insertInbox.finish()
      this.db.exec('COMMIT')
    } catch (err) {
      insertInbox.clear()
      this.db.exec('ROLLBACK')
      this.seenSet.clear()
      throw err
    }
    this.seenSet.committed()
    this.inboxHot.clear()
  }

  /** The dedup set's run files sql.js names now (store format 3). */
  runFiles(): Set<number> {
    return this.seenSet.inUse()
  }

  /** Write the new run files durably: before the snapshot naming them is. */
  flushRunFiles(): Promise<void> {
    return this.seenSet.flushFiles()
  }

  /** After a durable snapshot: delete the run files neither it nor the one before it names. */
  removeRunFilesExcept(kept: Set<number>): Promise<void> {
    return this.seenSet.removeFilesExcept(kept)
  }

  get seenCount(): number {
    return this.seenSet.count
  }

  free(): void {
    for (const s of Object.values(this.stmt)) s.free()
    this.seenSet.free()
    this.insertInbox.free()
  }
}
