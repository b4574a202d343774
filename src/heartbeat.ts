/**
 * The heartbeat: a `node.hello` event to central every hello.interval seconds and at each
 * (re)connect (and again 2 s and 10 s after it: on a broker, central may not have subscribed
 * yet when a node that started with it says hello, and an event is never resent), carrying this node's version, OS, architecture, uptime, public key (and that it
 * signs its replies with it: reply-signing.ts), its labels
 * (node.labels) and its facts (labels.ts). Central's node list (node-list.ts) records it and
 * pins the key. An event: never resent, never answered. Fields are only ever added: a central
 * of any version takes it.
 */
import os from 'node:os'
import type { Config } from './config'
import { isOutpostError } from './errors'
import { facts } from './labels'
import type { LogFn } from './log'
import { API_VERSION, VERSION } from './version'
import type { MessageDraft } from './wire/envelope'

/** Seconds after a connect at which the hello goes again (what the first one may have missed). */
const AFTER_CONNECT = [2, 10]

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined
  private readonly soon: NodeJS.Timeout[] = []
  private readonly started = Date.now()
  private readonly facts = facts()

  /** publicKey: this node's own, `ed25519:<base64>` (src/keys.ts). */
  constructor(private readonly config: Config, private readonly submit: (drafts: MessageDraft[]) => Promise<unknown>, private readonly log: LogFn, private readonly publicKey: string) {}

  /** (Re)start the interval from hello.interval (0: none). */
  start(): void {
    this.stop()
    const every = this.config.hello.interval
    if (every === 0) return
    this.timer = setInterval(() => this.send(), every * 1000)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    this.disconnected()
  }

  /** Connected (again): a hello now, and again after 2 s and 10 s where the interval is longer. */
  connected(): void {
    this.disconnected()
    this.send()
    for (const s of AFTER_CONNECT) {
      if (s >= this.config.hello.interval) break
      const t = setTimeout(() => this.send(), s * 1000)
      t.unref()
      this.soon.push(t)
    }
  }

  /** The link is down: the hellos due soon after the last connect are not sent. */
  disconnected(): void {
    for (const t of this.soon) clearTimeout(t)
    this.soon.length = 0
  }

  send(): void {
    const every = this.config.hello.interval
    if (every === 0) return
    const data = JSON.stringify({ version: VERSION, apiVersion: API_VERSION, os: `${os.type()} ${os.release()}`, arch: process.arch, uptime: Math.round((Date.now() - this.started) / 1000), publicKey: this.publicKey, signsReplies: true, labels: this.config.node.labels, facts: this.facts })
    this.submit([{ toNode: this.config.node.central, method: 'node.hello', data, ackTimeout: 0, ttl: every * 2 }])
      .catch((err: Error) => this.log(isOutpostError(err, 'disk_full') ? 'debug' : 'warn', `hello: ${err.message}`))
  }
}
