/**
 * The heartbeat: a `node.hello` event to central every hello.interval seconds and at each
 * (re)connect, carrying this node's version, OS, architecture, uptime, public key (and that it
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

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined
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
  }

  send(): void {
    const every = this.config.hello.interval
    if (every === 0) return
    const data = JSON.stringify({ version: VERSION, apiVersion: API_VERSION, os: `${os.type()} ${os.release()}`, arch: process.arch, uptime: Math.round((Date.now() - this.started) / 1000), publicKey: this.publicKey, signsReplies: true, labels: this.config.node.labels, facts: this.facts })
    this.submit([{ toNode: this.config.node.central, method: 'node.hello', data, ackTimeout: 0, ttl: every * 2 }])
      .catch((err: Error) => this.log(isOutpostError(err, 'disk_full') ? 'debug' : 'warn', `hello: ${err.message}`))
  }
}
