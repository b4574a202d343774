/**
 * What the hub allows connections that have not proved who they are, per remote address (an
 * IPv6 host usually holds a whole /64, so IPv6 counts per /64): a cap on how many may wait for
 * their hello at once, and a growing delay before a failed hello is answered. Whatever it
 * turns away is counted; the first few of each kind from an address are logged one by one, the
 * rest in one line per address and kind every 10 s, never one line per attempt.
 *
 *   connection ─▶ admit ─ cap reached ─▶ busy: the hub closes it at once (hub_busy)
 *                   └▶ ticket ─▶ welcome: release
 *                             ├▶ no hello in time: timedOut (hello_timeout)
 *                             └▶ wrong hello: refused ─▶ how long the hub holds the answer back
 *
 * A correct hello is never slowed down: the delay applies to failures only, so a node with the
 * right token gets in at once even while others guess from its address. Holding the answer back
 * alone would not slow a guesser that stops waiting (no welcome at once means "wrong"), so a
 * held-back refusal keeps its place under the cap until it is sent, whether or not the peer is
 * still there: one address gets at most maxPending guesses checked per MAX_DELAY_MS.
 * The token check of a hello (hashToken, tokenMatches) is here too.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { LogFn } from './log'

/** Failed hellos an address may make before the hub starts holding its answers back. */
export const FREE_FAILURES = 3
const BASE_DELAY_MS = 250
/** The longest an answer to a failed hello is held back. */
export const MAX_DELAY_MS = 5000
/** An address's failures are forgotten after this long without one (and the address after this long idle). */
const FAILURE_MEMORY_MS = 60_000
/** How often counted events are summed up in the log. */
export const SUMMARY_MS = 10_000
/** Events of each kind from an address logged one by one before they are only counted. */
export const SHOWN = 3
/** Addresses tracked at once; past this, new ones share one entry (and its cap). */
const MAX_ADDRESSES = 10_000
const OTHERS = 'other addresses'
/** Distinct details (reasons, TLS errors) kept per kind between two summaries. */
const MAX_DETAILS = 8
/** Node names from refused hellos quoted in a summary. */
const MAX_NAMES = 3

export type Refusal = 'unknown node' | 'wrong token' | "that node runs inside this hub's process"
type Kind = 'refused' | 'timedOut' | 'busy' | 'tls'

/** A connection admitted before its hello: it holds one place under its address's cap until released. */
export interface Ticket {
  readonly address: string
  /** Give the place back (the node was welcomed, or the connection is gone). Idempotent. */
  release(): void
}

export type Admission = { type: 'admitted'; ticket: Ticket } | { type: 'busy'; address: string; shown: boolean }

export interface GuardOptions {
  maxPendingPerAddress: number
  helloTimeoutMs: number
  log: LogFn
  now?: () => number
}

interface Entry {
  /** Connections waiting for their hello, and refusals still held back. */
  pending: number
  failures: number
  lastFailure: number
  lastSeen: number
  /** How many of each kind were logged one by one. */
  shown: Map<Kind, number>
  /** Counted since the last summary: kind → detail → count. */
  counts: Map<Kind, Map<string, number>>
  /** Node names of the refused hellos counted since the last summary (a few). */
  names: Set<string>
  moreNames: boolean
}

/** The key an address is counted under: IPv4 as is, IPv6 by its /64. */
export function addressKey(ip: string | undefined): string {
  if (ip === undefined || ip === '') return 'an unknown address'
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  if (mapped) return mapped[1]!
  if (!ip.includes(':')) return ip
  const bare = ip.replace(/%.*$/, '').toLowerCase()
  const [head = '', tail] = bare.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t]
  return `${groups.slice(0, 4).map((g) => (/^[0-9a-f]{1,4}$/.test(g) ? parseInt(g, 16).toString(16) : g)).join(':')}::/64`
}

const n = (v: number): string => v.toLocaleString('en-US')
/** "1 hello", "3,912 hellos" */
const plural = (v: number, what: string): string => `${n(v)} ${what}${v === 1 ? '' : 's'}`

export class HelloGuard {
  private readonly opts: GuardOptions
  private readonly now: () => number
  private readonly table = new Map<string, Entry>()
  private readonly timer: NodeJS.Timeout
  private since: number

  constructor(opts: GuardOptions) {
    this.opts = opts
    this.now = opts.now ?? Date.now
    this.since = this.now()
    this.timer = setInterval(() => this.sweep(), SUMMARY_MS)
    this.timer.unref()
  }

  /** A new connection from `ip`: a ticket, or busy when that address has maxPendingPerAddress waiting already. */
  admit(ip: string | undefined): Admission {
    const address = this.keyFor(ip)
    const e = this.entry(address)
    e.lastSeen = this.now()
    if (e.pending >= this.opts.maxPendingPerAddress) return { type: 'busy', address, shown: this.count(e, 'busy', '') }
    e.pending++
    let held = true
    return { type: 'admitted', ticket: { address, release: () => { if (held) { held = false; e.pending-- } } } }
  }

  /**
   * A hello was refused: how long to hold the answer back (0 for the first FREE_FAILURES from an
   * address, then 250 ms doubling up to MAX_DELAY_MS), and whether to log this one by itself.
   */
  refused(ticket: Ticket, reason: Refusal, node: string): { delayMs: number; shown: boolean } {
    const e = this.entry(ticket.address)
    const now = this.now()
    if (now - e.lastFailure > FAILURE_MEMORY_MS) e.failures = 0
    e.failures++
    e.lastFailure = now
    const shown = this.count(e, 'refused', reason)
    if (!shown) {
      const name = JSON.stringify(node.length > 64 ? `${node.slice(0, 64)}…` : node)
      if (e.names.size < MAX_NAMES) e.names.add(name)
      else if (!e.names.has(name)) e.moreNames = true
    }
    const over = e.failures - FREE_FAILURES
    return { delayMs: over <= 0 ? 0 : Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.min(over - 1, 20)), shown }
  }

  /** A connection's hello deadline passed: whether to log this one by itself. */
  timedOut(ticket: Ticket): boolean {
    return this.count(this.entry(ticket.address), 'timedOut', '')
  }

  /** A TLS handshake failed: whether to log this one by itself. */
  tlsFailed(ip: string | undefined, message: string): boolean {
    const e = this.entry(this.keyFor(ip))
    e.lastSeen = this.now()
    return this.count(e, 'tls', message)
  }

  /** Addresses tracked now. */
  get size(): number {
    return this.table.size
  }

  /** Log what is counted and stop. */
  close(): void {
    clearInterval(this.timer)
    this.sweep()
  }

  private keyFor(ip: string | undefined): string {
    const key = addressKey(ip)
    return this.table.has(key) || this.table.size < MAX_ADDRESSES ? key : OTHERS
  }

  private entry(address: string): Entry {
    let e = this.table.get(address)
    if (e === undefined) {
      e = { pending: 0, failures: 0, lastFailure: 0, lastSeen: this.now(), shown: new Map(), counts: new Map(), names: new Set(), moreNames: false }
      this.table.set(address, e)
    }
    return e
  }

  /** Count one event; true when it is among the first SHOWN of its kind (the caller logs it). */
  private count(e: Entry, kind: Kind, detail: string): boolean {
    const shown = e.shown.get(kind) ?? 0
    if (shown < SHOWN) {
      e.shown.set(kind, shown + 1)
      return true
    }
    let details = e.counts.get(kind)
    if (details === undefined) e.counts.set(kind, (details = new Map()))
    const key = details.has(detail) || details.size < MAX_DETAILS ? detail : 'other'
    details.set(key, (details.get(key) ?? 0) + 1)
    return false
  }

  /** Every SUMMARY_MS: one line per address and kind for what was counted; addresses idle long enough are forgotten. */
  sweep(): void {
    const now = this.now()
    const secs = Math.max(1, Math.round((now - this.since) / 1000))
    this.since = now
    for (const [address, e] of this.table) {
      for (const [kind, details] of e.counts) this.opts.log('warn', this.line(kind, address, secs, details, e))
      e.counts.clear()
      e.names.clear()
      e.moreNames = false
      if (e.pending === 0 && now - e.lastFailure > FAILURE_MEMORY_MS && now - e.lastSeen > FAILURE_MEMORY_MS) this.table.delete(address)
    }
  }

  private line(kind: Kind, address: string, secs: number, details: Map<string, number>, e: Entry): string {
    const total = [...details.values()].reduce((a, b) => a + b, 0)
    const listed = [...details].map(([d, c]) => `${n(c)} ${d}`).join(', ')
    const from = `from ${address} in the last ${secs} s`
    switch (kind) {
      case 'refused': {
        const names = e.names.size === 0 ? '' : `; node ${[...e.names].join(', ')}${e.moreNames ? ' and others' : ''}`
        return `refused ${plural(total, 'hello')} ${from} (${listed}${names}; auth_failed, answered after up to ${MAX_DELAY_MS / 1000} s)`
      }
      case 'timedOut':
        return `closed ${plural(total, 'connection')} ${from} that sent no hello within ${this.opts.helloTimeoutMs / 1000} s (hello_timeout)`
      case 'busy':
        return `closed ${plural(total, 'connection')} ${from} at once: ${n(this.opts.maxPendingPerAddress)} from there were waiting for their hello already (hub_busy, hub.maxPendingPerAddress)`
      case 'tls':
        return `${plural(total, 'TLS handshake')} ${from} failed (${listed})`
    }
  }
}

export function hashToken(token: string): string {
  return `sha256:${createHash('sha256').update(token).digest('hex')}`
}

/** Constant-time check of a presented token against the configured "sha256:<hex>" or plain value. */
export function tokenMatches(expected: string, given: string): boolean {
  const want = expected.startsWith('sha256:') ? expected.slice(7).toLowerCase() : createHash('sha256').update(expected).digest('hex')
  const got = createHash('sha256').update(given).digest('hex')
  return want.length === got.length && timingSafeEqual(Buffer.from(want), Buffer.from(got))
}
