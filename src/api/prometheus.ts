/**
 * Prometheus metrics (api.metrics): the core's hooks (src/metrics.ts) as prom-client counters
 * and histograms in a Registry of their own, gauges read from the node on each scrape, and
 * prom-client's process metrics (RSS, CPU, event loop lag, heap). Served at GET /metrics only.
 *
 *   core hooks ─▶ PromMetrics counters ─┐
 *   scrape ─▶ outbox.stats(), transport ─┴▶ registry.metrics() ─▶ text exposition format
 */
import http from 'node:http'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { GiveUpReason } from '../events'
import { OutpostError } from '../errors'
import type { LogFn } from '../log'
import type { Metrics } from '../metrics'
import type { OutpostNode } from '../node'
import { VERSION } from '../version'
import { parseListen } from './http'

/** Distinct method labels kept; more (a sender inventing names) are counted as "other". */
const MAX_METHOD_LABELS = 200

export class PromMetrics implements Metrics {
  readonly registry = new Registry()
  private readonly methodsSeen = new Set<string>()
  private node: OutpostNode | undefined
  private server: http.Server | undefined
  private readonly c: {
    accepted: Counter<'method'>; delivered: Counter<'method'>; acked: Counter<'method'>; retried: Counter<'method'>
    expired: Counter<'method' | 'reason'>; denied: Counter<'method'>; reconnects: Counter; duration: Histogram<'method' | 'result'>
    signatures: Counter<'method' | 'code'>
  }

  constructor() {
    const registers = [this.registry]
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> => new Counter({ name, help, labelNames, registers })
    this.c = {
      accepted: counter('outpost_messages_accepted_total', 'Messages written to this node\'s outbox: submitted here, or replies of methods run here.', ['method']),
      delivered: counter('outpost_messages_delivered_total', 'Messages addressed to this node that arrived and were recorded (duplicates not counted).', ['method']),
      acked: counter('outpost_messages_acked_total', 'Messages of this node\'s outbox acknowledged by their receiver.', ['method']),
      retried: counter('outpost_messages_retried_total', 'Resends after no ACK came within ackTimeout.', ['method']),
      expired: counter('outpost_messages_expired_total', 'Messages given up: reason ttl_expired or not_delivered (attempts ran out).', ['method', 'reason']),
      denied: counter('outpost_messages_denied_total', 'Messages refused here because methods.allow does not let the sender call the method.', ['method']),
      signatures: counter('outpost_signature_refusals_total', 'Messages refused here by a signature check: code signature_required, signature_invalid, signature_expired, key_not_allowed, or reply_forged (a reply that does not verify against its node\'s pinned key).', ['method', 'code']),
      reconnects: counter('outpost_transport_reconnects_total', 'Times the transport connected again after losing its connection.', []),
      duration: new Histogram({
        name: 'outpost_method_duration_seconds', help: 'How long methods ran on this node; result is ok or error.',
        labelNames: ['method', 'result'], buckets: [0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600], registers,
      }),
    }
    const self = this
    new Gauge({
      name: 'outpost_outbox_messages', help: 'Messages waiting in the outbox (not yet acknowledged).', registers,
      collect() { this.set(self.node?.outbox.stats().count ?? 0) },
    })
    new Gauge({
      name: 'outpost_outbox_bytes', help: 'Bytes of messages waiting in the outbox.', registers,
      collect() { this.set(self.node?.outbox.stats().bytes ?? 0) },
    })
    new Gauge({
      name: 'outpost_outbox_max_bytes', help: 'delivery.maxOutboxBytes: past it new messages are refused (outbox_full).', registers,
      collect() { this.set(self.node?.outbox.stats().maxBytes ?? 0) },
    })
    new Gauge({
      name: 'outpost_transport_connected', help: '1 while the transport is connected, else 0.', labelNames: ['transport'], registers,
      collect() {
        this.reset()
        if (self.node) this.set({ transport: self.node.config.transport.kind }, self.node.transport.connected ? 1 : 0)
      },
    })
    new Gauge({
      name: 'outpost_info', help: 'Always 1; the labels say which node and version this is.', labelNames: ['node', 'version'], registers,
      collect() { this.reset(); if (self.node) this.set({ node: self.node.name, version: VERSION }, 1) },
    })
    collectDefaultMetrics({ register: this.registry })
  }

  /** Read gauges from this node on scrape. */
  attach(node: OutpostNode): void {
    this.node = node
  }

  private m(method: string): string {
    if (this.methodsSeen.has(method)) return method
    if (this.methodsSeen.size >= MAX_METHOD_LABELS) return 'other'
    this.methodsSeen.add(method)
    return method
  }

  accepted(method: string): void { this.c.accepted.inc({ method: this.m(method) }) }
  delivered(method: string): void { this.c.delivered.inc({ method: this.m(method) }) }
  acked(method: string): void { this.c.acked.inc({ method: this.m(method) }) }
  retried(method: string): void { this.c.retried.inc({ method: this.m(method) }) }
  expired(method: string, reason: GiveUpReason): void { this.c.expired.inc({ method: this.m(method), reason }) }
  denied(method: string): void { this.c.denied.inc({ method: this.m(method) }) }
  ran(method: string, seconds: number, ok: boolean): void { this.c.duration.observe({ method: this.m(method), result: ok ? 'ok' : 'error' }, seconds) }
  reconnected(): void { this.c.reconnects.inc() }
  signatureRefused(method: string, code: string): void { this.c.signatures.inc({ method: this.m(method), code }) }

  /** Serve GET /metrics on `listen` (host:port, or a port on 127.0.0.1). */
  async serve(listen: string, log: LogFn): Promise<string> {
    const { host, port } = parseListen(listen)
    const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 10_000 }, (req, res) => {
      const target = req.url ?? '/'
      const route = (target.startsWith('/') ? new URL(`http://outpost${target}`) : new URL(target, 'http://outpost')).pathname
      const error = (status: number, code: string, message: string): void => {
        res.writeHead(status, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: { code, message } }))
      }
      if (route !== '/metrics') return error(404, 'api_not_found', `metrics: only GET /metrics is served here, not ${route}`)
      if (req.method !== 'GET' && req.method !== 'HEAD') { res.setHeader('allow', 'GET'); return error(405, 'api_method_not_allowed', 'metrics: GET /metrics') }
      this.registry.metrics().then(
        (text) => { res.writeHead(200, { 'content-type': this.registry.contentType }); res.end(text) },
        (err: Error) => error(500, 'io', `metrics: ${err.message}`),
      )
    })
    server.maxConnections = 64
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new OutpostError('io', `metrics: cannot listen on ${listen}: ${err.message}`, { cause: err })))
      server.listen(port, host, () => resolve())
    })
    this.server = server
    const a = server.address()
    const address = typeof a === 'object' && a !== null ? `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` : listen
    log('info', `metrics: Prometheus metrics on http://${address}/metrics`)
    return address
  }

  close(): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server === undefined) return Promise.resolve()
    return new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections() })
  }
}
