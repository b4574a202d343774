/**
 * The nodes this node has heard from (central keeps the fleet's list): each node.hello
 * heartbeat updates an entry, the node's labels and facts included; the list is kept in
 * <dataDir>/nodes.json (written at most once a second) so `outpost nodes` still knows the
 * fleet (and selectors can be resolved) after a restart.
 *
 * Each node's public key is pinned on first sight (or up front by security.nodeKeys): a hello
 * that carries another key, or none, for a pinned node is refused and logged once (key_changed).
 */
import fs from 'node:fs'
import path from 'node:path'
import { isOutpostError } from './errors'
import { fingerprint } from './keys'
import { wireLabels } from './labels'
import type { LogFn } from './log'
import { dataText, type Envelope } from './wire/envelope'

export interface NodeInfo {
  name: string
  online: boolean
  lastSeen: number
  version?: string
  apiVersion?: number
  os?: string
  arch?: string
  uptime?: number
  /** Its node.labels, from its last hello; absent when that hello had none (an older node): unknown. */
  labels?: Record<string, string>
  /** What it found out about itself (os, osVersion, arch, version, hostname, kernel); absent as labels are. */
  facts?: Record<string, string>
  /** Its pinned public key, `ed25519:<base64>`, and that key's fingerprint. */
  publicKey?: string
  keyFingerprint?: string
  /** It signs its replies (its hello says so; kept once said): central then refuses its unsigned replies. */
  signsReplies?: boolean
}

export interface NodeListOptions {
  now: () => number
  log: LogFn
  /** security.nodeKeys, read at each hello (it changes live): keys pinned by config. */
  nodeKeys: () => Readonly<Record<string, string>>
}

export class NodeList {
  private readonly known = new Map<string, NodeInfo>()
  private readonly file: string
  private readonly now: () => number
  private saveTimer: NodeJS.Timeout | undefined
  /** Who the hub says is connected now (undefined: the transport has no presence; heartbeats decide). */
  private live: Set<string> | undefined
  /** Names the transport said came online (a broker's presence, the hub's `online`): known, not listed. */
  private readonly announced = new Set<string>()
  /** Read from nodes.json at start, or heard a node since: it can tell a new name from a made-up one. */
  private heard = false
  private readonly log: LogFn
  private readonly nodeKeys: () => Readonly<Record<string, string>>
  /** Nodes whose refused hello was logged: once per node until one of its hellos is taken again. */
  private readonly refusedLogged = new Set<string>()

  constructor(dataDir: string, o: NodeListOptions) {
    this.file = path.join(dataDir, 'nodes.json')
    this.now = o.now
    this.log = o.log
    this.nodeKeys = o.nodeKeys
    try {
      for (const n of JSON.parse(fs.readFileSync(this.file, 'utf8')) as NodeInfo[]) this.known.set(n.name, n)
      this.heard = true
    } catch { /* none yet */ }
  }

  /** Whether `name` was ever heard of: listed (heartbeat, the hub's presence, nodes.json) or announced. */
  knows(name: string): boolean {
    return this.known.has(name) || this.announced.has(name)
  }

  /**
   * Whether the list means anything yet: false on a first start (no nodes.json) until a
   * heartbeat, the hub's presence or a broker's announcement arrives.
   */
  get settled(): boolean {
    return this.heard
  }

  /** The transport said this node is online (MQTT, NATS presence; the hub's `online` frame). */
  announce(name: string): void {
    this.announced.add(name)
    this.heard = true
  }

  /**
   * The key pinned for `name` (security.nodeKeys first), `ed25519:<base64>`, and whether its
   * replies must be signed (its hello said it signs them; an older node's are taken unsigned);
   * undefined when no key is pinned.
   */
  replyKey(name: string): { publicKey: string; strict: boolean } | undefined {
    const configured = this.nodeKeys()
    const known = this.known.get(name)
    const publicKey = Object.hasOwn(configured, name) ? configured[name] : known?.publicKey
    return publicKey === undefined ? undefined : { publicKey, strict: known?.signsReplies === true }
  }

  /**
   * A heartbeat arrived: its sender is online, with what it says about itself. Refused (false,
   * nothing recorded) when its key is not the one pinned for that node.
   */
  record(env: Envelope): boolean {
    let info: Partial<NodeInfo> = {}
    try {
      const parsed: unknown = JSON.parse(dataText(env.data))
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) info = parsed as Partial<NodeInfo>
    } catch { /* an old or foreign node: name and time are enough */ }
    const name = env.fromNode
    const offered = typeof info.publicKey === 'string' ? info.publicKey : undefined
    const configured = Object.hasOwn(this.nodeKeys(), name) ? this.nodeKeys()[name] : undefined
    const pinned = configured ?? this.known.get(name)?.publicKey
    let keyFingerprint: string | undefined
    try {
      if (offered !== undefined) keyFingerprint = fingerprint(offered)
    } catch (err) {
      if (!isOutpostError(err)) throw err
      return this.refuse(name, 'key_invalid', `refused node.hello from ${name}: its publicKey is not an ed25519 key (${err.message})`)
    }
    if (pinned !== undefined && offered !== pinned) {
      const said = offered === undefined ? 'carries no key' : `carries key ${keyFingerprint}`
      const whence = configured !== undefined ? 'set in security.nodeKeys' : 'pinned when it was first seen'
      return this.refuse(name, 'key_changed', `refused node.hello from ${name}: it ${said}, but ${name}'s key is ${fingerprint(pinned)} (${whence}); the hello is not recorded. If ${name} really has a new key (a new data directory), set security.nodeKeys.${name} to it, or remove ${name} from ${this.file} while central is stopped`)
    }
    this.refusedLogged.delete(name)
    // The key and its fingerprint are outpost's own fields, never taken from the hello as they are;
    // labels and facts are names from the wire: only well-formed string pairs are kept.
    const { publicKey: _k, keyFingerprint: _f, signsReplies, labels, facts, ...rest } = info
    const key = offered !== undefined ? { publicKey: offered, keyFingerprint: keyFingerprint! } : {}
    // Once said, kept: a hello without it (forged, or stripped on the way) does not take it back.
    const signs = signsReplies === true || this.known.get(name)?.signsReplies === true
    const l = wireLabels(labels)
    const f = wireLabels(facts)
    this.known.set(name, { ...rest, ...key, ...(signs ? { signsReplies: true } : {}), ...(l ? { labels: l } : {}), ...(f ? { facts: f } : {}), name, online: true, lastSeen: this.now() })
    this.heard = true
    this.save()
    return true
  }

  private refuse(name: string, code: 'key_changed' | 'key_invalid', message: string): false {
    if (!this.refusedLogged.has(name)) {
      this.refusedLogged.add(name)
      this.log('warn', message, { from: name, method: 'node.hello', code })
    }
    return false
  }

  /**
   * The hub's presence: nodes that came (`online`) and went (`offline`). With `online`
   * undefined the presence is unknown again (disconnected, or a new connection: the hub sends
   * everyone connected first).
   */
  presence(online: string[] | undefined, offline: string[] = []): void {
    if (online === undefined) { this.live = undefined; return }
    this.live ??= new Set()
    this.heard = true
    const now = this.now()
    for (const n of online) {
      this.live.add(n)
      // Known from now on, even before its first heartbeat arrives.
      if (!this.known.has(n)) { this.known.set(n, { name: n, online: true, lastSeen: now }); this.save() }
    }
    for (const n of offline) {
      this.live.delete(n)
      const info = this.known.get(n)
      if (info) { info.lastSeen = now; this.save() }
    }
  }

  /**
   * Every node heard from, by name (`self` always online), with its pinned key. Online: connected to the hub now,
   * where the hub says so; otherwise heard within 2.5 heartbeat intervals.
   */
  list(self: string, helloInterval: number): NodeInfo[] {
    const now = this.now()
    const live = this.live
    const configured = this.nodeKeys()
    return [...this.known.values()]
      .map((n) => ({
        ...n,
        ...keyOf(Object.hasOwn(configured, n.name) ? configured[n.name] : n.publicKey),
        online: n.name === self ? true : live !== undefined ? live.has(n.name) : helloInterval > 0 && now - n.lastSeen < helloInterval * 2500,
        ...(live?.has(n.name) === true ? { lastSeen: Math.max(n.lastSeen, now) } : {}),
      }))
      .sort((a, b) => a.name.localeCompare(b.name))
  }

  private save(): void {
    if (this.saveTimer) return
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined
      fs.writeFile(this.file, JSON.stringify([...this.known.values()], null, 1), () => {})
    }, 1000)
    this.saveTimer.unref()
  }
}

/** publicKey and keyFingerprint of a pinned key (none: neither). */
function keyOf(publicKey: string | undefined): Pick<NodeInfo, 'publicKey' | 'keyFingerprint'> {
  if (publicKey === undefined) return {}
  try {
    return { publicKey, keyFingerprint: fingerprint(publicKey) }
  } catch {
    return { publicKey } // a hand-edited nodes.json: record() pins only keys that parse
  }
}
