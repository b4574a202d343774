/**
 * Warnings that one peer can cause by the thousand (messages refused or dropped by the
 * dispatcher): per peer, the first SHOWN of an interval are logged one by one, the rest are
 * counted and summed up in one line when the interval ends, as the hub does for refused hellos
 * (src/hub-guard.ts). A flood of 100k refused pings is a few lines a minute, not 100k.
 *
 *   note(peer, kind, line) ─ first SHOWN this interval ─▶ log(line)
 *                          └ else counted by kind ─ every SUMMARY_MS ─▶ "… N more from peer …"
 */
import type { Fields, LogFn } from './log'

/** Lines logged by themselves per peer and interval. */
export const SHOWN = 3
/** How often what was counted is summed up. */
export const SUMMARY_MS = 10_000
/** Distinct kinds kept per peer between two summaries; past it they count as "other". */
const MAX_KINDS = 8
/** Peers tracked between two summaries; past it they share one entry. */
const MAX_PEERS = 1000

interface Counted { shown: number; kinds: Map<string, number> }

export class LogTally {
  private readonly peers = new Map<string, Counted>()
  private timer: NodeJS.Timeout | undefined
  private since = 0

  constructor(private readonly log: LogFn, private readonly prefix: string, private readonly now: () => number = Date.now) {}

  /** A warning about `peer` (its `kind` names it in a summary): logged, or counted. */
  note(peer: string, kind: string, line: string, fields?: Fields): void {
    const key = this.peers.has(peer) || this.peers.size < MAX_PEERS ? peer : 'other nodes'
    let c = this.peers.get(key)
    if (c === undefined) this.peers.set(key, (c = { shown: 0, kinds: new Map() }))
    if (this.timer === undefined) {
      this.since = this.now()
      this.timer = setInterval(() => this.sum(), SUMMARY_MS)
      this.timer.unref()
    }
    if (c.shown < SHOWN) {
      c.shown++
      this.log('warn', line, fields)
      return
    }
    const k = c.kinds.has(kind) || c.kinds.size < MAX_KINDS ? kind : 'other'
    c.kinds.set(k, (c.kinds.get(k) ?? 0) + 1)
  }

  /** One line per peer for what was counted; the interval starts again (and the timer stops when nothing came). */
  sum(): void {
    const secs = Math.max(1, Math.round((this.now() - this.since) / 1000))
    this.since = this.now()
    let any = false
    for (const [peer, c] of this.peers) {
      if (c.kinds.size === 0) continue
      any = true
      const total = [...c.kinds.values()].reduce((a, b) => a + b, 0)
      const listed = [...c.kinds].map(([k, n]) => `${n.toLocaleString('en-US')} ${k}`).join('; ')
      this.log('warn', `${this.prefix}${total.toLocaleString('en-US')} more like these from ${peer} in the last ${secs} s, not logged one by one: ${listed}`, { from: peer, count: total })
    }
    this.peers.clear()
    if (!any && this.timer !== undefined) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }

  stop(): void {
    if (this.timer !== undefined) this.sum()
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }
}
