/**
 * The transport contract (types only). Each plugin in transports/ implements it and imports
 * nothing else of the core; the node runtime speaks to every transport the same way.
 *
 * A transport moves encoded envelopes (MessagePack bytes) between nodes. It reads only what
 * routing needs (`to`, `id`, `method`, event or command) and never decodes the rest.
 */
import type { Fields, Infer, ObjSpec } from './config/spec'
import type { OutpostError } from './errors'
import type { LogFn } from './log'

/** One envelope to send, with the routing facts the transport may need. */
export interface Outbound {
  id: string
  /** The receiving node. */
  to: string
  method: string
  /** ackTimeout 0: an event, never acknowledged (NATS/MQTT subject suffix EventNACK). */
  event: boolean
  /** The encoded envelope. */
  bytes: Uint8Array
  /** An ACK envelope (src/wire/acks.ts): the ids it acknowledges, one or more. Only published while `manyIdAcks`. */
  acks?: string[]
  /**
   * Called once, when the envelope's bytes have left this process (only by a transport with
   * `reportsWritten`; see there). Delivery starts the message's ACK timer then: time spent
   * queued behind other messages on a slow link does not count against its ackTimeout.
   */
  written?: () => void
}

/** One envelope received, with the sender as the transport authenticated it (when it can). */
export interface Inbound {
  bytes: Uint8Array
  /** The sending node as the hub/broker vouches for it; undefined when the transport cannot say. */
  from?: string
}

export type TransportEvent =
  | { type: 'connected'; server: string }
  | { type: 'disconnected'; error?: OutpostError }
  | { type: 'reconnecting'; attempt: number; delayMs: number; server: string }
  /** The receiver of a message is known to be away (the hub's `nack offline`): keep it, spend no attempt. */
  | { type: 'nack'; id: string; to: string; reason: string }
  /** A node came (back) online: messages waiting for it go now. */
  | { type: 'online'; node: string }
  /**
   * Who is connected, as the hub knows it (only with `presence` asked for, and only from a hub
   * that offers it): after `connected`, the first ones list every node connected then.
   */
  | { type: 'presence'; online: string[]; offline: string[] }
  /** The transport gave up for good (wrong credentials, refused by the server). */
  | { type: 'fatal'; error: OutpostError }

/** One entry of transport.servers, as its transport reads it. */
export interface ServerAddress {
  url: string
  /** The URL scheme, without `://` (tcp, tls, mqtt, …). */
  scheme: string
  host: string
  port: number
}

/** What a transport is made with. `S`: its own config section (transport.<kind>), defaults filled in. */
export interface TransportOptions<S = unknown> {
  /** This node's name. */
  node: string
  servers: string[]
  token: string | null
  tls: { ca: string | null; cert: string | null; key: string | null }
  version: string
  /** Trace every frame (--debug). */
  debug?: (line: string) => void
  log: LogFn
  /** Ask the hub for presence events (central keeps the fleet's list with them). */
  presence?: boolean
  /** Largest envelope accepted or sent, bytes (default 16 MiB). */
  maxMessageBytes?: number
  /** transport.compress: compress batches when it pays, with peers that announced it (tcp, MQTT, NATS). Default off. */
  compress?: 'auto' | 'off'
  /**
   * Told what was written for messages (transport.maxBytesPerSecond counts it): the messages a
   * write carried and its bytes on the connection, after framing, batching and compression.
   * Pings and the transport's own control traffic are left out. Absent: nobody counts.
   */
  onWire?: (msgs: readonly Pick<Outbound, 'method' | 'bytes'>[], bytes: number) => void
  /** transport.<kind> of the config, when the plugin declares a section (undefined otherwise). */
  section: S
}

export interface Transport {
  readonly kind: string
  /** Start connecting (and reconnecting, for as long as the transport is open). */
  start(): void
  /** True while a connection is up and messages can be handed over. */
  readonly connected: boolean
  /**
   * True while an ACK envelope acknowledging many ids (`Outbound.acks`) reaches any receiver (tcp:
   * the hub welcomed with apiVersion 3 or later and splits it for older receivers). Absent: false.
   */
  readonly manyIdAcks?: boolean
  /**
   * True when publish calls `Outbound.written` for every message it takes: tcp once the socket
   * has written the message's last frame (its bytes are in the kernel's send buffer), mqtt when
   * the broker acknowledged its last piece (PUBACK). Absent or false (nats: the client library
   * buffers and flushes with no signal per message): delivery starts the ACK timer as it hands
   * the message over.
   */
  readonly reportsWritten?: boolean
  /**
   * Hand a message to the wire. Resolves once written to the connection; rejects when not
   * connected (the delivery loop keeps the message and tries again later).
   */
  publish(msg: Outbound): Promise<void>
  /**
   * Hand several messages to the wire at once (delivery's pump, when it has more than one ready):
   * as publish would one by one, in order per receiver, without a promise a message. `written`
   * (with `reportsWritten`) is called once all their bytes have left, after each one's own
   * `Outbound.written`. Resolves once written (as publish) to undefined when every message was
   * taken, or to one entry per message: its error (not connected, …), undefined for those taken.
   * Not for ACK envelopes (`Outbound.acks`). Absent: delivery calls publish for each.
   */
  publishAll?(msgs: readonly Outbound[], written?: () => void): Promise<readonly (Error | undefined)[] | undefined>
  /** Envelopes addressed to this node, in arrival order. */
  messages(): AsyncIterable<Inbound>
  /**
   * The same envelopes a batch at a time (what one read brought, or all that waited): one
   * promise a batch instead of one an envelope. A node uses this when present, instead of messages().
   */
  messageBatches?(): AsyncIterable<readonly Inbound[]>
  /** Status and presence, as they happen. */
  events(): AsyncIterable<TransportEvent>
  /** Close for good; safe to call more than once. */
  close(): Promise<void>
  /**
   * The api version `node` is known to speak (from what the broker carries of it), undefined
   * when not known. Transports that cannot tell leave it out: the node then acts as for version 1.
   */
  peerApi?(node: string): number | undefined
  /**
   * A message to `node` went unacknowledged for its whole ackTimeout: what the transport
   * believes of `node` (its api version) may be wrong, and it may ask again.
   */
  unacked?(node: string): void
}

/**
 * A transport module's default export: everything the core knows of a transport comes from
 * here (the transport.kind enum, the schemes transport.servers may use, the config section).
 */
export interface TransportPlugin<F extends Fields = Fields> {
  /** Its transport.kind in the config. */
  readonly kind: string
  /** One line for the config's documentation. */
  readonly summary: string
  /** URL schemes (without `://`) that transport.servers may use with this kind; the first is the usual one. */
  readonly schemes: readonly string[]
  /** Its own config section, transport.<kind>, with defaults and docs; omitted when it has none. */
  readonly section?: ObjSpec<F>
  /** One entry of transport.servers, or a config_invalid error saying what is wrong with it. */
  parseServer(url: string): ServerAddress
  create(options: TransportOptions<Infer<ObjSpec<F>>>): Transport
}
