/**
 * File transfer (types only): what a transfer's records hold on each side, and the room the
 * file.* methods reach through their context (src/method.ts `files`).
 */
import type fs from 'node:fs'
import type { MethodContext, MethodResult } from '../method'
import type { WholeHash } from './whole-hash'

/** What the sender tells the receiver when it opens a transfer (file.put's one argument, as JSON). */
export interface PutMeta {
  /** The transfer id (a ULID), the same on both sides and for every chunk. */
  id: string
  /** Absolute target path on the receiver; a directory (existing, or ending in /) takes `name`. */
  path: string
  /** The source file's base name. */
  name: string
  size: number
  /** sha256 of the whole file, hex; empty when the sender gives it with file.commit (it hashes the file as it sends it). */
  sha256: string
  chunkBytes: number
  /** File mode of the target, e.g. 0o644 (default: 0644, or the mode of the file replaced). */
  mode?: number
  /** user[:group] to own the target (the receiver must run as root). */
  owner?: string
  /** Create missing parent directories (inside a root). */
  mkdir?: boolean
}

/** What file.get is asked (its one argument, as JSON). */
export interface GetMeta {
  id: string
  /** Absolute path of the file to send. */
  path: string
  /** Node the file goes to (default: the node asking). */
  to?: string
  /** Target path on that node. */
  dest: string
  mode?: number
  owner?: string
  mkdir?: boolean
  /** Bytes per second, 0: no cap. */
  rate?: number
}

export type TransferState = 'hashing' | 'opening' | 'sending' | 'committing' | 'expected' | 'receiving' | 'done' | 'failed' | 'cancelled'

/** A transfer as `outpost transfers` and progress lines show it. */
export interface TransferInfo {
  id: string
  direction: 'out' | 'in'
  /** The other node. */
  peer: string
  /** Source path (out) or target path (in). */
  path: string
  /** Target path on the peer (out). */
  dest?: string
  state: TransferState
  size: number
  /** Bytes acknowledged (out) or written and synced (in). */
  bytes: number
  /** Chunk bytes sent more than once (out) or received more than once (in). */
  resent: number
  sha256?: string
  startedAt: number
  updatedAt: number
  error?: { code: string; message: string }
}

/** Each file.* method hands its context to the room of the node it runs on. */
export interface FileRoom {
  put(ctx: MethodContext): Promise<MethodResult>
  chunk(ctx: MethodContext): Promise<MethodResult>
  commit(ctx: MethodContext): Promise<MethodResult>
  get(ctx: MethodContext): Promise<MethodResult>
  /** A reply to one of this node's file.put / file.commit requests. */
  reply(ctx: MethodContext): Promise<MethodResult>
}

/** A transfer this node sends (sender.ts), as <dataDir>/transfers/out/<id>.json keeps it. */
export interface OutRecord {
  id: string
  to: string
  /** Real path of the source file. */
  src: string
  dest: string
  name: string
  size: number
  /** The source's modification time when the transfer started: changed by the commit, the transfer fails (file_source_changed). */
  mtimeMs?: number
  /** The whole file's, hex; '' until every chunk has been read once (given with file.commit). */
  sha256: string
  chunkBytes: number
  chunks: number
  mode?: number
  owner?: string
  mkdir?: boolean
  /** Bytes per second; 0: no cap. */
  rate: number
  state: 'opening' | 'sending' | 'committing' | 'done' | 'failed' | 'cancelled'
  /** The file.put or file.commit whose reply is awaited. */
  pending?: string | undefined
  /** What the receiver holds (Bitmap, base64), as its last answer said. */
  have: string
  /** The receiver checks a chunk by upTo alone (its file.put answer said so): chunks read in order go without their own sha256. */
  upTo?: boolean
  /** Next chunk to send in order; `resend`: chunks the receiver said are missing. */
  next: number
  resend: number[]
  /** Bytes acknowledged by the receiver. */
  acked: number
  /** Chunk bytes sent again (missing at commit). */
  resent: number
  startedAt: number
  updatedAt: number
  result?: { path: string; size: number; sha256: string }
  error?: { code: string; message: string }
}

/** A transfer waits this long (ttl) in the outbox for its receiver: a week, for nodes on bad links. */
export const TRANSFER_TTL = 7 * 86400

/** Resends of one transfer message before it is given up: its ttl, not a count, should end it on a bad link. */
export const TRANSFER_RETRIES = 10_000

/** Finished records are kept this long (`outpost transfers --all`, a late commit answered again). */
export const KEEP_FINISHED_MS = 7 * 86400 * 1000

export function outInfo(r: OutRecord): TransferInfo {
  return {
    id: r.id, direction: 'out', peer: r.to, path: r.src, dest: r.dest, state: r.state, size: r.size, bytes: Math.min(r.size, r.acked), resent: r.resent,
    ...(r.sha256 !== '' ? { sha256: r.sha256 } : {}), startedAt: r.startedAt, updatedAt: r.updatedAt, ...(r.error ? { error: r.error } : {}),
  }
}

/** A transfer that will not change any more. */
export function ended(state: string): boolean {
  return state === 'done' || state === 'failed' || state === 'cancelled'
}

/** A transfer the sender is sending now (sender.ts): what is in flight, and its open source. */
export interface Live {
  handle: fs.promises.FileHandle | undefined
  inFlight: Map<string, number>
  /** Chunks read and being stored (submitted, not yet durable): they count against the window. */
  storing: number
  pumping: boolean
  /** For --rate: when this pass started and what it sent since. */
  t0: number
  sentSince: number
  lastSave: number
  /** Commits answered with chunks missing. */
  rounds: number
  /** Ids of the chunk messages sent in this run. */
  sent: string[]
  /** The whole file's sha256, fed with the chunks as this run reads them (while the record has none). */
  whole: WholeHash
}
