/**
 * Envelopes the dispatcher has taken and not settled yet: a receipt being recorded (durable
 * before its ACK), a refusal's reply being queued. The node's read loop (node.ts) waits while
 * there are BACKLOG_MAX of them, so what a transport reads piles up in its intake instead, and
 * the transport stops reading (transports/base.ts): a flooding sender is slowed to the pace of
 * the disk, nothing it sent is dropped. A method's run is not counted past its start: a long run
 * must not keep the node from hearing op.cancel.
 */
export const BACKLOG_MAX = 1024

export class Backlog {
  private n = 0
  private waiters: (() => void)[] = []

  constructor(private readonly max = BACKLOG_MAX) {}

  get size(): number {
    return this.n
  }

  get full(): boolean {
    return this.n >= this.max
  }

  /** Counted until `p` settles. */
  track(p: Promise<unknown>): void {
    this.n++
    p.then(this.release, this.release)
  }

  /** Resolves once the backlog is down to half its bound. */
  room(): Promise<void> {
    if (this.n <= this.max / 2) return Promise.resolve()
    return new Promise((resolve) => { this.waiters.push(resolve) })
  }

  private readonly release = (): void => {
    this.n--
    if (this.n > this.max / 2 || this.waiters.length === 0) return
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }
}
