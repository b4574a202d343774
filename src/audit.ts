/**
 * The audit log: `<dataDir>/audit.log`, one JSON object a line for every message event
 * (src/events.ts), rotated by size (audit.log → audit.log.1 → … → audit.log.<files>).
 *
 *   {"time":"…","event":"accepted","id":"01J…","fromNode":"central","toNode":"ship1","method":"cli.run","env":{…the envelope…}}
 *   {"time":"…","event":"delivered","id":"01J…","toNode":"ship1","method":"cli.run"}
 *   {"time":"…","event":"run","id":"01J…","fromNode":"central","method":"cli.run","ms":12,"exitCode":0}
 *   {"time":"…","event":"denied","id":"01J…","fromNode":"ship2","method":"cli.run","error":{"code":"denied",…}}
 *   {"time":"…","event":"session","id":"01J…","fromNode":"central","method":"session.open","what":"/bin/bash","user":"ops","startedAt":"…","ms":81234,"bytesIn":312,"bytesOut":20480,"exitCode":0}
 *   {"time":"…","event":"expired","id":"01J…","toNode":"ship1","method":"cli.run","reason":"ttl_expired"}
 *
 * An accepted line carries the whole envelope as the socket API takes it (data as text, or
 * `dataBase64`), so `outpost send --file` can send it again; data past audit.maxDataBytes is
 * left out and `dataBytes` says how big it was. Lines are written in batches off the hot path;
 * a write error is logged once and the log goes on with the next batch. On a nearly full disk
 * (opts.disk) lines are skipped until space is freed.
 */
import fs from 'node:fs'
import path from 'node:path'
import type { Envelope } from './wire/envelope'
import type { MessageEvent } from './events'
import { matches } from './lib/pattern'
import type { LogFn } from './log'
import type { DiskRoom } from './method'

export interface AuditOptions {
  dir: string
  maxBytes: number
  files: number
  maxDataBytes: number
  /** Methods not recorded (names or patterns with a trailing *). */
  exclude?: readonly string[]
  log: LogFn
  now?: () => Date
  /** Free space on the data directory's disk: lines are skipped (and counted there) while it is short. */
  disk?: DiskRoom
}

export class AuditLog {
  readonly file: string
  private readonly o: AuditOptions
  private fd: number | undefined
  private size = 0
  /**
   * The pending lines as pieces, each line ending in '\n': flat strings pushed in order and
   * joined once at the flush. (A line built by concatenation is a tree of string pieces that the
   * join then walks and copies: twice the CPU for the two lines each message gets here.)
   */
  private pending: string[] = []
  private flushing = false
  private failed = false
  private closed = false
  private lastMs = -1
  private lastIso = ''
  /** `{"time":"<lastIso>"`: how every line starts. */
  private lastHead = ''
  private readonly excludedCache = new Map<string, boolean>()

  constructor(o: AuditOptions) {
    this.o = o
    this.file = path.join(o.dir, 'audit.log')
  }

  /** Record one event (written within a moment; close() writes what is left). */
  record(ev: MessageEvent): void {
    if (this.closed) return
    const method = ev.type === 'accepted' ? ev.env.method : ev.method
    if (this.excluded(method)) return
    if (this.o.now !== undefined) {
      const time = this.o.now().toISOString()
      pushLine(this.pending, ev, `{"time":${jsonString(time)}`, time, this.o.maxDataBytes)
    } else {
      this.tick()
      pushLine(this.pending, ev, this.lastHead, this.lastIso, this.o.maxDataBytes)
    }
    if (!this.flushing) {
      this.flushing = true
      setImmediate(() => this.flush())
    }
  }

  /** Whether audit.exclude names `method`; remembered per method (a few names, matched for every event). */
  private excluded(method: string): boolean {
    let out = this.excludedCache.get(method)
    if (out === undefined) {
      out = this.o.exclude?.some((p) => matches(p, method)) === true
      if (this.excludedCache.size >= 1024) this.excludedCache.clear()
      this.excludedCache.set(method, out)
    }
    return out
  }

  /** The ISO time for a line (lastIso, lastHead); a burst of events in one millisecond formats it once. */
  private tick(): void {
    const ms = Date.now()
    if (ms !== this.lastMs) {
      this.lastMs = ms
      this.lastIso = new Date(ms).toISOString()
      this.lastHead = `{"time":"${this.lastIso}"`
    }
  }

  /** Change what is recorded at run time (config.set audit.maxDataBytes / audit.exclude). */
  configure(o: { maxDataBytes: number; exclude: readonly string[] }): void {
    this.o.maxDataBytes = o.maxDataBytes
    this.o.exclude = o.exclude
    this.excludedCache.clear()
  }

  private flush(): void {
    this.flushing = false
    const batch = this.pending
    this.pending = []
    if (batch.length === 0) return
    const text = batch.join('')
    // A nearly full disk keeps its last room for the outbox: the lines are skipped (the disk
    // guard logs once that audit.log stops, and once that it resumes with what was skipped).
    const bytes = Buffer.byteLength(text)
    if (this.o.disk?.allow(bytes) === false) return
    try {
      this.writeBatch(text, bytes)
      this.failed = false
    } catch (err) {
      if (!this.failed) this.o.log('error', `audit: cannot write ${this.file}: ${(err as Error).message}`)
      this.failed = true
    }
  }

  private writeBatch(text: string, bytes: number): void {
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

/**
 * A line's JSON, the same text as JSON.stringify of line(), pushed onto `out` in pieces and
 * ended with a newline. `head` is `{"time":<time as JSON>`. The lines every message gets here
 * (accepted, delivered, and run at the receiver) are written by hand around one JSON.stringify
 * of the envelope; a name that needs escaping (never an id or node name outpost stamps) goes
 * through JSON.stringify.
 */
function pushLine(out: string[], ev: MessageEvent, head: string, time: string, maxData: number): void {
  switch (ev.type) {
    case 'accepted': {
      const env = ev.env
      out.push(head, ',"event":"accepted","id":"', inner(env.id), '","fromNode":"', inner(env.fromNode), '","toNode":"', inner(env.toNode), '","method":"', inner(env.method))
      if (env.inReplyTo !== undefined) out.push('","inReplyTo":"', inner(env.inReplyTo))
      out.push('","env":', JSON.stringify(auditEnvelope(env, maxData)), '}\n')
      return
    }
    case 'delivered':
      out.push(head, ',"event":"delivered","id":"', inner(ev.id), '","toNode":"', inner(ev.toNode), '","method":"', inner(ev.method), '"}\n')
      return
    case 'run':
      // ms is a finite number, written as JSON writes it.
      out.push(head, ',"event":"run","id":"', inner(ev.id), '","fromNode":"', inner(ev.fromNode), '","method":"', inner(ev.method), '","ms":', String(ev.ms))
      if (ev.exitCode !== undefined) out.push(',"exitCode":', JSON.stringify(ev.exitCode))
      if (ev.error !== undefined) out.push(',"error":', JSON.stringify(ev.error))
      out.push('}\n')
      return
    default:
      out.push(JSON.stringify(line(ev, time, maxData)), '\n')
  }
}

/** Printable ASCII without `"` and `\`: the characters JSON writes as they are. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/

/** A string as JSON: quoted as it is when it needs no escape (ids, names), else by JSON.stringify. */
function jsonString(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s)
}

/** A string as JSON between its quotes: as it is when it needs no escape (ids, names), else escaped by JSON.stringify. */
function inner(s: string): string {
  return PLAIN.test(s) ? s : JSON.stringify(s).slice(1, -1)
}

function line(ev: MessageEvent, time: string, maxData: number): Record<string, unknown> {
  // Spelled out per event (a rest pattern copies several times slower): one line per message event.
  switch (ev.type) {
    case 'accepted': {
      const env = ev.env
      const out: Record<string, unknown> = { time, event: 'accepted', id: env.id, fromNode: env.fromNode, toNode: env.toNode, method: env.method }
      if (env.inReplyTo !== undefined) out.inReplyTo = env.inReplyTo
      out.env = auditEnvelope(env, maxData)
      return out
    }
    case 'delivered': return { time, event: ev.type, id: ev.id, toNode: ev.toNode, method: ev.method }
    case 'expired': return { time, event: ev.type, id: ev.id, toNode: ev.toNode, method: ev.method, reason: ev.reason }
    case 'run': return { time, event: ev.type, id: ev.id, fromNode: ev.fromNode, method: ev.method, ms: ev.ms, exitCode: ev.exitCode, error: ev.error }
    case 'denied': return { time, event: ev.type, id: ev.id, fromNode: ev.fromNode, method: ev.method, error: ev.error }
    case 'session': return { time, event: ev.type, id: ev.id, fromNode: ev.fromNode, method: ev.method, what: ev.what, user: ev.user, startedAt: new Date(ev.startedAt).toISOString(), ms: ev.ms, bytesIn: ev.bytesIn, bytesOut: ev.bytesOut, exitCode: ev.exitCode, error: ev.error }
  }
}

/** The envelope as JSON: text stays text, other bytes become base64, data past the cap is left out. */
export function auditEnvelope(env: Envelope, maxData: number): Record<string, unknown> {
  // Nothing to change (no bytes, text within the cap: at most 3 bytes a UTF-16 unit): no copy.
  const { data, stderr } = env
  if ((data === undefined || (typeof data === 'string' && data.length * 3 <= maxData)) && (stderr === undefined || (typeof stderr === 'string' && stderr.length * 3 <= maxData))) return env as unknown as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const k in env) if (k !== 'data' && k !== 'stderr') out[k] = (env as unknown as Record<string, unknown>)[k]
  for (const k of ['data', 'stderr'] as const) {
    const v = env[k]
    if (v === undefined) continue
    if (typeof v === 'string') {
      // Text needs no copy to be measured: at most 3 bytes a UTF-16 unit.
      const size = v.length * 3 <= maxData ? 0 : Buffer.byteLength(v)
      if (size > maxData) out[`${k}Bytes`] = size
      else out[k] = v
      continue
    }
    const bytes = Buffer.from(v.buffer, v.byteOffset, v.byteLength)
    if (bytes.length > maxData) { out[`${k}Bytes`] = bytes.length; continue }
    const text = bytes.toString('utf8')
    if (Buffer.byteLength(text) === bytes.length && !text.includes('\uFFFD')) out[k] = text
    else out[`${k}Base64`] = bytes.toString('base64')
  }
  return out
}
