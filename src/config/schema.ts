/**
 * The shape of outpost.yaml (SPEC §6), written once: validation, defaults, `config init`'s
 * commented file and the TypeScript `Config` type are all derived from this table.
 */
import os from 'node:os'
import path from 'node:path'
import { cronExpression } from '../lib/cron'
import { isOutpostError } from '../errors'
import { parsePublicKey } from '../keys'
import { labelProblem, MAX_LABELS } from '../labels'
import { isSelector, parseSelector } from '../selector'
import { bool, int, list, map, nstr, obj, oneOf, str, strs, type DefaultsContext, type Infer, type ObjSpec, type Spec } from './spec'
import { TRANSPORT_LIST } from '../../transports/index'

export type { DefaultsContext, Fields, Infer, Spec } from './spec'

const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/
const checkNodeName = (v: string): string | undefined =>
  NODE_NAME.test(v) ? undefined : 'must be a node name: letters, digits, _ and -, at most 63 characters'
// What the transports declare (transports/index.ts): their kinds, URL schemes and config sections.
type Plugin = (typeof TRANSPORT_LIST)[number]
type Kind = Plugin['kind']
type Sections = { [P in Plugin as P extends { section: ObjSpec } ? P['kind'] : never]: P extends { section: infer S } ? S : never }
const KINDS = TRANSPORT_LIST.map((p) => p.kind) as readonly Kind[]
const SCHEMES = [...new Set(TRANSPORT_LIST.flatMap((p) => p.schemes))]
const SCHEME_LIST = SCHEMES.map((s) => `${s}://`).join(' ')
const SERVER_URL = new RegExp(`^(${SCHEMES.join('|')})://[^\\s]+$`)
function transportSections(): Sections {
  const out: Record<string, ObjSpec> = {}
  for (const p of TRANSPORT_LIST) if ('section' in p) out[p.kind] = p.section
  return out as Sections
}

const checkServers = (v: string[]): string | undefined => {
  for (const s of v) if (!SERVER_URL.test(s)) return `has ${JSON.stringify(s)}: each server is a URL ${SCHEME_LIST} followed by host:port`
  return v.length === 0 ? 'must list at least one server' : undefined
}
const checkHostPort = (v: string): string | undefined =>
  /^(\[[0-9a-fA-F:.]+\]|[^\s:]+):\d{1,5}$/.test(v) ? undefined : 'must be host:port, such as 0.0.0.0:7430'

/** api.http / api.metrics: host:port, or a port alone (then bound to 127.0.0.1). */
const checkListen = (v: string): string | undefined =>
  /^((\[[0-9a-fA-F:.]+\]|[^\s:]+):)?\d{1,5}$/.test(v) ? undefined : 'must be host:port or a port (loopback), such as 127.0.0.1:8080'

const checkCron = (v: string): string | undefined => {
  const fields = v.trim().split(/\s+/).length
  if (fields !== 5 && fields !== 6) return `must have 5 fields (minute hour day month weekday), or 6 with seconds first; has ${fields}`
  try {
    cronExpression(v)
    return undefined
  } catch (err) {
    return `is not a cron expression: ${(err as Error).message}`
  }
}

/** schedules[].to: node names or selectors. */
const checkTargets = (v: string[]): string | undefined => {
  for (const t of v) {
    if (!isSelector(t)) {
      const bad = checkNodeName(t)
      if (bad !== undefined) return `has ${JSON.stringify(t)}, which ${bad}, or a selector such as role=db`
      continue
    }
    try {
      parseSelector(t)
    } catch (err) {
      return `lists a ${(err as Error).message.replace(/\. A selector is .*$/, '').replace(/^(selector "(?:[^"\\]|\\.)*") /, '$1 that ')}`
    }
  }
  return undefined
}

const checkPublicKey = (v: string): string | undefined => {
  try {
    parsePublicKey(v)
    return undefined
  } catch (err) {
    if (!isOutpostError(err)) throw err
    return 'must be ed25519: followed by the base64 of 32 bytes, as `outpost keys show` prints it'
  }
}

/** security.nodeKeys: node names to public keys in the form `outpost keys show` prints. */
const checkNodeKeys = (v: Record<string, string>): string | undefined => {
  for (const [name, key] of Object.entries(v)) {
    const bad = checkNodeName(name)
    if (bad !== undefined) return `has ${JSON.stringify(name)}, which ${bad}`
    try {
      parsePublicKey(key)
    } catch (err) {
      if (!isOutpostError(err)) throw err
      return `${name} must be ed25519: followed by the base64 of 32 bytes, as \`outpost keys show\` prints it`
    }
  }
  return undefined
}

/** The first label of the host name, made into a valid node name. */
export function hostNodeName(hostname: string): string {
  const label = (hostname.split('.')[0] ?? '').replace(/[^A-Za-z0-9_-]/g, '-').replace(/^[-_]+/, '').slice(0, 63)
  return label === '' ? 'node' : label
}

/** files.roots and files.read: a relative directory would be read from wherever the agent starts. */
const absoluteDirs = (v: readonly string[]): string | undefined => {
  const rel = v.find((p) => !path.isAbsolute(p))
  return rel === undefined ? undefined : `must list absolute directories, got ${JSON.stringify(rel)}`
}

export const SCHEMA = obj({
  node: obj({
    name: str('', "This node's unique name: letters, digits, _ and -. Default: the host name.", { dyn: (c) => hostNodeName(c.hostname), check: checkNodeName }),
    central: str('central', 'The node that receives error.log, node.hello and, by default, replies.', { check: checkNodeName }),
    labels: map('What this node is, as name: value pairs sent to central with each heartbeat (such as  site: oslo,  role: db) for `outpost nodes --labels`. Names: a letter first, then letters, digits, _ . -; values: a letter or digit first, then letters, digits, _ . + -; both at most 63 characters; at most 64 labels. The built-in facts (os, osVersion, arch, version, hostname, kernel) are sent besides and cannot be labels. Applied at once when changed.', { entry: labelProblem, check: (v: Record<string, string>) => (Object.keys(v).length > MAX_LABELS ? `has ${Object.keys(v).length} labels; a node has at most ${MAX_LABELS}` : undefined) }),
  }, 'Who this node is.'),
  dataDir: str('', 'Outbox, inbox, reply files and the API socket. Default: /var/lib/outpost as root, else ~/.local/share/outpost.', {
    dyn: (c) => (c.uid === 0 ? '/var/lib/outpost' : path.join(c.home, '.local', 'share', 'outpost')),
  }),
  transport: obj({
    kind: oneOf(KINDS, 'tcp', TRANSPORT_LIST.map((p) => `${p.kind} (${p.summary})`).join(' | ')),
    servers: strs(['tcp://127.0.0.1:7430'], `Tried in order: ${SCHEME_LIST}`, { check: checkServers }),
    token: nstr("tcp: this node's token at the hub."),
    tls: obj({
      ca: nstr('PEM file of the CA that signed the server certificate.'),
      cert: nstr('PEM client certificate, when the server asks for one.'),
      key: nstr('PEM key of the client certificate.'),
    }, 'TLS for tls://, mqtts:// and TLS NATS servers.'),
    ...transportSections(),
    compress: oneOf(['auto', 'off'] as const, 'auto', 'auto: compress (deflate) a batch of 1 KiB or more of envelopes when that saves at least 10%: on tcp with a hub that offers it, on MQTT and NATS to a node that announced it (api version 4); nothing compressed reaches a node that did not announce it. off: never, and this node announces nothing (on MQTT and NATS it says api version 3).'),
    maxBytesPerSecond: int(0, 'Bytes a second delivery may send (a metered link), counted as written to the connection (after batching and compression); ACKs and shell/tunnel frames count too (never held back); messages wait their turn in the outbox. 0: unlimited.', 0),
  }, 'How this node reaches the others.'),
  delivery: obj({
    ackTimeout: int(5, 'Seconds to wait for an ACK before resending.', 0),
    retries: int(10, 'Resends before a message is given up (attempts spent only while the receiver is reachable).', 0),
    ttl: int(86400, 'Seconds a message may wait undelivered.', 1),
    maxOutboxBytes: int(268435456, 'Bytes of undelivered messages the outbox may hold; past it new messages are refused (outbox_full).', 1024),
    reserveBytes: int(4194304, 'Disk kept in reserve beside the outbox (zeros written ahead): on a full disk, deliveries, replies and receipts are still recorded from it while new messages are refused (disk_full) until space is freed. audit.log, reply files and errors.log stop while less than this plus 2 MiB is free, log files at this plus 1 MiB. 0: no reserve.', 0),
    maxFanOut: int(10000, 'Most nodes one request (send, the socket or HTTP API) may address, each name counted once; more is refused (fan_out_too_large) before anything is stored.', 1),
    drainRate: int(0, 'Messages a second delivery may send, so that a node back from an outage drains its backlog at this pace rather than all at once (a lone message still goes at once). 0: unlimited.', 0),
    whenFull: oneOf(['refuse', 'dropOldestEvents'] as const, 'refuse', 'When the outbox holds maxOutboxBytes: refuse new messages (outbox_full), or drop the oldest events (messages with ackTimeout 0) to make room; requests and replies are never dropped, and drops are logged and reported to central (events_dropped).'),
  }, 'Defaults for messages that do not set their own.'),
  methods: obj({
    enabled: strs(['*'], 'Method handlers switched on: "*" or a list of names.'),
    allow: list({
      from: strs([], 'Sending nodes ("*" for any; $central and $self mean node.central and this node).'),
      methods: strs(['*'], 'Method names or patterns such as "info.*".'),
    }, ['from'] as const, [{ from: ['$central', '$self'], methods: ['*'] }, { from: ['*'], methods: ['reply.*', 'error.log', 'node.hello', 'node.pong'] }],
    'Who may call what on this node. The second default rule lets any node deliver replies, errors and heartbeats.'),
    timeout: int(300, 'Seconds a method may run when the message sets no methodTimeout.', 1),
    commands: map('Named commands for cli.named, such as  uptime: "uptime".'),
    shell: str('/bin/sh', 'Shell for commands given as one string.'),
    outputCap: int(1048576, 'Bytes of output kept per stream (stdout, stderr); the rest is cut with a mark.', 1),
    killGrace: int(2, 'Seconds between SIGTERM and SIGKILL when a stopped command\'s process group is killed (cli.stream).', 0, 60),
  }, 'What this node runs.'),
  schedules: list({
    cron: str('', '5 fields, or 6 with seconds first.', { check: checkCron }),
    method: str('', 'Method to run on this node.'),
    methodArgs: strs([], 'Its arguments.'),
    toNode: str('', 'Node the result is sent to (default: node.central).', { check: (v: string) => (v === '' ? undefined : checkNodeName(v)) }),
    replyMethod: str('', 'What the result is handed to on toNode (default: reply.file.append).'),
    replyMethodArgs: strs([], 'Arguments of the reply method ({{DATA}} is the output).'),
    directory: str('', 'Reply file directory (default: schedules).'),
    fileName: str('', 'Reply file name (default: <method>.log).'),
    methodTimeout: int(0, 'Seconds the method may run (0: methods.timeout).', 0),
    to: strs([], 'On central: instead of running the method here, send it at each slot as a job to these nodes: names, or selectors such as role=db resolved against the node list at that moment (`outpost jobs` shows the runs).', { check: checkTargets }),
    batch: str('', 'A job (to): at most this many nodes at once, a count or a percentage such as 10% (default: all at once).', { check: (v: string) => (v === '' || /^[1-9]\d{0,5}%?$/.test(v) ? undefined : 'must be a number of nodes (5) or a percentage of them (10%)') }),
    maxErrors: int(0, 'A job (to): start no more nodes once this many failed (0: no limit).', 0),
    canary: int(0, 'A job (to): this many nodes first, the rest only if each of them is ok (0: none).', 0),
  }, ['cron', 'method'] as const, [], 'Methods run here on a cron expression, their results sent through the outbox to toNode. A run missed while the node was down runs once at start.'),
  logs: list({
    path: str('', 'The file to follow (rotation by rename and truncation are followed).', { check: (v: string) => (path.isAbsolute(v) ? undefined : 'must be an absolute path') }),
    toNode: str('', 'Node the lines are shipped to (default: node.central).', { check: (v: string) => (v === '' ? undefined : checkNodeName(v)) }),
    replyMethod: str('reply.file.append', 'What the lines are handed to on toNode.'),
    directory: str('logs', 'Directory of the file the lines are written to on toNode.'),
    fileName: str('', 'File name on toNode (default: the base name of path).'),
    stream: str('', 'The stream field of each line (default: the base name of path).'),
    level: str('info', 'The level field of each line.'),
    startAt: oneOf(['end', 'start'] as const, 'end', 'A file never shipped before: ship from its end (new lines only) or its start.'),
    interval: int(1000, 'Milliseconds between looks at the file; the lines found are sent as one message.', 50),
    maxBatchBytes: int(65536, 'Most bytes of lines per message.', 1024),
  }, ['path'] as const, [], 'Log files shipped continuously as time|stream|level|message lines, resuming after a restart with no gap and no duplicate.'),
  hello: obj({
    interval: int(30, 'Seconds between node.hello heartbeats to the central node (0: off). A node also says hello at each connect, and again 2 s and 10 s after it.', 0),
  }, 'Heartbeat.'),
  security: obj({
    nodeKeys: map('Node name: its public key, "ed25519:<base64>" (`outpost keys show <dataDir>/node.key` on that node prints it). Central pins these up front; a node not listed is pinned by the key its first node.hello carries. A hello with another key is refused (key_changed).', { check: checkNodeKeys }),
    trustedKeys: list({
      name: str('', 'A name for the key, shown in refusals and logs.'),
      publicKey: str('', 'The operator\'s public key, "ed25519:<base64>" as `outpost keys show` prints it.', { check: checkPublicKey }),
      methods: strs(['*'], 'Methods the key may call here (patterns as in methods.allow).'),
    }, ['name', 'publicKey'] as const, [], 'Operator keys whose signatures this node accepts, each for the methods listed.'),
    requireSignatures: strs([], 'true: every method but the sinks (node.hello, error.log, reply.*) runs only when signed by a key of trustedKeys allowed to call it; or a list of method patterns that need it (sinks included); false (or []): none needs it, and a signature by a trusted key is still checked.', { boolOk: true }),
  }, 'Keys: which node keys central accepts, which operator keys this node trusts.'),
  hub: obj({
    listen: str('0.0.0.0:7430', 'Address the hub listens on.', { check: checkHostPort }),
    tokens: map('Node name: "sha256:<hex of its token>" (plain tokens work, with a warning).'),
    tls: obj({
      cert: nstr('PEM server certificate.'),
      key: nstr('PEM server key.'),
      ca: nstr('PEM CA for client certificates.'),
      requireClientCert: bool(false, 'Refuse nodes without a client certificate signed by ca.'),
    }, 'TLS for the hub.'),
    redirect: list({
      nodes: strs([], 'Node names (or patterns) to send elsewhere.'),
      servers: strs([], 'Where they should connect instead.', { check: checkServers }),
    }, ['nodes', 'servers'] as const, [], 'Rules sending named nodes to other hubs.'),
    helloTimeout: int(10, 'Seconds a new connection has to be welcomed (its TLS handshake and a valid hello); then it is closed (hello_timeout).', 1),
    maxPendingPerAddress: int(64, 'Connections from one address (IPv6: one /64) that may wait for their welcome at once; past it, new ones from there are closed at once (hub_busy).', 1),
  }, 'Only for `outpost hub`.'),
  api: obj({
    socket: nstr('Unix socket for the CLI; default <dataDir>/outpost.sock.'),
    http: nstr('host:port (or a port: loopback) for the HTTP API (off when null); needs api.token.', { check: checkListen, numberOk: true }),
    token: nstr('Bearer token the HTTP API requires (always: api.http without it is a config error).'),
    signingKey: nstr('An operator private key file (`outpost keys gen`): messages submitted through the socket and HTTP APIs are signed with it (one submitted signed already is kept as it is).'),
    metrics: nstr('host:port (or a port: loopback) for Prometheus metrics at GET /metrics (off when null).', { check: checkListen, numberOk: true }),
  }, 'Local APIs.'),
  upgrade: obj({
    url: nstr('The version endpoint (version.json).'),
    publicKey: nstr('ed25519 public key the version file must be signed with.'),
    schedule: nstr('Cron expression for automatic upgrade checks.'),
    allowHttp: bool(false, 'Accept a plain http:// endpoint.'),
    rollbackAfter: int(120, 'Seconds a new binary has to reach its transport after an upgrade before it is rolled back.', 5, 86400),
  }, 'Self-upgrade.'),
  log: obj({
    level: oneOf(['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const, 'info', 'trace | debug | info | warn | error | silent'),
    format: oneOf(['text', 'json'] as const, 'text', 'text | json (one object a line: time, level, component, msg and fields)'),
    file: nstr('Log file, appended to (default: standard error).'),
  }, 'Logging.'),
  audit: obj({
    enabled: bool(true, 'Write <dataDir>/audit.log: every message accepted, delivered, run, denied or expired, as JSON lines.'),
    maxBytes: int(10485760, 'Size at which audit.log is rotated to audit.log.1 (and .1 to .2, …).', 4096),
    files: int(5, 'Rotated files kept besides audit.log.', 1, 100),
    maxDataBytes: int(65536, 'Largest data field written in full with an accepted message; a larger one is recorded by its size only.', 0),
    exclude: strs(['node.hello'], 'Methods (names or patterns such as "info.*") whose messages are not recorded; by default the heartbeats.'),
  }, 'The audit log.'),
  jobs: obj({
    keep: int(500, 'Ended jobs central keeps in <dataDir>/jobs (outpost jobs); the oldest beyond this are removed. Applied at once.', 1),
  }, 'Jobs: one message to many nodes in batches (outpost send --batch, outpost jobs).'),
  files: obj({
    roots: strs([], 'Absolute directories file.put (outpost cp to this node) may write under; empty: <dataDir>/files only.', { check: absoluteDirs }),
    read: strs([], 'Absolute directories file.get (outpost cp from this node) may read under; empty: <dataDir>/files only.', { check: absoluteDirs }),
    maxBytes: int(1073741824, 'Largest file this node accepts (file.put); larger is refused (file_too_large).', 0),
    chunkBytes: int(262144, 'Bytes of file in each chunk message this node sends (a chunk cut by a dropped link is sent again whole: on a slow link, 65536 loses less).', 4096, 1048576),
    window: int(16, 'Chunks of one transfer in flight (sent, not yet acknowledged) at a time.', 1, 256),
  }, 'File transfer (outpost cp, file.put, file.get): where files may be written and read.'),
  sessions: obj({
    grace: int(30, 'Seconds a shell or tunnel survives a broken link: back within it, nothing typed or printed is lost; past it the session ends and its process group is killed.', 1, 3600),
    idleTimeout: int(3600, 'Seconds without a byte either way after which a shell or tunnel on this node is ended (0: never).', 0),
    maxDuration: int(43200, 'Most seconds a shell or tunnel on this node may last (its end kills the process group).', 1),
    record: bool(false, 'Write each shell session on this node as an asciicast v2 file, <dataDir>/sessions/<id>.cast (replay with `asciinema play`).'),
  }, 'Interactive shells and tunnels (`outpost shell`, `outpost tunnel`): session.open, tunnel.open and tunnel.listen, allowed by methods.allow like any method.'),
  tunnels: obj({
    allow: strs([], 'HOST:PORT targets tunnel.open may connect to from this node, such as "127.0.0.1:8080" ("*" as HOST or PORT matches any). Default: none.', { check: (v: string[]) => { for (const t of v) if (!/^(\[[0-9a-fA-F:.]+\]|[^\s:]+):(\d{1,5}|\*)$/.test(t)) return `has ${JSON.stringify(t)}: each target is HOST:PORT, such as 127.0.0.1:8080`; return undefined } }),
    listen: strs([], 'Ports tunnel.listen (`outpost tunnel NODE -R PORT:HOST:PORT`) may open on this node\'s loopback, 127.0.0.1, such as [9000]: each connection made to one is carried back to the asking node. Default: none.', { numbersOk: true, check: (v: string[]) => { for (const p of v) if (!/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535) return `has ${JSON.stringify(p)}: each entry is a port, 1 to 65535`; return undefined } }),
  }, 'Where tunnels may lead from this node, and which ports reverse tunnels may open on it.'),
}, 'outpost configuration')

export type Config = Infer<typeof SCHEMA>

export function defaultsContext(): DefaultsContext {
  return { hostname: os.hostname(), uid: typeof process.getuid === 'function' ? process.getuid() : 1000, home: os.homedir() }
}

/** The spec at a dotted key path, and whether the path ends inside a free-form map. */
export function specAt(keyPath: readonly string[]): Spec | undefined {
  let spec: Spec = SCHEMA
  for (const [i, key] of keyPath.entries()) {
    if (spec.t === 'object') {
      const next: Spec | undefined = Object.hasOwn(spec.fields, key) ? spec.fields[key] : undefined
      if (next === undefined) return undefined
      spec = next
    } else if (spec.t === 'map' && i === keyPath.length - 1) {
      return { t: 'string', def: '', doc: spec.doc }
    } else {
      return undefined
    }
  }
  return spec
}
