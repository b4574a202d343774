/**
 * The built-in TCP hub (SPEC §3): authenticates nodes by token, binds each connection to its
 * node name, routes msg/part frames to the connected receiver, answers `nack offline` when the
 * receiver is away and tells those senders when it comes back. It stores nothing: the
 * senders' outboxes hold the state.
 *
 *   socket ─ FrameDecoder ─▶ hello? ─ token check ─▶ welcome ─▶ msg/part ─▶ receiver (from = sender)
 *                                                              └▶ nack offline ─▶ sender waits ─▶ online
 * Bad input (oversized length, not MessagePack, unknown t, wrong token) gets an `error` frame
 * and a close of that connection only. Until its hello is accepted a connection is "unproven":
 * it must prove itself within helloTimeoutMs, only so many may wait per address, and failed
 * hellos are answered more and more slowly (src/hub-guard.ts). Routing and the offline
 * bookkeeping are in src/hub-route.ts, backpressure (a sender not read while its receiver is
 * full) in src/hub-flow.ts.
 */
import fs from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { OutpostError, isOutpostError, type ErrorCode } from './errors'
import { HelloGuard, hashToken, tokenMatches, type Refusal } from './hub-guard'
import { matches } from './lib/pattern'
import type { LogFn } from './log'
import { encodeFrame, FrameDecoder, type Frame } from './wire/framing'
import { describe, socketPeer, type Conn, type HubLink, type Peer, type Unproven } from './hub-peer'
import { readIntoOwnBuffer } from './hub-read'
import { Router } from './hub-route'
import { API_VERSION } from './version'

export { hashToken, tokenMatches }
export type { HubLink }

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
  /** A connection that has not been welcomed this long after it was accepted (TLS handshake included) is closed. Default 10 s. */
  helloTimeoutMs?: number
  /** Connections from one address (IPv6: one /64) that may wait for their hello at once; past it, new ones are closed at once. Default 64. */
  maxPendingPerAddress?: number
  /** Nodes this process attaches once they have started (`outpost hub`'s node.name): known before, so a sender told one is away is woken when it attaches. */
  locals?: string[]
}

/** Presence frames stay well below the frame limit: names are cut into frames of this many bytes. */
const PRESENCE_CHUNK = 6000

export class Hub {
  private readonly opts: HubOptions
  private readonly server: net.Server
  private readonly nodes = new Map<string, Conn>()
  /** Routes msg/part frames; remembers who was told a receiver is offline (src/hub-route.ts). */
  private readonly router = new Router({
    nodes: this.nodes,
    knows: (node) => this.tokens.has(node) || this.locals.has(node) || this.opts.locals?.includes(node) === true,
    send: (conn, f) => this.send(conn, f),
    fail: (conn, code, message) => this.fail(conn, code, message), log: (level, message) => this.opts.log(level, message),
  })
  private readonly conns = new Set<Conn>()
  /** Nodes attached in-process (Hub.attach): no token, and no socket may take their name. */
  private readonly locals = new Set<string>()
  private readonly watchers = new Set<Conn>()
  private readonly guard: HelloGuard
  private readonly helloTimeoutMs: number
  /** TLS: raw sockets admitted and still in their handshake, by "address:port". */
  private readonly handshaking = new Map<string, Unproven>()
  /** hub.tokens as a Map: a node name from a hello (`constructor`, `__proto__`) finds only what is configured. */
  private readonly tokens: ReadonlyMap<string, string>
  private closing: Promise<void> | undefined

  private constructor(opts: HubOptions, server: net.Server) {
    this.opts = opts
    this.server = server
    this.helloTimeoutMs = opts.helloTimeoutMs ?? 10_000
    this.guard = new HelloGuard({ maxPendingPerAddress: opts.maxPendingPerAddress ?? 64, helloTimeoutMs: this.helloTimeoutMs, log: opts.log })
    // Every raw connection is admitted (or closed at once) here; a TLS one goes on to its
    // handshake, so the cap and the deadline cover handshakes that never finish too.
    server.on('connection', (s: net.Socket) => this.admit(s, server instanceof tls.Server))
    if (server instanceof tls.Server) {
      server.on('secureConnection', (s: tls.TLSSocket) => {
        const key = `${s.remoteAddress}:${s.remotePort}`
        const u = this.handshaking.get(key)
        this.handshaking.delete(key)
        if (u === undefined) s.destroy() // its deadline passed as the handshake ended
        else this.accept(s, u)
      })
      server.on('tlsClientError', (err, s) => {
        // A socket already gone was closed by its peer, or by the hub for its deadline or the cap (counted there).
        if (s.remoteAddress === undefined) return opts.debug?.(`hub: TLS handshake ended: ${err.message}`)
        if (this.guard.tlsFailed(s.remoteAddress, err.message)) opts.log('warn', `TLS handshake with ${s.remoteAddress}:${s.remotePort} failed: ${err.message}`)
      })
    }
    this.tokens = new Map(Object.entries(opts.tokens))
    for (const [node, tok] of this.tokens) {
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
        // The hello deadline closes a handshake that never ends; Node's own timeout (120 s by default) is only a backstop.
        cert: fs.readFileSync(t.cert), key: fs.readFileSync(t.key), handshakeTimeout: (opts.helloTimeoutMs ?? 10_000) + 1000,
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

  /** A new TCP connection: closed at once when its address has too many waiting, else its hello deadline starts. */
  private admit(raw: net.Socket, secure: boolean): void {
    const peer = `${raw.remoteAddress}:${raw.remotePort}`
    const a = this.guard.admit(raw.remoteAddress)
    if (a.type === 'busy') {
      const why = `${this.opts.maxPendingPerAddress ?? 64} connections from ${a.address} are waiting for their hello already`
      if (a.shown) this.opts.log('warn', `closing ${peer} at once: hub_busy: ${why} (hub.maxPendingPerAddress)`)
      raw.on('error', () => {})
      // No reading, no waiting: a plain socket gets the reason if it fits in the send buffer now.
      if (!secure) raw.write(encodeFrame({ t: 'error', code: 'hub_busy', message: `hub: ${why}; try again later` }))
      raw.destroy()
      return
    }
    const u: Unproven = {
      ticket: a.ticket,
      holding: false,
      expire: (shown) => {
        if (shown) this.opts.log('warn', `closing ${peer}: hello_timeout: no TLS handshake within ${this.helloTimeoutMs / 1000} s`)
        raw.destroy()
      },
      timer: setTimeout(() => u.expire(this.guard.timedOut(u.ticket)), this.helloTimeoutMs),
    }
    u.timer.unref()
    raw.once('close', () => {
      clearTimeout(u.timer)
      if (!u.holding) u.ticket.release()
      if (secure) this.handshaking.delete(peer)
    })
    if (secure) this.handshaking.set(peer, u)
    else this.accept(raw, u)
  }

  private accept(sock: net.Socket, u: Unproven): void {
    const conn: Conn = { out: socketPeer(sock), node: undefined, peer: `${sock.remoteAddress}:${sock.remotePort}`, closed: false, watching: false, api: 1, deflate: false, unproven: u }
    let decoder: FrameDecoder
    this.conns.add(conn)
    sock.setNoDelay(true)
    u.expire = (shown) => this.fail(conn, 'hello_timeout', `no hello within ${this.helloTimeoutMs / 1000} s`, !shown)
    const onBytes = (chunk: Buffer): void => {
      if (conn.closed || conn.refusing) return
      let frames: Frame[]
      try {
        frames = decoder.push(chunk)
      } catch (err) {
        this.fail(conn, isOutpostError(err) ? err.code : 'frame_invalid', (err as Error).message)
        return
      }
      for (const f of frames) {
        if (conn.closed || conn.refusing) break
        // Every hello ends in a welcome, a redirect or a refusal: the deadline has done its job.
        if (f.t === 'hello') clearTimeout(u.timer)
        this.handle(conn, f)
      }
    }
    // A plain socket is read into one buffer of its own (src/hub-read.ts): what is left of a read is copied.
    const own = !(sock instanceof tls.TLSSocket) && readIntoOwnBuffer(sock, onBytes)
    decoder = new FrameDecoder({ views: true, transient: own })
    if (!own) sock.on('data', onBytes)
    sock.on('error', () => { /* reported by close */ })
    sock.on('close', () => this.closed(conn))
  }

  /**
   * Attach a node of this process (`outpost hub` with node.name): no token, no socket. Its
   * frames go to `deliver` as the hub would write them to a socket (msg with `from`, nack,
   * online, presence, …). A TCP hello with the same name is refused while it is attached; while its `intake` is full, its senders wait.
   */
  attach(node: string, deliver: (f: Frame) => void, onClose: () => void, intake?: Pick<Peer, 'full' | 'whenRoom'>): HubLink {
    let open = true
    const conn: Conn = {
      out: { write: (f) => { if (open) deliver(f) }, end: () => detach(), destroy: () => detach(), full: () => intake?.full() ?? false, whenRoom: (go) => { if (intake === undefined) go(); else intake.whenRoom(go) } },
      node: undefined, peer: 'this process', closed: false, watching: false, api: API_VERSION, deflate: false,
    }
    const detach = (): void => {
      if (!open) return
      open = false
      this.closed(conn)
      this.locals.delete(node)
      onClose()
    }
    this.conns.add(conn)
    this.locals.add(node)
    this.welcome(conn, node, "this process (in-process node)")
    return {
      send: (f) => { if (open && !conn.closed) { this.opts.debug?.(`hub ← ${node}: ${describe(f)}`); this.handle(conn, f) } },
      close: detach,
    }
  }

  /** A connection ended (socket closed, or an in-process node detached). */
  private closed(conn: Conn): void {
    conn.closed = true
    this.conns.delete(conn)
    this.unbind(conn)
  }

  /** The connection no longer speaks for its node: it is offline (unless a newer connection took over). */
  private unbind(conn: Conn): void {
    this.watchers.delete(conn)
    if (conn.node === undefined || this.nodes.get(conn.node) !== conn) return
    this.nodes.delete(conn.node)
    this.opts.log('info', `${conn.node} disconnected`)
    this.presence([], [conn.node])
    this.router.gone(conn.node)
    this.router.lost(conn.node, conn)
  }

  /** Tell every watching node who came and went. */
  private presence(online: string[], offline: string[]): void {
    for (const w of this.watchers) this.send(w, { t: 'presence', online, offline })
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
      case 'batch':
      case 'zbatch':
      case 'acks':
        return this.router.route(conn, f)
      case 'watch':
        conn.watching = true
        this.watchers.add(conn)
        this.sendEveryone(conn)
        return
      case 'online':
        this.router.heard(conn.node, f.node)
        return
      case 'ping':
        return this.send(conn, { t: 'pong' })
      case 'pong': return
      case 'log':
        this.opts.logSink?.(`${conn.node}|${f.line}`)
        return
      case 'error':
        this.opts.log('warn', `${conn.node} reported ${f.code}: ${f.message}`)
        conn.out.end()
        return
      default:
        return this.fail(conn, 'frame_invalid', `a node does not send ${f.t} frames`)
    }
  }

  private hello(conn: Conn, f: Extract<Frame, { t: 'hello' }>): void {
    // Authenticate first: where a node is sent is nobody else's business.
    const expected = this.tokens.get(f.node)
    if (expected === undefined || !tokenMatches(expected, f.token)) {
      return this.refuse(conn, f.node, expected === undefined ? 'unknown node' : 'wrong token', `hub: node ${JSON.stringify(f.node)} is unknown here or its token is wrong`)
    }
    if (this.locals.has(f.node)) {
      return this.refuse(conn, f.node, "that node runs inside this hub's process", `hub: node ${JSON.stringify(f.node)} runs inside this hub's process; give this node another name`)
    }
    // Proved: no longer counted against its address (a redirect ends the connection anyway).
    conn.unproven?.ticket.release()
    conn.unproven = undefined
    const rule = this.opts.redirect?.find((r) => r.nodes.some((p) => matches(p, f.node)))
    if (rule) {
      this.opts.log('info', `redirecting ${f.node} to ${rule.servers.join(', ')}`)
      this.send(conn, { t: 'redirect', servers: rule.servers })
      conn.out.end()
      return
    }
    conn.api = f.apiVersion
    conn.deflate = f.features?.includes('deflate') === true
    this.welcome(conn, f.node, `${conn.peer} (outpost ${f.version}, api ${f.apiVersion})`)
  }

  /**
   * A failed hello: auth_failed and a close, at once for an address's first few failures, then
   * held back longer and longer (src/hub-guard.ts); logged by itself only among the first few.
   */
  private refuse(conn: Conn, node: string, reason: Refusal, message: string): void {
    const u = conn.unproven
    const { delayMs, shown } = u === undefined ? { delayMs: 0, shown: true } : this.guard.refused(u.ticket, reason, node)
    if (shown) this.opts.log('warn', `refused ${JSON.stringify(node)} from ${conn.peer}: ${reason}`)
    if (u === undefined || delayMs === 0) return this.fail(conn, 'auth_failed', message, !shown)
    u.holding = true
    conn.refusing = true
    setTimeout(() => {
      u.holding = false
      u.ticket.release()
      this.fail(conn, 'auth_failed', message, !shown)
    }, delayMs).unref()
  }

  /** Bind an authenticated connection to its node name and wake whoever waited for it. */
  private welcome(conn: Conn, node: string, from: string): void {
    const previous = this.nodes.get(node)
    if (previous) {
      // The newest connection wins: the old one is usually half-dead after a network change.
      this.fail(previous, 'frame_invalid', 'replaced by a newer connection of the same node')
      this.router.lost(node, previous)
    }
    conn.node = node
    this.nodes.set(node, conn)
    this.send(conn, { t: 'welcome', hub: this.opts.name ?? 'hub', apiVersion: API_VERSION, features: ['presence', 'deflate'] })
    this.opts.log('info', `${node} connected from ${from}`)
    this.presence([node], [])
    this.router.back(node)
  }

  /** A node started watching: every node connected now, in frames of a safe size. */
  private sendEveryone(conn: Conn): void {
    let names: string[] = []
    let size = 0
    for (const name of this.nodes.keys()) {
      if (size + name.length > PRESENCE_CHUNK && names.length > 0) {
        this.send(conn, { t: 'presence', online: names, offline: [] })
        names = []
        size = 0
      }
      names.push(name)
      size += name.length + 3
    }
    this.send(conn, { t: 'presence', online: names, offline: [] })
  }

  private send(conn: Conn, f: Frame): void {
    if (conn.closed) return
    this.opts.debug?.(`hub → ${conn.node ?? conn.peer}: ${describe(f)}`)
    conn.out.write(f)
  }

  /** Send an error frame and close. quiet: counted and summed up by the guard instead of a line of its own. */
  private fail(conn: Conn, code: ErrorCode | string, message: string, quiet = false): void {
    if (conn.closed) return
    if (!quiet) this.opts.log('warn', `closing ${conn.node ?? conn.peer}: ${code}: ${message}`)
    try {
      conn.out.write({ t: 'error', code, message })
    } catch { /* the socket may be gone */ }
    conn.closed = true
    this.unbind(conn)
    conn.out.end()
    setTimeout(() => conn.out.destroy(), 1000).unref()
  }

  /** Stop listening and close every connection. Safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.guard.close()
      this.server.close(() => resolve())
      for (const c of this.conns) c.out.destroy()
      for (const u of this.handshaking.values()) u.expire(false)
    })
    return this.closing
  }
}
