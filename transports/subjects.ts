/**
 * Where the broker transports put things: NATS subjects and MQTT topics have one shape,
 * `<prefix>.<node>.<method>.<CommandACK|EventNACK>`, with `.` or `/` between the parts.
 * A message with ackTimeout 0 is an event (EventNACK) and is not acknowledged.
 *
 *   message      <prefix>/<to>/<method>/<CommandACK|EventNACK>   what a node publishes
 *   inbox        <prefix>/<node>/#  (NATS <prefix>.<node>.>)       everything addressed to a node
 *   presence     <prefix>/_presence/<node>                         a node's online/offline notice
 *   noResponders <prefix>.<self>._nr.<to>.<id>  (NATS only)        where "nobody listens for <to>" comes back
 *   apiProbe     <prefix>.<to>._api.<asker>  (NATS only)            "which api version do you speak?" and its answer
 */

export type SubjectStyle = 'nats' | 'mqtt'

export class Subjects {
  readonly style: SubjectStyle
  readonly prefix: string
  private readonly sep: '.' | '/'

  constructor(style: SubjectStyle, prefix: string) {
    this.style = style
    this.prefix = prefix
    this.sep = style === 'nats' ? '.' : '/'
  }

  /** Where a message to `to` is published. */
  message(to: string, method: string, event: boolean): string {
    const { sep } = this
    return `${this.prefix}${sep}${to}${sep}${method}${sep}${event ? 'EventNACK' : 'CommandACK'}`
  }

  /** The subscription that receives everything addressed to `node`. */
  inbox(node: string): string {
    return this.style === 'nats' ? `${this.prefix}.${node}.>` : `${this.prefix}/${node}/#`
  }

  /** What every subject addressed to `node` starts with. */
  nodePrefix(node: string): string {
    return `${this.prefix}${this.sep}${node}${this.sep}`
  }

  /** A node's presence notice. */
  presence(node: string): string {
    return `${this.presencePrefix()}${node}`
  }

  /** What every presence subject starts with; the node's name follows. */
  presencePrefix(): string {
    return `${this.prefix}${this.sep}_presence${this.sep}`
  }

  /** The subscription to every node's presence. */
  presenceAll(): string {
    return `${this.presencePrefix()}${this.style === 'nats' ? '*' : '+'}`
  }

  /** NATS: the reply subject on which "no responders for `to`" comes back for message `id`. */
  noResponders(self: string, to: string, id: string): string {
    return `${this.noRespondersPrefix(self)}${to}${this.sep}${id}`
  }

  /** NATS: where `asker` asks `to` for its api version (and, the other way round, where the answer comes). */
  apiProbe(to: string, asker: string): string {
    return `${this.nodePrefix(to)}_api${this.sep}${asker}`
  }

  noRespondersPrefix(self: string): string {
    return `${this.nodePrefix(self)}_nr${this.sep}`
  }
}
