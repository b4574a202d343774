/**
 * A running node: wires the store, a transport, the delivery loop and the dispatcher together,
 * and offers what the local APIs need (submit, watch replies, the node list).
 *
 *   submit ─ stamp + defaults ─▶ outbox ─▶ delivery ─▶ transport ⇢ … ⇢ transport ─▶ dispatcher
 *   dispatcher ─ reply ─▶ outbox ─▶ delivery ─▶ …           replies here ─▶ watch() listeners
 *
 * Beside it: node-open.ts (what start opens), node-intake.ts (prepare, store), local-runs.ts
 * (runLocal), node-routines.ts (schedules, log shipping), node-records.ts (status, lookup).
 */
import { AuditLog } from './audit'
import { DiskGuard, MIB } from './lib/disk-guard'
import type { Config } from './config'
import { applyLive, diffConfig } from './config/apply'
import { Delivery } from './delivery'
import { AckSender } from './ack-sender'
import { Dispatcher } from './dispatcher'
import type { Envelope, MessageDraft } from './wire/envelope'
import { OutpostError } from './errors'
import { LinkState, type ConnectionState } from './link-state'
import type { Logger } from './log'
import type { MessageEvent, MessageEventSink } from './events'
import { Heartbeat } from './heartbeat'
import { Outcomes } from './outcomes'
import { ReplyWatch } from './reply-watch'
import type { ApplyResult, Control } from './config/apply'
import type { JobInfo, Method } from './method'
import { fromEvents, NO_METRICS, type Metrics } from './metrics'
import { nameIndex } from './method-names'
import type { Outbox } from './store/outbox'
import type { LocalOutcome } from './schedules'
import type { Transport, TransportOptions, TransportPlugin } from './transport'
import { ulid as defaultUlid } from './wire/ulid'
import { NodeList, type NodeInfo } from './node-list'
import type { KeyPair } from './keys'
import type { WireMeter } from './pacing'
import { replySigning } from './reply-signing'
import { VERSION } from './version'
import { OutboxRoom } from './outbox-room'
import { lookupMessage, type MessageRecord, type NodeStatus } from './node-records'
import { FileTransfers } from './files'
import { apiSigner } from './signer'
import { liveOn, type Live } from './sessions/live'
import { Intake } from './node-intake'
import { LocalRuns } from './local-runs'
import { openParts } from './node-open'
import { Routines } from './node-routines'

export type { NodeInfo }

export interface NodeOptions {
  config: Config
  logger: Logger
  transports: ReadonlyMap<string, TransportPlugin>
  methods: ReadonlyMap<string, Method>
  now?: () => number
  /** Called each time the transport (re)connects; `agent` confirms a pending upgrade with it. */
  onConnected?: () => void
  /** Counters for monitoring (src/metrics.ts); none by default. */
  metrics?: Metrics
  /** The file the config came from: config.set / config.deploy / config.rollback write it. */
  configFile?: string
  /** How this process restarts (agent, hub); without it agent.restart answers restart_unavailable. */
  restart?: () => void
  /** Also told about every message event (besides the audit log). */
  events?: MessageEventSink
  /**
   * The transport, made by the caller (the node inside `outpost hub` attaches to that hub):
   * `transports` and transport.kind are not used then.
   */
  transport?: (options: TransportOptions) => Transport
}


export type { MessageRecord, NodeStatus } from './node-records'

export class OutpostNode {
  readonly name: string
  readonly config: Config
  readonly dataDir: string
  readonly outbox: Outbox
  readonly transport: Transport
  private readonly logger: Logger
  readonly delivery: Delivery // withdraw(): what the APIs and jobs take back unsent
  private readonly room: OutboxRoom
  private readonly dispatcher: Dispatcher
  private readonly now: () => number
  private readonly replies = new ReplyWatch()
  readonly metrics: Metrics
  private readonly nodeList: NodeList
  private readonly outcomes: Outcomes
  private readonly heartbeat: Heartbeat
  private readonly methods: ReadonlyMap<string, Method>
  /** Native method names by name and alias, for the methods this node has. */
  private readonly names: ReadonlyMap<string, string>
  private readonly localRuns: LocalRuns
  private readonly intake: Intake
  private readonly routines: Routines
  private loops: Promise<unknown>[] = []
  private closing: Promise<void> | undefined
  private readonly started = Date.now()
  private readonly onConnected: (() => void) | undefined
  private readonly audit: AuditLog | undefined
  /** Room on the data directory's disk for audit.log, reply files and errors.log (kept for the outbox when short). */
  private readonly disk: DiskGuard
  private readonly sinks: MessageEventSink[] = []
  /** What config.* and agent.restart may do to this node. */
  readonly control: Control
  private readonly link: LinkState
  /** This node's own public key (<dataDir>/node.key), `ed25519:<base64>`; sent with node.hello. */
  readonly publicKey: string
  /** File transfers to and from this node (outpost cp, file.*). */
  readonly files: FileTransfers
  /** Shells and tunnels: frames straight on the transport, never stored (src/sessions/). */
  readonly live: Live

  private constructor(o: NodeOptions, dataDir: string, outbox: Outbox, transport: Transport, publicKey: string, key: KeyPair, meter?: WireMeter) {
    const { config } = o
    this.name = config.node.name
    this.config = config
    this.dataDir = dataDir
    this.outbox = outbox
    this.transport = transport
    this.publicKey = publicKey
    this.logger = o.logger
    this.now = o.now ?? Date.now
    this.link = new LinkState(transport.kind, this.now, o.logger.log)
    this.onConnected = o.onConnected
    const metrics = this.metrics = o.metrics ?? NO_METRICS
    const log = o.logger.log
    this.disk = new DiskGuard({ dir: dataDir, floor: config.delivery.reserveBytes + 2 * MIB, what: 'audit.log, reply files and errors.log', log })
    if (config.audit.enabled) {
      this.audit = new AuditLog({ dir: dataDir, maxBytes: config.audit.maxBytes, files: config.audit.files, maxDataBytes: config.audit.maxDataBytes, exclude: config.audit.exclude, log, disk: this.disk })
      const audit = this.audit
      this.sinks.push((ev) => audit.record(ev))
    }
    if (o.events) this.sinks.push(o.events)
    if (o.metrics) this.sinks.push(fromEvents(o.metrics))
    const events = (ev: MessageEvent): void => { for (const sink of this.sinks) sink(ev) }
    const restart = o.restart
    this.control = {
      configFile: o.configFile,
      apply: (next) => this.applyConfig(next),
      restart: () => {
        if (restart === undefined) throw new OutpostError('restart_unavailable', `${this.name} cannot restart itself here (it runs inside \`outpost up\` or without an agent); restart it by hand`)
        setTimeout(restart, 1000).unref()
      },
      canRestart: restart !== undefined,
    }
    this.nodeList = new NodeList(dataDir, { now: this.now, log, nodeKeys: () => this.config.security.nodeKeys })
    const submit = (drafts: MessageDraft[]): Promise<Envelope[]> => this.submit(drafts)
    this.outcomes = new Outcomes({
      self: this.name, config, log, now: this.now, submit,
      receive: (bytes) => { void this.dispatcher.receive(bytes) },
      queue: (env) => this.intake.queue(env),
      checkpoint: () => this.outbox.checkpoint(),
      recordRequest: (id, dest, replyMethod, until) => this.outbox.recordRequest(id, dest, replyMethod, until),
    })
    this.heartbeat = new Heartbeat(config, submit, log, publicKey)
    const methods = new Map(o.methods)
    methods.set('node.hello', {
      name: 'node.hello', aliases: ['REQHello'], sink: true, selfHealing: true, kind: 'unary', summary: 'heartbeat: records the sender in the node list',
      run: async (ctx) => { this.nodeList.record(ctx.env); return {} },
    })
    this.methods = methods
    this.names = nameIndex(methods.values())
    this.delivery = new Delivery({
      self: this.name, outbox, transport, log, firstSeq: outbox.nextSequence,
      defaults: { ackTimeout: config.delivery.ackTimeout, retries: config.delivery.retries },
      local: (bytes) => { void this.dispatcher.receive(bytes) },
      expand: (body, method) => (method === 'file.chunk' ? this.files.expand(body) : body),
      onGiveUp: (entry, reason) => this.outcomes.gaveUp(entry, reason),
      events,
      now: this.now, metrics, pacing: { drainRate: config.delivery.drainRate, maxBytesPerSecond: config.transport.maxBytesPerSecond, ...(meter !== undefined ? { meter } : {}) },
    })
    this.room = new OutboxRoom({ outbox, config: () => this.config, log, busy: (id) => this.delivery.busy(id), report: (e) => this.outcomes.report(e), events })
    this.intake = new Intake({ self: this.name, config: () => this.config, now: this.now, names: this.names, room: this.room, events, kick: () => this.delivery.kick() })
    // A transfer's messages are signed with api.signingKey, as what the APIs take: a receiver that requires signatures takes them.
    const signedSubmit = (drafts: MessageDraft[]): Promise<Envelope[]> => {
      const envs = this.prepare(drafts)
      apiSigner(this.config.api.signingKey)?.signAll(envs, this.now(), this.config.delivery.ttl)
      return this.submitPrepared(envs)
    }
    this.files = new FileTransfers({ self: this.name, dataDir, config, log, now: this.now, submit: signedSubmit, reuseChunkBuffers: transport.kind === 'tcp' })
    this.sinks.push((ev) => this.files.onEvent(ev))
    this.live = liveOn(transport, { self: this.name, log, now: this.now, settings: () => this.config.sessions, record: (r) => events({ type: 'session', ...r }) })
    const acks = new AckSender({ self: this.name, transport, ulid: defaultUlid, now: this.now, charge: (b) => this.delivery.charge(b) })
    this.dispatcher = new Dispatcher({
      self: this.name, live: this.live, config, dataDir, outbox, methods, log, now: this.now, ulid: defaultUlid,
      sendAck: (to, id) => {
        if (to === this.name) return this.delivery.onAck(id)
        acks.send(to, id)
      },
      enqueue: (env, inboxId) => this.intake.queue(env, inboxId),
      onAck: (id) => this.delivery.onAck(id),
      onReply: (env) => this.replies.deliver(env),
      gaveUp: (id) => this.outcomes.isGivenUp(id), metrics,
      replySigning: replySigning(key.privateKey, key.publicKey, (n) => (this.keepsNodeList ? this.nodeList.replyKey(n) : undefined)),
      report: (error) => this.outcomes.report(error),
      events, control: this.control, disk: this.disk, files: this.files, admit: (env) => this.files.admits(env),
    })
    this.routines = new Routines({ config, dataDir, log, now: this.now, runLocal: (m, args, t) => this.runLocal(m, args, t), submit, closing: () => this.closing !== undefined })
    this.localRuns = new LocalRuns({ self: this.name, config, dataDir, methods, names: this.names, enabled: (n) => this.dispatcher.enabled(n), log, now: this.now, disk: this.disk })
  }

  static async start(o: NodeOptions): Promise<OutpostNode> {
    const { dataDir, outbox, transport, publicKey, key, meter } = await openParts(o.config, o.logger, o.transports, o.transport)
    const node = new OutpostNode(o, dataDir, outbox, transport, publicKey, key, meter)
    node.run()
    const { count, recovery } = outbox.stats()
    o.logger.log('info', `node ${node.name} started (outpost ${VERSION}; data ${dataDir}; ${count} waiting in the outbox; recovered in ${recovery.ms.toFixed(0)} ms)`)
    return node
  }

  private run(): void {
    this.transport.start()
    // A read's envelopes in one go (one promise a batch; receipts share an append, receipts.ts); while the dispatcher has too many in hand the loop waits, the transport's intake fills and it stops reading (backlog.ts).
    this.loops.push(this.transport.messageBatches !== undefined
      ? (async () => { for await (const batch of this.transport.messageBatches!()) { for (const m of batch) this.receive(m.bytes, m.from); if (this.dispatcher.backlog.full) await this.dispatcher.backlog.room() } })()
      : (async () => { for await (const m of this.transport.messages()) { this.receive(m.bytes, m.from); if (this.dispatcher.backlog.full) await this.dispatcher.backlog.room() } })())
    let everConnected = false
    this.loops.push((async () => {
      for await (const ev of this.transport.events()) {
        switch (ev.type) {
          case 'connected':
            if (everConnected) this.metrics.reconnected()
            everConnected = true
            this.link.connected(ev.server)
            this.nodeList.presence(undefined)
            this.delivery.onConnected(); this.live.kick(); this.heartbeat.connected(); this.onConnected?.(); break
          case 'disconnected':
            this.link.disconnected(ev.error)
            this.nodeList.presence(undefined)
            this.heartbeat.disconnected()
            this.delivery.onDisconnected(); break
          case 'nack': this.delivery.onNack(ev.id, ev.to, ev.reason); break
          case 'online':
            this.delivery.onOnline(ev.node)
            // On MQTT and NATS a node's presence comes before its first heartbeat.
            if (this.keepsNodeList) this.nodeList.announce(ev.node)
            break
          case 'presence': this.nodeList.presence(ev.online, ev.offline); break
          case 'fatal': this.link.refused(ev.error); break
          case 'reconnecting': this.logger.log('debug', `reconnecting to ${ev.server} in ${ev.delayMs} ms (attempt ${ev.attempt})`); break
        }
      }
    })())
    void this.dispatcher.resume(this.outbox.inbox())
    this.files.resume()
    for (const line of this.outbox.stats().recovery.damagedSnapshots) this.outcomes.report({ code: 'outbox_corrupt', message: `${this.name}: ${line}` })
    if (this.outbox.damaged.length > 0) this.outcomes.lost(this.outbox.damaged.splice(0))
    this.delivery.kick()
    this.heartbeat.start()
    this.routines.start()
  }

  /** One message from the transport: a fault in handling it is logged, and the receive loop (the rest of its read too) goes on. */
  private receive(bytes: Uint8Array, from: string | undefined): void {
    try {
      this.dispatcher.receive(bytes, from, true)
    } catch (err) {
      this.logger.log('error', `dispatch: a message from ${from ?? 'unknown'} could not be handled: ${(err as Error).message}`)
    }
  }

  /** Run a method here for this node's own purposes (schedules): local-runs.ts. */
  runLocal(name: string, args: string[], timeoutSeconds: number): Promise<LocalOutcome> {
    return this.localRuns.run(name, args, timeoutSeconds)
  }

  /** Stamp validated drafts and give them defaults; nothing is stored yet (node-intake.ts). */
  prepare(drafts: MessageDraft[]): Envelope[] {
    return this.intake.prepare(drafts)
  }

  /** Store prepared messages (durable when this resolves), start their delivery (node-intake.ts). Watch their ids first. */
  submitPrepared(envs: Envelope[]): Promise<Envelope[]> {
    return this.intake.submitPrepared(envs)
  }

  /** prepare + submitPrepared. */
  submit(drafts: MessageDraft[]): Promise<Envelope[]> {
    return this.submitPrepared(this.prepare(drafts))
  }

  /**
   * Take over a new, validated config where no restart is needed: methods.*, delivery
   * defaults, log.level, schedules, hello.interval and node.labels at once; the rest is listed for a restart.
   */
  private applyConfig(next: Config): ApplyResult {
    const diff = diffConfig(this.config, next)
    applyLive(this.config, next, diff.live)
    if (diff.live.includes('log.level')) this.logger.setLevel(this.config.log.level)
    if (diff.live.some((k) => k.startsWith('audit.'))) this.audit?.configure(this.config.audit)
    if (diff.live.includes('schedules')) this.routines.startSchedules()
    if (diff.live.includes('hello.interval') && !this.closing) this.heartbeat.start()
    // Central learns new labels now, not a heartbeat later.
    if (diff.live.includes('node.labels') && !this.closing) this.heartbeat.send()
    if (diff.changed.length > 0) this.logger.log('info', `config: applied ${diff.live.join(', ') || 'nothing live'}${diff.restartNeeded.length > 0 ? `; after a restart: ${diff.restartNeeded.join(', ')}` : ''}`)
    return { changed: diff.changed, restartNeeded: diff.restartNeeded }
  }

  /** Call `fn` with every reply (and error reply) to any of `ids`; returns the unsubscribe. */
  watch(ids: string[], fn: (env: Envelope) => void): () => void {
    return this.replies.watch(ids, fn)
  }

  /** Call `fn` with every message event here (accepted, delivered, expired, run, denied); returns the unsubscribe. */
  watchEvents(fn: MessageEventSink): () => void {
    this.sinks.push(fn)
    return () => {
      const i = this.sinks.indexOf(fn)
      if (i >= 0) this.sinks.splice(i, 1)
    }
  }

  /**
   * Whether a message gets a reply: events (ackTimeout 0) and methods this node knows as sinks
   * (reply.*, error.log, heartbeats) do not; delivery is their only outcome.
   */
  expectsReply(env: Envelope): boolean {
    if (env.ackTimeout === 0) return false
    return this.methods.get(env.method)?.sink !== true
  }

  /** Call `fn` with every reply (and error reply) that arrives at this node; returns the unsubscribe. */
  watchReplies(fn: (env: Envelope) => void): () => void {
    return this.replies.watchAll(fn)
  }

  /** The link to the hub or broker: connected or not, since when, the last refusal. */
  connection(): ConnectionState {
    return this.link.get()
  }

  /** Who this node is, its link, what waits in its outbox per destination, what runs. */
  status(): NodeStatus {
    const destinations = [...this.outbox.perDestination()].map(([name, s]) => ({ node: name, ...s })).sort((a, b) => a.oldest - b.oldest)
    return {
      node: this.name, version: VERSION, pid: process.pid, dataDir: this.dataDir, startedAt: this.startedAt,
      connected: this.transport.connected, connection: this.connection(),
      outbox: { ...this.outbox.stats(), destinations },
      runs: this.runs(),
    }
  }

  /**
   * A message this node sent: still in its outbox (queued), else the reply a reply sink stored
   * for it (reply.file.append's default file); undefined when it knows nothing of it.
   */
  lookup(id: string): MessageRecord | undefined {
    return lookupMessage(this.outbox, this.methods, this.dataDir, id)
  }

  /** Methods running on this node now (the inbox's runs in progress): what op.cancel can stop. */
  runs(): JobInfo[] {
    return this.dispatcher.jobs().map(({ id, method, from, started }) => ({ id, method, from, started }))
  }

  /** When this node started (ms since the epoch). */
  get startedAt(): number {
    return this.started
  }

  /** The nodes this node has heard from (central keeps the fleet's list). */
  nodes(): NodeInfo[] {
    return this.nodeList.list(this.name, this.config.hello.interval)
  }

  /** Whether this node keeps the fleet's list (it is node.central: heartbeats and presence come to it). */
  get keepsNodeList(): boolean {
    return this.config.node.central === this.name
  }

  /**
   * Whether `name` is a node this one knows: itself, central, a node of its hub.tokens (declared,
   * perhaps not connected yet), or one its list has heard of.
   */
  knowsNode(name: string): boolean {
    return name === this.name || name === this.config.node.central || Object.hasOwn(this.config.hub.tokens, name) || this.nodeList.knows(name)
  }

  /** Whether the node list was read at start or has heard from a node since (knowsNode means something). */
  get nodeListSettled(): boolean {
    return this.nodeList.settled
  }

  /** Stop: no new work, transport closed, outbox snapshotted. Safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.heartbeat.stop()
      await this.routines.stop()
      this.localRuns.abortAll(() => new OutpostError('interrupted', `${this.name} is stopping`))
      this.delivery.stop()
      this.room.stop()
      this.live.close()
      for (const job of this.dispatcher.jobs()) job.abort.abort(new OutpostError('interrupted', `${this.name} is stopping`))
      // Their process groups are killed (TERM, grace, KILL) before this process may exit.
      await this.dispatcher.drain((this.config.methods.killGrace + 2) * 1000)
      await this.files.close()
      await this.transport.close()
      await Promise.allSettled(this.loops)
      await this.outbox.close()
      this.audit?.close()
      this.logger.log('info', `node ${this.name} stopped`)
    })()
    return this.closing
  }
}
