/**
 * The transport of the node that runs inside `outpost hub` (node.name in the hub's file): it
 * attaches to the hub in the same process, with no token, no socket and no transport.servers.
 * Frames are the hub's own (msg, part, nack, online, presence), handed over as objects.
 *
 *   publish ─▶ splitEnvelope ─▶ HubLink.send ─▶ the hub routes it (to a socket: encoded there)
 *   the hub's frames ─▶ msg / reassembled parts ─▶ messages(); nack / online / presence ─▶ events()
 */
import { OutpostError } from './errors'
import { splitEnvelope, type Frame } from './wire/framing'
import type { Hub, HubLink } from './hub'
import { Reassembler } from './wire/reassembler'
import type { Outbound, Transport, TransportOptions } from './transport'
import { TransportBase } from '../transports/base'
import { onHubFrame } from '../transports/hub-frames'

class HubLinkTransport extends TransportBase implements Transport {
  readonly kind = 'hub'
  private readonly hub: Hub
  private link: HubLink | undefined
  private attached = false
  private readonly reassembler: Reassembler

  constructor(hub: Hub, opts: TransportOptions) {
    super(opts)
    this.hub = hub
    this.reassembler = new Reassembler({ maxBytes: opts.maxMessageBytes ?? 16 * 1024 * 1024 })
  }

  get connected(): boolean {
    return this.attached
  }

  /** The hub splits an ACK of many ids for receivers that take only single ones. */
  get manyIdAcks(): boolean {
    return this.attached
  }

  protected open(): void {
    this.startSweeping(() => this.reassembler.sweep())
    // The hub answers attach with a welcome, synchronously: `link` is set by the time it matters.
    this.link = this.hub.attach(this.opts.node, (f) => this.frame(f), () => {
      if (!this.attached) return
      this.attached = false
      this.opts.log('warn', 'detached from the hub')
      this.evq.push({ type: 'disconnected' })
    }, { full: () => this.intakeFull, whenRoom: (go) => this.whenIntakeRoom(go) })
    if (this.opts.presence === true) this.link.send({ t: 'watch' })
  }

  async publish(msg: Outbound): Promise<void> {
    const link = this.link
    if (!this.attached || link === undefined) throw new OutpostError('not_connected', 'hub: this node is not attached to the hub')
    if (msg.acks !== undefined) return link.send({ t: 'acks', id: msg.id, to: msg.to, ids: msg.acks, b: msg.bytes })
    for (const f of splitEnvelope(msg.id, msg.to, msg.bytes)) link.send(f)
  }

  private frame(f: Frame): void {
    switch (f.t) {
      case 'welcome':
        this.attached = true
        this.opts.log('info', `attached to the hub in this process as ${this.opts.node}`)
        this.evq.push({ type: 'connected', server: 'this process' })
        return
      default:
        onHubFrame(f, { inbound: this.inbound, events: this.evq, reassembler: this.reassembler, log: this.opts.log, send: (r) => this.link?.send(r), copy: true })
    }
  }

  protected async shutdown(): Promise<void> {
    this.attached = false
    this.link?.close()
  }
}

/** The transport for the node of `outpost hub`'s own file, attached to `hub`. */
export function hubLink(hub: Hub, options: TransportOptions): Transport {
  return new HubLinkTransport(hub, options)
}
