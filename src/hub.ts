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
 * hellos are answered more and more slowly (src/hub-guard.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { OutpostError, isOutpostError, type ErrorCode } from './errors'
import { HelloGuard, type Refusal, type Ticket } from './hub-guard'
import { matches } from './lib/pattern'
import type { LogFn } from './log'
import { encodeFrame, FrameDecoder, type Frame } from './wire/framing'
import { framesFor, type Routed } from './hub-deliver'
import { ulid } from './wire/ulid'
import { describe, socketPeer, type Peer } from './hub-peer'
import { API_VERSION } from './version'

/** A pair stays blocked at most this long after its receiver is back (the first message may have expired). */
const BLOCK_MAX_MS = 30_000


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
}

/** A connection between accept and its welcome: it holds a place under its address's cap. */
interface Unproven {
  ticket: Ticket
  /** The hello deadline. */
  timer: NodeJS.Timeout
  /** The answer to a failed hello is held back: the place stays taken until it is sent, even if the peer left. */
  holding: boolean
  /** What the deadline does (shown: log it by itself): close the socket (TLS still handshaking), or fail the connection. */
  expire: (shown: boolean) => void
}

interface Conn {
  out: Peer
  node: string | undefined
  peer: string
  closed: boolean
  /** Sent presence frames (it asked with `watch`). */
  watching: boolean
  /** The apiVersion of its hello: from BATCH_API on it takes batch frames, before that only msg frames. */
  api: number
  /** Its hello announced `deflate`: zbatch frames go to it whole, else inflated (src/hub-deliver.ts). */
  deflate: boolean
  /** Until its hello is accepted (sockets only). */
  unproven?: Unproven | undefined
  /** Its hello was refused and the answer is held back: what else it sends is ignored. */
  refusing?: boolean
}

/** A node running in the hub's own process, attached with Hub.attach. */
export interface HubLink {
  /** A frame from the node (msg, part, online, watch, log, …), as if it came over a socket. */
  send(f: Frame): void
  /** Detach: the node is offline for the hub from now on. */
  close(): void
}

/** Presence frames stay well below the frame limit: names are cut into frames of this many bytes. */
const PRESENCE_CHUNK = 6000

export function hashToken(token: string): string {
  return `sha256:${createHash('sha256').update(token).digest('hex')}`
}

/** Constant-time check of a presented token against the configured "sha256:<hex>" or plain value. */
export function tokenMatches(expected: string, given: string): boolean {
  const want = expected.startsWith('sha256:') ? expected.slice(7).toLowerCase() : createHash('sha256').update(expected).digest('hex')
  const got = createHash('sha256').update(given).digest('hex')
  return want.length === got.length && timingSafeEqual(Buffer.from(want), Buffer.from(got))
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
    const decoder = new FrameDecoder({ views: true })
    this.conns.add(conn)
    sock.setNoDelay(true)
    u.expire = (shown) => this.fail(conn, 'hello_timeout', `no hello within ${this.helloTimeoutMs / 1000} s`, !shown)
    sock.on('data', (chunk: Buffer) => {
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
    })
    sock.on('error', () => { /* reported by close */ })
    sock.on('close', () => this.closed(conn))
  }

  /**
   * Attach a node of this process (`outpost hub` with node.name): no token, no socket. Its
   * frames go to `deliver` as the hub would write them to a socket (msg with `from`, nack,
   * online, presence, …). A TCP hello with the same name is refused while it is attached.
   */
  attach(node: string, deliver: (f: Frame) => void, onClose: () => void): HubLink {
    let open = true
    const conn: Conn = {
      out: { write: (f) => { if (open) deliver(f) }, end: () => detach(), destroy: () => detach() },
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
    // It learns about receivers afresh when it reconnects (its sends get nacked again).
    for (const [to, set] of this.waiting) if (set.delete(conn.node) && set.size === 0) this.waiting.delete(to)
    // A reconnecting sender resends from its oldest message anyway.
    for (const key of this.blocked.keys()) if (key.startsWith(`${conn.node}\u0000`)) this.blocked.delete(key)
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
        return this.route(conn, f)
      case 'watch':
        conn.watching = true
        this.watchers.add(conn)
        this.sendEveryone(conn)
        return
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
    }
    conn.node = node
    this.nodes.set(node, conn)
    this.send(conn, { t: 'welcome', hub: this.opts.name ?? 'hub', apiVersion: API_VERSION, features: ['presence', 'deflate'] })
    this.opts.log('info', `${node} connected from ${from}`)
    this.presence([node], [])
    for (const [key, b] of this.blocked) if (key.endsWith(`\u0000${node}`)) b.since = Date.now()
    const waiters = this.waiting.get(node)
    if (waiters) {
      this.waiting.delete(node)
      for (const w of waiters) {
        const c = this.nodes.get(w)
        if (c) this.send(c, { t: 'online', node })
      }
    }
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

  /** Routed by `to`, envelopes unread; adapted to what an older receiver takes (src/hub-deliver.ts). */
  private route(conn: Conn, f: Routed): void {
    const target = this.nodes.get(f.to)
    // An ACK for a node that is away is dropped, not refused: nothing waits on it (its messages
    // come again and are ACKed again), and a refusal would tell the sender the node is away
    // after the `online` that said it is back. ACKs keep no order, so a blocked pair does not hold them.
    if (f.t === 'acks') return target === undefined ? undefined : this.forward(conn, target, f)
    const pair = this.blocked.size === 0 && target !== undefined ? '' : `${conn.node}\u0000${f.to}`
    const block = pair === '' ? undefined : this.blocked.get(pair)
    if (block && target !== undefined && block.since !== undefined && Date.now() - block.since > BLOCK_MAX_MS) this.blocked.delete(pair)
    else if (block || target === undefined) {
      if (f.t === 'batch' || f.t === 'zbatch') for (const id of f.ids) this.send(conn, { t: 'nack', id, to: f.to, reason: 'offline' })
      else if (f.t === 'msg' || f.i === 0) this.send(conn, { t: 'nack', id: f.id, to: f.to, reason: 'offline' })
      // Only nodes this hub knows can come back: no memory is kept for made-up names.
      if (target === undefined && (this.tokens.has(f.to) || this.locals.has(f.to))) {
        let set = this.waiting.get(f.to)
        if (set === undefined) this.waiting.set(f.to, (set = new Set()))
        set.add(conn.node!)
        if (!block) this.blocked.set(pair, { since: undefined })
      }
      return
    }
    this.forward(conn, target, f)
  }

  private forward(conn: Conn, target: Conn, f: Routed): void {
    let frames: Frame[]
    try {
      frames = framesFor(target, f, conn.node!, ulid)
    } catch (err) {
      // A zbatch that does not inflate (or would past the frame limit): its sender's connection only.
      return this.fail(conn, isOutpostError(err) ? err.code : 'frame_invalid', (err as Error).message)
    }
    try {
      for (const out of frames) this.send(target, out)
    } catch (err) {
      // A frame that leaves no room for the `from` the hub stamps (every outpost node leaves it):
      // it cannot be forwarded; its sender's connection closes, not the hub.
      return this.fail(conn, isOutpostError(err) ? err.code : 'frame_invalid', `${(err as Error).message}; a frame must leave room for the sender's name (the hub adds it)`)
    }
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
