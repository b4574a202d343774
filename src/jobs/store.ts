/**
 * Where central keeps its jobs: `<dataDir>/jobs/<id>.json`, one file a job, written whole to a
 * temporary file, synced and renamed over the old one (a crash leaves the old or the new record,
 * never half of one). Beside it `<id>.sent` marks each message handed to the outbox (appended and
 * synced before it is), and `<id>.replies` holds the final replies, appended by the reply method
 * reply.job (methods/reply-job.ts) before central acknowledges them.
 */
import fs from 'node:fs'
import path from 'node:path'
import type { EnvelopeError, MessageDraft } from '../wire/envelope'

/** What became of one node of a job. */
export type NodeState = 'pending' | 'delivered' | 'running' | 'ok' | 'failed' | 'expired' | 'not_selected' | 'skipped' | 'cancelled'
export const NODE_STATES: readonly NodeState[] = ['pending', 'delivered', 'running', 'ok', 'failed', 'expired', 'not_selected', 'skipped', 'cancelled']
/** States a node's message no longer changes from (`cancelled`: its message was withdrawn unsent when the job was cancelled). */
export const FINAL: ReadonlySet<NodeState> = new Set(['ok', 'failed', 'expired', 'not_selected', 'skipped', 'cancelled'])

export interface JobNode {
  name: string
  /** Its message's id, fixed when the job was made: sent again after a crash, it never runs twice. */
  id: string
  /** The selector that picked it (the node checks it: not_selected). */
  selector?: string
  state: NodeState
  /** Handed to the outbox (ms); absent while it waits for its turn. */
  sentAt?: number
  deliveredAt?: number
  endedAt?: number
  exitCode?: number
  error?: EnvelopeError
  output?: string
  /** Why it was skipped. */
  reason?: string
}

export interface JobOptions {
  /** At most this many nodes at once: a count, or a percentage of the job's nodes ("10%"). */
  batch?: string
  /** Start no more nodes once this many failed (failed and expired count). */
  maxErrors?: number
  /** This many nodes first; the rest only once each of them is ok. */
  canary?: number
  /** Seconds a node's message waits for an offline node (its ttl) before it expires. */
  ttl?: number
}

export type JobStatus = 'running' | 'done' | 'stopped' | 'cancelled'

export interface JobRecord {
  id: string
  createdAt: number
  endedAt?: number
  /** What made it, when not a request: `schedule 2 (0 3 * * *)`. */
  origin?: string
  /** The receivers as given (`role=db`, `ship1`). */
  targets: string[]
  /** The message each node gets, without its receivers. */
  message: MessageDraft
  options: JobOptions
  status: JobStatus
  /** Why it stopped (max-errors, canary, cancel). */
  reason?: string
  nodes: JobNode[]
}

/** One line of `<id>.replies` (reply.job). */
export interface KeptReply {
  id: string
  node: string
  at: number
  exitCode?: number
  error?: EnvelopeError
  output?: string
  stderr?: string
}

export class JobStore {
  readonly dir: string

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'jobs')
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 })
  }

  /** Every job kept, oldest first. */
  load(): JobRecord[] {
    const out: JobRecord[] = []
    for (const f of fs.readdirSync(this.dir)) {
      if (!f.endsWith('.json')) continue
      try {
        out.push(JSON.parse(fs.readFileSync(path.join(this.dir, f), 'utf8')) as JobRecord)
      } catch { /* a file that is not a job's: left alone */ }
    }
    return out.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
  }

  /** Write the job's record durably (temporary file, fdatasync, rename). */
  save(job: JobRecord): void {
    const file = path.join(this.dir, `${job.id}.json`)
    const tmp = `${file}.tmp`
    const fd = fs.openSync(tmp, 'w', 0o600)
    try {
      fs.writeSync(fd, JSON.stringify(job))
      fs.fdatasyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, file)
  }

  /** Remove job `id`: its record, its marks and its replies. */
  remove(id: string): void {
    for (const ext of ['.json', '.sent', '.replies']) fs.rmSync(path.join(this.dir, `${id}${ext}`), { force: true })
  }

  /**
   * Mark messages of job `id` as handed to the outbox, durably, before they are: one line each
   * (`<message id> <ms>`) appended to `<id>.sent` and synced. Cheaper than rewriting the record
   * at every start of a job of thousands of nodes; the record catches up later.
   */
  markSent(id: string, messages: readonly string[], at: number): void {
    const fd = fs.openSync(path.join(this.dir, `${id}.sent`), 'a', 0o600)
    try {
      fs.writeSync(fd, messages.map((m) => `${m} ${at}\n`).join(''))
      fs.fdatasyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
  }

  /** The messages of job `id` marked sent, with when. */
  sent(id: string): Map<string, number> {
    const out = new Map<string, number>()
    let text = ''
    try {
      text = fs.readFileSync(path.join(this.dir, `${id}.sent`), 'utf8')
    } catch {
      return out
    }
    for (const line of text.split('\n')) {
      const [m, at] = line.split(' ')
      // A line cut by a crash was not followed by its message's hand-over: left out.
      if (m !== undefined && m.length === 26 && at !== undefined && /^\d+$/.test(at)) out.set(m, Number(at))
    }
    return out
  }

  /** The final replies reply.job kept for job `id`, by request id. */
  replies(id: string): Map<string, KeptReply> {
    const out = new Map<string, KeptReply>()
    let text = ''
    try {
      text = fs.readFileSync(path.join(this.dir, `${id}.replies`), 'utf8')
    } catch {
      return out
    }
    for (const line of text.split('\n')) {
      if (line === '') continue
      try {
        const r = JSON.parse(line) as KeptReply
        if (!out.has(r.id)) out.set(r.id, r)
      } catch { /* a line cut by a crash: its reply was not acknowledged, it comes again */ }
    }
    return out
  }
}
