/**
 * The built-in TCP hub (SPEC §3): authenticates nodes by token, binds each connection to its
 * node name, routes msg/part frames to the connected receiver, answers `nack offline` when the
 * receiver is away and tells those senders when it comes back. It stores nothing: the
 * senders' outboxes hold the state.
 *
 *   socket ─ FrameDecoder ─▶ hello? ─ token check ─▶ welcome ─▶ msg/part ─▶ receiver (from = sender)
 *                                                              └▶ nack offline ─▶ sender waits ─▶ online
 * Bad input (oversized length, not MessagePack, unknown t, wrong token) gets an `error` frame
 * and a close of that connection only.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { OutpostError, isOutpostError, type ErrorCode } from './errors'
import { abbreviate, encodeFrame, FrameDecoder, type Frame } from './framing'
import { API_VERSION } from './version'

/** A pair stays blocked at most this long after its receiver is back (the first message may have expired). */
const BLOCK_MAX_MS = 30_000

export type LogFn = (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void

export interface HubOptions {
  /** host:port */
  listen: string
  /** Node name → "sha256:<hex>" of its token (or the plain token, accepted with a warning). */
  tokens: Record<string, string>
  tls?: { cert: string | null; key: string | null; ca: string | null; requireClientCert: boolean }
  redirect?: { nodes: string[]; servers: string[] }[]
  name?: string
  log: LogFn
  /** Where bare-string log frames go: `<node>|<time|stream|level|message>`. */
  logSink?: (line: string) => void
  /** Trace every frame (--debug). */
  debug?: (line: string) => void
  helloTimeoutMs?: number
}

interface Conn {
  sock: net.Socket
  node: string | undefined
  peer: string
  decoder: FrameDecoder
  corked: boolean
  closed: boolean
}

export function hashToken(token: string): string {
  return `sha256:${createHash('sha256').update(token).digest('hex')}`
}

/** Constant-time check of a presented token against the configured "sha256:<hex>" or plain value. */
export function tokenMatches(expected: string, given: string): boolean {
  const want = expected.startsWith('sha256:') ? expected.slice(7).toLowerCase() : createHash('sha256').update(expected).digest('hex')
  const got = createHash('sha256').update(given).digest('hex')
  return want.length === got.length && timingSafeEqual(Buffer.from(want), Buffer.from(got))
}

function matches(patterns: string[], node: string): boolean {
  return patterns.some((p) => p === '*' || p === node || (p.endsWith('*') && node.startsWith(p.slice(0, -1))))
}

export class Hub {
  private readonly opts: HubOptions
  private readonly server: net.Server
  private readonly nodes = new Map<string, Conn>()
  /** Receiver → senders told it was offline, to wake when it comes back. */
  private readonly waiting = new Map<string, Set<string>>()
  /**
   * sender→receiver pairs the hub refused a message for. Until the sender says it heard the
   * receiver is back (it echoes the `online` frame, then resends from its oldest message),
   * newer messages on the pair are refused too: they left the sender before it knew, and
   * letting them through would overtake the refused ones (FIFO per pair). `since` is when the
   * receiver came back; a sender that never echoes is let through after BLOCK_MAX_MS.
   */
  private readonly blocked = new Map<string, { since: number | undefined }>()
  private readonly conns = new Set<Conn>()
  private closing: Promise<void> | undefined

  private constructor(opts: HubOptions, server: net.Server) {
    this.opts = opts
    this.server = server
    // A TLS server also emits `connection` for the raw socket: take only the secure one there.
    if (server instanceof tls.Server) {
      server.on('secureConnection', (s: tls.TLSSocket) => this.accept(s))
      server.on('tlsClientError', (err, s) => opts.log('warn', `TLS handshake with ${s.remoteAddress}:${s.remotePort} failed: ${err.message}`))
    }
    else server.on('connection', (s: net.Socket) => this.accept(s))
    for (const [node, tok] of Object.entries(opts.tokens)) {
      if (!tok.startsWith('sha256:')) opts.log('warn', `the token of ${node} is stored in plain text; store "${hashToken('…')}"-style hashes (outpost prints one with \`outpost hub --hash-token TOKEN\`)`)
    }
  }

  static async start(opts: HubOptions): Promise<Hub> {
    const m = /^(.*):(\d+)$/.exec(opts.listen)
    if (!m) throw new OutpostError('config_invalid', `hub: listen must be host:port, got ${JSON.stringify(opts.listen)}`)
    const host = m[1]!.replace(/^\[(.*)\]$/, '$1')
    const port = Number(m[2])
    const t = opts.tls
    let server: net.Server
    if (t?.cert && t.key) {
      server = tls.createServer({
        cert: fs.readFileSync(t.cert), key: fs.readFileSync(t.key),
        ...(t.ca ? { ca: fs.readFileSync(t.ca), requestCert: true, rejectUnauthorized: t.requireClientCert } : {}),
      })
    } else {
      server = net.createServer()
    }
    const hub = new Hub(opts, server)
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new OutpostError('io', `hub: cannot listen on ${opts.listen}: ${err.message}`, { cause: err })))
      server.listen(port, host, () => resolve())
    })
    server.on('error', (err) => opts.log('error', `${err.message}`))
    opts.log('info', `hub listening on ${hub.address}${t?.cert ? ' (TLS)' : ''}`)
    return hub
  }

  get address(): string {
    const a = this.server.address()
    return a !== null && typeof a === 'object' ? `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}` : String(a)
  }

  get port(): number {
    const a = this.server.address()
    return a !== null && typeof a === 'object' ? a.port : 0
  }

  /** Names of the nodes connected now. */
  connected(): string[] {
    return [...this.nodes.keys()].sort()
  }

  private accept(sock: net.Socket): void {
    const conn: Conn = { sock, node: undefined, peer: `${sock.remoteAddress}:${sock.remotePort}`, decoder: new FrameDecoder({ views: true }), corked: false, closed: false }
    this.conns.add(conn)
    sock.setNoDelay(true)
    const helloTimer = setTimeout(() => this.fail(conn, 'frame_invalid', 'no hello within the time allowed'), this.opts.helloTimeoutMs ?? 10_000)
    helloTimer.unref()
    sock.on('data', (chunk: Buffer) => {
      if (conn.closed) return
      let frames: Frame[]
      try {
        frames = conn.decoder.push(chunk)
      } catch (err) {
        this.fail(conn, isOutpostError(err) ? err.code : 'frame_invalid', (err as Error).message)
        return
      }
      for (const f of frames) {
        if (conn.closed) break
        if (f.t === 'hello') clearTimeout(helloTimer)
        this.handle(conn, f)
      }
    })
    sock.on('error', () => { /* reported by close */ })
    sock.on('close', () => {
      clearTimeout(helloTimer)
      conn.closed = true
      this.conns.delete(conn)
      if (conn.node !== undefined && this.nodes.get(conn.node) === conn) {
        this.nodes.delete(conn.node)
        this.opts.log('info', `${conn.node} disconnected`)
        // It learns about receivers afresh when it reconnects (its sends get nacked again).
        for (const [to, set] of this.waiting) if (set.delete(conn.node) && set.size === 0) this.waiting.delete(to)
        // A reconnecting sender resends from its oldest message anyway.
        for (const key of this.blocked.keys()) if (key.startsWith(`${conn.node}\u0000`)) this.blocked.delete(key)
      }
    })
  }

  private handle(conn: Conn, f: Frame): void {
    this.opts.debug?.(`hub ← ${conn.node ?? conn.peer}: ${describe(f)}`)
    if (conn.node === undefined) {
      if (f.t !== 'hello') return this.fail(conn, 'frame_invalid', `expected hello first, got ${f.t}`)
      return this.hello(conn, f)
    }
    switch (f.t) {
      case 'msg':
      case 'part':
        return this.route(conn, f)
      case 'online':
        // The sender heard that f.node is back and resends from its oldest message now.
        this.blocked.delete(`${conn.node}\u0000${f.node}`)
        return
      case 'ping':
        return this.send(conn, { t: 'pong' })
      case 'pong':
        return
      case 'log':
        this.opts.logSink?.(`${conn.node}|${f.line}`)
        return
      case 'error':
        this.opts.log('warn', `${conn.node} reported ${f.code}: ${f.message}`)
        conn.sock.end()
        return
      default:
        return this.fail(conn, 'frame_invalid', `a node does not send ${f.t} frames`)
    }
  }

  private hello(conn: Conn, f: Extract<Frame, { t: 'hello' }>): void {
    // Authenticate first: where a node is sent is nobody else's business.
    const expected = this.opts.tokens[f.node]
    if (expected === undefined || !tokenMatches(expected, f.token)) {
      this.opts.log('warn', `refused ${JSON.stringify(f.node)} from ${conn.peer}: ${expected === undefined ? 'unknown node' : 'wrong token'}`)
      return this.fail(conn, 'auth_failed', `hub: node ${JSON.stringify(f.node)} is unknown here or its token is wrong`)
    }
    const rule = this.opts.redirect?.find((r) => matches(r.nodes, f.node))
    if (rule) {
      this.opts.log('info', `redirecting ${f.node} to ${rule.servers.join(', ')}`)
      this.send(conn, { t: 'redirect', servers: rule.servers })
      conn.sock.end()
      return
    }
    const previous = this.nodes.get(f.node)
    if (previous) {
      // The newest connection wins: the old one is usually half-dead after a network change.
      this.fail(previous, 'frame_invalid', 'replaced by a newer connection of the same node')
    }
    conn.node = f.node
    this.nodes.set(f.node, conn)
    this.send(conn, { t: 'welcome', hub: this.opts.name ?? 'hub', apiVersion: API_VERSION })
    this.opts.log('info', `${f.node} connected from ${conn.peer} (outpost ${f.version}, api ${f.apiVersion})`)
    for (const [key, b] of this.blocked) if (key.endsWith(`\u0000${f.node}`)) b.since = Date.now()
    const waiters = this.waiting.get(f.node)
    if (waiters) {
      this.waiting.delete(f.node)
      for (const w of waiters) {
        const c = this.nodes.get(w)
        if (c) this.send(c, { t: 'online', node: f.node })
      }
    }
  }

  private route(conn: Conn, f: Extract<Frame, { t: 'msg' | 'part' }>): void {
    const target = this.nodes.get(f.to)
    const pair = this.blocked.size === 0 && target !== undefined ? '' : `${conn.node}\u0000${f.to}`
    const block = pair === '' ? undefined : this.blocked.get(pair)
    if (block && target !== undefined && block.since !== undefined && Date.now() - block.since > BLOCK_MAX_MS) this.blocked.delete(pair)
    else if (block || target === undefined) {
      if (f.t === 'msg' || f.i === 0) this.send(conn, { t: 'nack', id: f.id, to: f.to, reason: 'offline' })
      // Only nodes this hub knows can come back: no memory is kept for made-up names.
      if (target === undefined && Object.hasOwn(this.opts.tokens, f.to)) {
        let set = this.waiting.get(f.to)
        if (set === undefined) this.waiting.set(f.to, (set = new Set()))
        set.add(conn.node!)
        if (!block) this.blocked.set(pair, { since: undefined })
      }
      return
    }
    this.send(target, { ...f, from: conn.node! })
  }

  /** Write a frame; writes made in one tick go out together (cork/uncork). */
  private send(conn: Conn, f: Frame): void {
    if (conn.closed) return
    this.opts.debug?.(`hub → ${conn.node ?? conn.peer}: ${describe(f)}`)
    if (!conn.corked) {
      conn.corked = true
      conn.sock.cork()
      process.nextTick(() => { conn.corked = false; conn.sock.uncork() })
    }
    conn.sock.write(encodeFrame(f))
  }

  private fail(conn: Conn, code: ErrorCode | string, message: string): void {
    if (conn.closed) return
    this.opts.log('warn', `closing ${conn.node ?? conn.peer}: ${code}: ${message}`)
    try {
      conn.sock.write(encodeFrame({ t: 'error', code, message }))
    } catch { /* the socket may be gone */ }
    conn.closed = true
    if (conn.node !== undefined && this.nodes.get(conn.node) === conn) this.nodes.delete(conn.node)
    conn.sock.end()
    setTimeout(() => conn.sock.destroy(), 1000).unref()
  }

  /** Stop listening and close every connection. Safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve())
      for (const c of this.conns) c.sock.destroy()
    })
    return this.closing
  }
}

function describe(f: Frame): string {
  switch (f.t) {
    case 'msg': return `msg ${f.id} → ${f.to} ${abbreviate(f.b)}`
    case 'part': return `part ${f.id} ${f.i + 1}/${f.n} → ${f.to} ${abbreviate(f.b)}`
    case 'hello': return `hello ${f.node} (outpost ${f.version})`
    case 'log': return `log ${f.line.slice(0, 80)}`
    default: return JSON.stringify(f)
  }
}
