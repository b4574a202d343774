/**
 * The receiver's side of the store: ids seen (dedup for 24 h) and the inbox (messages recorded
 * before their ACK, until their method finished). Like the outbox index, what is new lives in
 * memory and reaches sql.js at the next snapshot; an inbox entry opened and closed between
 * two snapshots, which is nearly all of them, never touches sql.js.
 */
import type { Database, Statement } from 'sql.js'
import { BatchStatement, hasRow, insertRows } from './sqljs'

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
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
CREATE TABLE IF NOT EXISTS inbox (id TEXT PRIMARY KEY, fromNode TEXT NOT NULL, at INTEGER NOT NULL, body BLOB NOT NULL, state TEXT NOT NULL);
`

type Stmt = 'hasSeen' | 'startInbox' | 'doneInbox' | 'prune'

export class ReceiverIndex {
  private readonly seenHot = new Map<string, number>()
  private readonly inboxHot = new Map<string, InboxEntry>()
  /**
   * No stored id sorts after this one (ids are compared as strings; ULIDs sort by time): an id
   * past it was not received before the last snapshot, and needs no sql.js lookup.
   */
  private maxStoredId: string
  private readonly db: Database
  private readonly stmt: Record<Stmt, Statement>
  /** What a snapshot writes: the ids seen since the last one, and the inbox entries still open. */
  private readonly insertSeen: BatchStatement
  private readonly insertInbox: BatchStatement
  /** Rows of the `seen` table, counted once per snapshot (status reads seenCount often; a count(*) is ~1 ms). */
  private storedSeen: number

  constructor(db: Database) {
    this.db = db
    this.stmt = {
      hasSeen: db.prepare('SELECT 1 FROM seen WHERE id = ?'),
      startInbox: db.prepare("UPDATE inbox SET state = 'started' WHERE id = ?"),
      doneInbox: db.prepare('DELETE FROM inbox WHERE id = ?'),
      prune: db.prepare('DELETE FROM seen WHERE at < ?'),
    }
    this.insertSeen = new BatchStatement(db, insertRows('INSERT OR REPLACE INTO seen (id, at) VALUES', 2), 2)
    this.insertInbox = new BatchStatement(db, insertRows('INSERT OR REPLACE INTO inbox (id, fromNode, at, body, state) VALUES', 5), 5)
    this.maxStoredId = String(db.exec('SELECT max(id) FROM seen')[0]?.values[0]?.[0] ?? '')
    this.storedSeen = this.countStored()
  }

  private countStored(): number {
    return Number(this.db.exec('SELECT count(*) FROM seen')[0]?.values[0]?.[0] ?? 0)
  }

  seen(id: string, at: number): void {
    this.seenHot.set(id, at)
  }

  hasSeen(id: string): boolean {
    return this.seenHot.has(id) || (id <= this.maxStoredId && hasRow(this.stmt.hasSeen, [id]))
  }

  add(id: string, from: string, at: number, body: Uint8Array): void {
    this.seenHot.set(id, at)
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
    const { insertSeen, insertInbox } = this
    this.db.exec('BEGIN')
    try {
      for (const [id, at] of this.seenHot) {
        if (at < pruneBefore) continue
        insertSeen.add(id, at)
        if (id > this.maxStoredId) this.maxStoredId = id
      }
      insertSeen.finish()
      for (const e of this.inboxHot.values()) insertInbox.add(e.id, e.from, e.at, e.body, e.state)
      insertInbox.finish()
      this.stmt.prune.run([pruneBefore])
      this.db.exec('COMMIT')
    } catch (err) {
      insertSeen.clear()
      insertInbox.clear()
      this.db.exec('ROLLBACK')
      throw err
    }
    this.seenHot.clear()
    this.inboxHot.clear()
    this.storedSeen = this.countStored()
  }

  get seenCount(): number {
    return this.seenHot.size + this.storedSeen
  }

  free(): void {
    for (const s of Object.values(this.stmt)) s.free()
    this.insertSeen.free()
    this.insertInbox.free()
  }
}
