/**
 * The audit log: `<dataDir>/audit.log`, one JSON object a line for every message event
 * (src/events.ts), rotated by size (audit.log → audit.log.1 → … → audit.log.<files>).
 *
 *   {"time":"…","event":"accepted","id":"01J…","fromNode":"central","toNode":"ship1","method":"cli.run","env":{…the envelope…}}
 *   {"time":"…","event":"delivered","id":"01J…","toNode":"ship1","method":"cli.run"}
 *   {"time":"…","event":"run","id":"01J…","fromNode":"central","method":"cli.run","ms":12,"exitCode":0}
 *   {"time":"…","event":"denied","id":"01J…","fromNode":"ship2","method":"cli.run","error":{"code":"denied",…}}
 *   {"time":"…","event":"expired","id":"01J…","toNode":"ship1","method":"cli.run","reason":"ttl_expired"}
 *
 * An accepted line carries the whole envelope as the socket API takes it (data as text, or
 * `dataBase64`), so `outpost send --file` can send it again; data past audit.maxDataBytes is
 * left out and `dataBytes` says how big it was. Lines are written in batches off the hot path;
 * a write error is logged once and the log goes on with the next batch.
 */
import fs from 'node:fs'
import path from 'node:path'
import type { Envelope } from './envelope'
import type { MessageEvent } from './events'
import type { LogFn } from './log'

export interface AuditOptions {
  dir: string
  maxBytes: number
  files: number
  maxDataBytes: number
  /** Methods not recorded (names or patterns with a trailing *). */
  exclude?: readonly string[]
  log: LogFn
  now?: () => Date
}

export class AuditLog {
  readonly file: string
  private readonly o: AuditOptions
  private readonly now: () => Date
  private fd: number | undefined
  private size = 0
  private pending: string[] = []
  private flushing = false
  private failed = false
  private closed = false

  constructor(o: AuditOptions) {
    this.o = o
    this.now = o.now ?? (() => new Date())
    this.file = path.join(o.dir, 'audit.log')
  }

  /** Record one event (written within a moment; close() writes what is left). */
  record(ev: MessageEvent): void {
    if (this.closed) return
    const method = ev.type === 'accepted' ? ev.env.method : ev.method
    if (this.o.exclude?.some((p) => p === method || (p.endsWith('*') && method.startsWith(p.slice(0, -1))))) return
    this.pending.push(JSON.stringify(line(ev, this.now(), this.o.maxDataBytes)) + '\n')
    if (!this.flushing) {
      this.flushing = true
      setImmediate(() => this.flush())
    }
  }

  /** Change what is recorded at run time (config.set audit.maxDataBytes / audit.exclude). */
  configure(o: { maxDataBytes: number; exclude: readonly string[] }): void {
    this.o.maxDataBytes = o.maxDataBytes
    this.o.exclude = o.exclude
  }

  private flush(): void {
    this.flushing = false
    const batch = this.pending
    this.pending = []
    if (batch.length === 0) return
    try {
      this.writeBatch(batch.join(''))
      this.failed = false
    } catch (err) {
      if (!this.failed) this.o.log('error', `audit: cannot write ${this.file}: ${(err as Error).message}`)
      this.failed = true
    }
  }

  private writeBatch(text: string): void {
    const bytes = Buffer.byteLength(text)
    if (this.fd === undefined) this.open()
    if (this.size > 0 && this.size + bytes > this.o.maxBytes) {
      this.rotate()
      this.open()
    }
    fs.writeSync(this.fd!, text)
    this.size += bytes
  }

  private open(): void {
    this.fd = fs.openSync(this.file, 'a', 0o600)
    this.size = fs.fstatSync(this.fd).size
  }

  /** audit.log.(n-1) → .n, …, audit.log → .1; the oldest beyond `files` is dropped. */
  private rotate(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd)
    this.fd = undefined
    const n = this.o.files
    fs.rmSync(`${this.file}.${n}`, { force: true })
    for (let i = n - 1; i >= 1; i--) {
      try { fs.renameSync(`${this.file}.${i}`, `${this.file}.${i + 1}`) } catch { /* not there yet */ }
    }
    fs.renameSync(this.file, `${this.file}.1`)
  }

  /** Write what is pending and close the file. Safe to call more than once. */
  close(): void {
    if (this.closed) return
    this.flush()
    this.closed = true
    if (this.fd !== undefined) fs.closeSync(this.fd)
    this.fd = undefined
  }
}

function line(ev: MessageEvent, at: Date, maxData: number): Record<string, unknown> {
  const time = at.toISOString()
  if (ev.type !== 'accepted') {
    const { type, ...rest } = ev
    return { time, event: type, ...rest }
  }
  const env = ev.env
  return { time, event: 'accepted', id: env.id, fromNode: env.fromNode, toNode: env.toNode, method: env.method, ...(env.inReplyTo !== undefined ? { inReplyTo: env.inReplyTo } : {}), env: auditEnvelope(env, maxData) }
}

/** The envelope as JSON: text stays text, other bytes become base64, data past the cap is left out. */
export function auditEnvelope(env: Envelope, maxData: number): Record<string, unknown> {
  const out: Record<string, unknown> = { ...env }
  for (const k of ['data', 'stderr'] as const) {
    const v = env[k]
    if (v === undefined) continue
    const bytes = typeof v === 'string' ? Buffer.from(v) : Buffer.from(v.buffer, v.byteOffset, v.byteLength)
    delete out[k]
    if (bytes.length > maxData) { out[`${k}Bytes`] = bytes.length; continue }
    if (typeof v === 'string') out[k] = v
    else {
      const text = bytes.toString('utf8')
      if (Buffer.byteLength(text) === bytes.length && !text.includes('\uFFFD')) out[k] = text
      else out[`${k}Base64`] = bytes.toString('base64')
    }
  }
  return out
}
