/**
 * The in-memory transport: nodes of one process on a shared bus, named by the server URL
 * (`memory://NAME`). No hub, no socket; what the hub does for TCP the bus does here: it stamps
 * the sender, answers `nack offline` for a receiver that is away and says `online` to those
 * who were told so once it attaches. For nodes embedded in one program and for in-process tests
 * of delivery (transport.memory.drop loses every Nth message to exercise resends).
 *
 *   publish ─▶ the bus ─▶ receiver attached?  ─▶ its messages(), a turn of the event loop later
 *                                   └ away     ─▶ nack offline to the sender; online when it attaches
 */
import { int, obj, type Infer } from '../src/config/spec'
import { OutpostError } from '../src/errors'
import type { Outbound, ServerAddress, Transport, TransportOptions, TransportPlugin } from '../src/transport'
import { TransportBase } from './base'

export function parseServer(url: string): ServerAddress {
  const m = /^memory:\/\/([A-Za-z0-9_.-]+)\/?$/.exec(url)
  if (!m) throw new OutpostError('config_invalid', `transport.servers: ${JSON.stringify(url)} is not memory://NAME (a bus in this process)`)
  return { url, scheme: 'memory', host: m[1]!, port: 0 }
}

/** transport.memory of the config. */
const SECTION = obj({
  drop: int(0, 'Lose every Nth message this node publishes, ACKs included (0: none); for tests of resends.', 0),
}, 'In-memory bus options.')
type Section = Infer<typeof SECTION>

/** The nodes attached to one bus, and who waits to hear that a node is back. */
class Bus {
  /** Attached now, by node name. */
  readonly members = new Map<string, MemoryTransport>()
  /** Made and not closed yet (attached or not), by node name: what memoryMember finds. */
  readonly made = new Map<string, MemoryTransport>()
  readonly waiting = new Map<string, Set<string>>()
}

const BUSES = new Map<string, Bus>()

function busOf(name: string): Bus {
  let bus = BUSES.get(name)
  if (bus === undefined) BUSES.set(name, (bus = new Bus()))
  return bus
}

class MemoryTransport extends TransportBase<Section> implements Transport {
  readonly kind = 'memory'
  private readonly bus: Bus
  private attached = false
  private published = 0

  constructor(opts: TransportOptions<Section>) {
    super(opts)
    const [server] = opts.servers
    if (server === undefined) throw new OutpostError('config_invalid', 'transport.servers: the memory transport needs memory://NAME')
    this.bus = busOf(parseServer(server).host)
    this.bus.made.set(opts.node, this)
  }

  get connected(): boolean {
    return this.attached
  }

  protected open(): void {
    this.attach()
  }

  /** Join the bus (again): the nodes told this one was away hear it is back. */
  attach(): void {
    if (this.attached || this.closed) return
    const other = this.bus.members.get(this.opts.node)
    if (other !== undefined) {
      this.evq.push({ type: 'fatal', error: new OutpostError('auth_failed', `memory: a node named ${this.opts.node} is already on this bus`) })
      return
    }
    this.bus.members.set(this.opts.node, this)
    this.attached = true
    this.evq.push({ type: 'connected', server: this.opts.servers[0]! })
    const waiters = this.bus.waiting.get(this.opts.node)
    this.bus.waiting.delete(this.opts.node)
    for (const w of waiters ?? []) this.bus.members.get(w)?.evq.push({ type: 'online', node: this.opts.node })
  }

  /** Leave the bus, as a lost link would: messages to this node are nacked until it attaches again. */
  detach(): void {
    if (!this.attached) return
    this.attached = false
    if (this.bus.members.get(this.opts.node) === this) this.bus.members.delete(this.opts.node)
    this.evq.push({ type: 'disconnected' })
  }

  async publish(msg: Outbound): Promise<void> {
    if (!this.attached) throw new OutpostError('not_connected', 'memory: not attached to the bus')
    this.opts.debug?.(`memory → ${msg.to} ${msg.method} ${msg.id} ${msg.bytes.length} B`)
    const drop = this.opts.section.drop
    if (drop > 0 && ++this.published % drop === 0) return
    const to = this.bus.members.get(msg.to)
    if (to === undefined) {
      if (msg.event) return
      let set = this.bus.waiting.get(msg.to)
      if (set === undefined) this.bus.waiting.set(msg.to, (set = new Set()))
      set.add(this.opts.node)
      const nack = { type: 'nack', id: msg.id, to: msg.to, reason: 'offline' } as const
      setImmediate(() => this.evq.push(nack))
      return
    }
    // A copy, as a wire would make: the sender may reuse its buffer.
    const bytes = new Uint8Array(msg.bytes)
    const from = this.opts.node
    setImmediate(() => { if (to.attached) to.inbound.push({ bytes, from }) })
  }

  protected async shutdown(): Promise<void> {
    this.detach()
    if (this.bus.made.get(this.opts.node) === this) this.bus.made.delete(this.opts.node)
  }
}

/** The memory transport of `node` on bus `bus`, to cut and restore its link in a test. */
export function memoryMember(bus: string, node: string): { detach(): void; attach(): void } | undefined {
  return BUSES.get(bus)?.made.get(node)
}

export default {
  kind: 'memory',
  summary: 'nodes inside one process (embedding, in-process tests)',
  schemes: ['memory'],
  section: SECTION,
  parseServer,
  create: (o) => new MemoryTransport(o),
} as const satisfies TransportPlugin<typeof SECTION.fields>
