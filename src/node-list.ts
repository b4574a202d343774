/**
 * The nodes this node has heard from (central keeps the fleet's list): each node.hello
 * heartbeat updates an entry, the node's labels and facts included; the list is kept in
 * <dataDir>/nodes.json (written at most once a second) so `outpost nodes` still knows the
 * fleet (and selectors can be resolved) after a restart.
 */
import fs from 'node:fs'
import path from 'node:path'
import { wireLabels } from './labels'
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

  constructor(dataDir: string, now: () => number) {
    this.file = path.join(dataDir, 'nodes.json')
    this.now = now
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

  /** A heartbeat arrived: its sender is online, with what it says about itself. */
  record(env: Envelope): void {
    let info: Partial<NodeInfo> = {}
    try {
      const parsed = JSON.parse(dataText(env.data)) as unknown
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) info = parsed as Partial<NodeInfo>
    } catch { /* an old or foreign node: name and time are enough */ }
    // Labels and facts are names from the wire: only well-formed string pairs are kept.
    const { labels, facts, ...rest } = info
    const l = wireLabels(labels)
    const f = wireLabels(facts)
    this.known.set(env.fromNode, { ...rest, ...(l ? { labels: l } : {}), ...(f ? { facts: f } : {}), name: env.fromNode, online: true, lastSeen: this.now() })
    this.heard = true
    this.save()
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
   * Every node heard from, by name (`self` always online). Online: connected to the hub now,
   * where the hub says so; otherwise heard within 2.5 heartbeat intervals.
   */
  list(self: string, helloInterval: number): NodeInfo[] {
    const now = this.now()
    const live = this.live
    return [...this.known.values()]
      .map((n) => ({
        ...n,
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
