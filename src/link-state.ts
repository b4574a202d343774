/**
 * The link to the hub or broker as the operator sees it (`outpost status`, a waiting `send`):
 * connected or not, since when, and why it was last refused or lost. A refusal that repeats on
 * every retry (a wrong token) is said once.
 */
import type { OutpostError } from './errors'
import type { LogFn } from './log'

export interface ConnectionState {
  kind: string
  connected: boolean
  /** When it last connected or lost the connection (ms since the epoch). */
  since: number | undefined
  server: string | undefined
  /** Why the last connection was refused or lost (a wrong token, …); cleared once connected. */
  lastError: { code: string; message: string } | undefined
}

export class LinkState {
  private readonly state: ConnectionState
  private readonly now: () => number
  private readonly log: LogFn

  constructor(kind: string, now: () => number, log: LogFn) {
    this.state = { kind, connected: false, since: undefined, server: undefined, lastError: undefined }
    this.now = now
    this.log = log
  }

  connected(server: string): void {
    Object.assign(this.state, { connected: true, since: this.now(), server, lastError: undefined })
  }

  disconnected(error: OutpostError | undefined): void {
    if (this.state.connected) Object.assign(this.state, { connected: false, since: this.now() })
    if (error) this.state.lastError = error.toJSON()
  }

  /** Refused (a wrong token, an unknown name): one clear line, not one every retry. */
  refused(error: OutpostError): void {
    const again = this.state.lastError?.code === error.code
    this.state.lastError = error.toJSON()
    this.state.since ??= this.now()
    this.log(again ? 'debug' : 'error', `${error.code}: ${error.message}${again ? '' : ' (messages wait in the outbox until this node is let in; said once)'}`)
  }

  /** A copy: the caller may keep it. */
  get(): ConnectionState {
    return { ...this.state }
  }
}
