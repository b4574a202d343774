/**
 * A bounded, in-memory record of recent requests sent from this node and the replies they got,
 * for `GET /v1/messages/:id`. It forgets the oldest first, past `maxRequests` requests or
 * `maxBytes` of reply data; a restart forgets everything (the reply files under
 * <dataDir>/replies/ and the outbox are what survives, and api/http.ts looks there too).
 *
 *   HTTP POST accepted ─▶ add(envs)          any reply arriving here ─▶ reply(env)
 */
import type { Envelope } from '../wire/envelope'
import { envelopeJson } from '../submit'

export interface RecentRequest {
  id: string
  toNode: string
  /** Unknown ('') for a request this node learnt of from its reply. */
  method: string
  acceptedAt: number | undefined
  replies: Record<string, unknown>[]
  /** Replies left out of `replies` once the request had used its share of bytes. */
  repliesDropped: number
  final: boolean
  error: { code: string; message: string } | undefined
  bytes: number
}

export interface RecentOptions {
  /** Requests remembered (default 10,000). */
  maxRequests?: number
  /** Bytes of reply data (data + stderr) kept in all (default 16 MiB). */
  maxBytes?: number
  /** Bytes of reply data kept per request (default 1 MiB). */
  maxBytesPerRequest?: number
}

export class RecentRequests {
  private readonly map = new Map<string, RecentRequest>()
  private bytes = 0
  private readonly maxRequests: number
  private readonly maxBytes: number
  private readonly perRequest: number

  constructor(o: RecentOptions = {}) {
    this.maxRequests = o.maxRequests ?? 10_000
    this.maxBytes = o.maxBytes ?? 16 * 1024 * 1024
    this.perRequest = o.maxBytesPerRequest ?? 1024 * 1024
  }

  /** Messages accepted here (their outcome is to be remembered). */
  add(envs: Envelope[], now: number): void {
    for (const e of envs) this.record(e.id, e.toNode, e.method, now)
    this.trim()
  }

  /**
   * A request this node sent by other means (a job's message to one node): recorded with its
   * method if it is not known yet, or given its method if a reply came first.
   */
  known(id: string, toNode: string, method: string, at: number | undefined): void {
    const r = this.map.get(id)
    if (r === undefined) {
      this.record(id, toNode, method, at)
      this.trim()
    } else if (r.method === '') {
      r.method = method
      r.acceptedAt ??= at
    }
  }

  /** A reply arrived at this node (from any API or none: schedules, the CLI). */
  reply(env: Envelope): void {
    const id = env.inReplyTo
    if (id === undefined) return
    const known = this.map.get(id)
    // Only the node a request went to answers it (a refused forged reply from another is not its outcome).
    if (known !== undefined && known.toNode !== env.fromNode) return
    const r = known ?? this.record(id, env.fromNode, '', undefined)
    const size = byteLength(env.data) + byteLength(env.stderr)
    if (r.bytes + size > this.perRequest) {
      r.repliesDropped++
    } else {
      r.replies.push(envelopeJson(env))
      r.bytes += size
      this.bytes += size
    }
    if (env.final === true || env.error !== undefined) {
      r.final = true
      r.error ??= env.error
    }
    this.trim()
  }

  get(id: string): RecentRequest | undefined {
    return this.map.get(id)
  }

  get size(): number {
    return this.map.size
  }

  /** The last `limit` requests to `toNode` (newest first), without their replies. */
  latest(toNode: string, limit: number): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = []
    const all = [...this.map.values()]
    for (let i = all.length - 1; i >= 0 && out.length < limit; i--) {
      const r = all[i]!
      if (r.toNode !== toNode) continue
      const last = r.final ? r.replies[r.replies.length - 1] : undefined
      out.push({
        id: r.id, method: r.method, ...(r.acceptedAt !== undefined ? { acceptedAt: r.acceptedAt } : {}), final: r.final,
        ...(last?.exitCode !== undefined ? { exitCode: last.exitCode } : {}), ...(r.error ? { error: r.error } : {}),
      })
    }
    return out
  }

  private record(id: string, toNode: string, method: string, at: number | undefined): RecentRequest {
    const r: RecentRequest = { id, toNode, method, acceptedAt: at, replies: [], repliesDropped: 0, final: false, error: undefined, bytes: 0 }
    this.map.set(id, r)
    return r
  }

  private trim(): void {
    // A Map iterates in insertion order: the first keys are the oldest requests.
    for (const [id, r] of this.map) {
      if (this.map.size <= this.maxRequests && this.bytes <= this.maxBytes) break
      this.map.delete(id)
      this.bytes -= r.bytes
    }
  }
}

function byteLength(v: Uint8Array | string | undefined): number {
  return v === undefined ? 0 : typeof v === 'string' ? Buffer.byteLength(v) : v.length
}

