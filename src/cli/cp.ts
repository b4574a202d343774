/**
 * `outpost cp SRC DST` and `outpost transfers`: file transfer through the local agent
 * ({"op":"cp"} and {"op":"transfers"} on its socket; src/files/). A terminal gets a progress
 * bar on standard error; --json prints each progress line and the result as JSON lines.
 */
import path from 'node:path'
import { EXIT, GLOBAL_HELP, askAgent, load, parse, print, table, type Io } from './common'
import { exitCodeFor, OutpostError } from '../errors'
import type { TransferInfo } from '../files/types'
import { parseSide } from '../files/index'

const CP_HELP = `Usage: outpost cp [OPTIONS] SRC DST
       outpost cp --cancel ID

  Copy a file to, from or between nodes, through the outboxes: it resumes after a dropped
  link or a restart of either side, is checked (sha256) and lands whole or not at all.
  SRC and DST are each a local path or NODE:/absolute/path:
    outpost cp ./app.tar ship1:/opt/app/app.tar      push
    outpost cp ship1:/var/log/syslog ./              pull
    outpost cp ship1:/etc/hosts ship2:/tmp/hosts     node to node (ship2 must let ship1 call file.*)
  A DST that is a directory (or ends in /) takes the source's file name.

  --mode MODE       file mode of the target, octal (0644); default: the mode of the file it replaces, else 0644
  --owner U[:G]     owner of the target (the receiving agent must run as root)
  --mkdir           create missing directories of the target (inside files.roots)
  --rate RATE       bytes per second at most for this transfer: 500, 200k, 2m
  --no-wait         return once the transfer is under way (outpost transfers follows it)
  --allow-unknown   copy to or from a node central has not heard of (else node_unknown)
  --json            progress and result as JSON lines
  --cancel ID       cancel transfer ID (outpost transfers lists them) at both ends: the receiver
                    deletes its partial file and leaves the target as it was; the state says cancelled.
                    Run it on the sending or the receiving node.
  --socket PATH     the local node's API socket (default <dataDir>/outpost.sock)

  Writes land only under the receiver's files.roots and reads come only from the sender's
  files.read (default for both: <dataDir>/files).
  Exit: 0 in place, 1 failed (hash mismatch, source changed, cancelled, io), 2 usage or no agent, 3 refused by the
  receiver (file_outside, file_too_large, file_no_space, denied) or not delivered.

${GLOBAL_HELP}`

const TRANSFERS_HELP = `Usage: outpost transfers [--json] [--all] [--socket PATH]

  File transfers this node sends or receives, newest first: id, direction, the other node,
  path, state (hashing, opening, sending, committing, expected, receiving, done, failed,
  cancelled), bytes acknowledged or held of the size, and bytes resent.

  --all             finished ones too (done, failed, cancelled)
  --socket PATH     the node's API socket (default <dataDir>/outpost.sock)

  outpost cp --cancel ID cancels one.

${GLOBAL_HELP}`

/** 200k, 2m, 1g, 500: bytes per second. */
export function parseRate(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmg]?)(?:i?b?)?(?:\/s)?$/i.exec(s.trim())
  if (m === null) throw new OutpostError('usage', `cp: --rate ${JSON.stringify(s)} is not a rate; give bytes per second such as 500, 200k or 2m`)
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g']
  return Math.round(Number(m[1]) * mult)
}

/** A side as the agent takes it: NODE:/path as given, a local path made absolute. */
function side(io: Io, s: string): string {
  if (parseSide(s).node !== undefined) return s
  const abs = path.resolve(io.cwd, s)
  return s.endsWith('/') && !abs.endsWith('/') ? `${abs}/` : abs
}

export async function cp(io: Io, args: string[], signal?: AbortSignal): Promise<number> {
  const { values, positionals } = parse(args, {
    socket: { type: 'string' }, mode: { type: 'string' }, owner: { type: 'string' }, mkdir: { type: 'boolean' },
    rate: { type: 'string' }, 'no-wait': { type: 'boolean' }, cancel: { type: 'string' }, 'allow-unknown': { type: 'boolean' },
  }, true)
  if (values.help) return print(io, CP_HELP)
  if (values.cancel !== undefined) {
    if (positionals.length !== 0) throw new OutpostError('usage', 'cp: --cancel ID takes no paths')
    return cancel(io, values.cancel, values, signal)
  }
  if (positionals.length !== 2) throw new OutpostError('usage', `cp: takes SRC and DST (got ${positionals.length} paths); see outpost cp --help`)
  const remote = (s: string): boolean => /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}:/.test(s)
  if (!remote(positionals[0]!) && !remote(positionals[1]!)) throw new OutpostError('usage', 'cp: one side must be NODE:/path (to copy between local paths, use cp(1))')
  const loaded = load(io, values, false)
  // NODE:/path that names this node is a local path when the other side is remote: on central,
  // `cp ship1:/x central:/y` is a pull (a node-to-node copy into central would need central's
  // methods.allow to let ship1 call file.*, and is refused by default).
  const self = values.socket === undefined ? loaded.config.node.name : undefined
  const own = (s: string): boolean => remote(s) && parseSide(s).node === self
  let [a, b] = positionals as [string, string]
  if (own(b) && remote(a) && !own(a)) b = parseSide(b).path
  else if (own(a) && remote(b) && !own(b)) a = parseSide(a).path
  const req: Record<string, unknown> = { op: 'cp', src: side(io, a), dst: side(io, b), wait: values['no-wait'] !== true }
  if (values['allow-unknown'] === true) req.allowUnknown = true
  if (values.mode !== undefined) {
    if (!/^[0-7]{3,4}$/.test(values.mode)) throw new OutpostError('usage', `cp: --mode ${JSON.stringify(values.mode)} is not an octal mode such as 0644`)
    req.mode = parseInt(values.mode, 8)
  }
  if (values.owner !== undefined) req.owner = values.owner
  if (values.mkdir === true) req.mkdir = true
  if (values.rate !== undefined) req.rate = parseRate(values.rate)
  const tty = values.json !== true && (io.stderr as { isTTY?: boolean }).isTTY === true
  let last: TransferInfo | undefined
  let error: { code: string; message: string } | undefined
  const started = Date.now()
  let printed = ''
  await askAgent(io, loaded, values.socket, req, (obj) => {
    // A transfer that failed ends in {"error"} (below), not in the agent's {"done":true}.
    const failedDone = obj.done === true && last?.error !== undefined
    if (values.json === true && !failedDone) {
      // The same state twice (the transfer's first line, as opened and as first announced) is one line.
      const line = JSON.stringify(obj)
      if (line !== printed) io.stdout.write(line + '\n')
      printed = line
    }
    if (obj.error !== undefined) { error = obj.error as typeof error; return true }
    if (obj.transfer !== undefined) {
      last = obj.transfer as TransferInfo
      if (tty) io.stderr.write(`\r${bar(last, Date.now() - started)}`)
    }
    return obj.done === true
  }, signal)
  if (tty) io.stderr.write('\n')
  const err = error ?? last?.error
  if (err !== undefined) {
    if (values.json !== true) io.stderr.write(`outpost: ${err.message} [${err.code}]\n`)
    else if (error === undefined) io.stdout.write(JSON.stringify({ error: { code: err.code, message: err.message } }) + '\n')
    return exitCodeFor(err.code)
  }
  if (values.json === true || last === undefined) return EXIT.ok
  const t = last
  const what = t.state === 'done'
    ? `${t.direction === 'out' ? `${t.peer}:${t.dest?.endsWith('/') === true ? t.dest + path.basename(t.path) : t.dest ?? ''}` : t.path}: ${t.size} bytes, sha256 ${t.sha256 ?? '?'}`
    : `transfer ${t.id} ${t.state}${values['no-wait'] === true ? ' (outpost transfers follows it)' : ''}`
  return print(io, what)
}

async function cancel(io: Io, id: string, values: Parameters<typeof load>[1] & { socket?: string; json?: boolean }, signal?: AbortSignal): Promise<number> {
  let t: TransferInfo | undefined
  let error: { code: string; message: string } | undefined
  await askAgent(io, load(io, values, false), values.socket, { op: 'cp.cancel', id }, (obj) => {
    if (obj.error !== undefined) error = obj.error as typeof error
    else t = obj.transfer as TransferInfo
    return true
  }, signal)
  if (error !== undefined) {
    if (values.json === true) io.stdout.write(JSON.stringify({ error }) + '\n')
    else io.stderr.write(`outpost: ${error.message} [${error.code}]\n`)
    return exitCodeFor(error.code)
  }
  if (values.json === true) return print(io, JSON.stringify({ transfer: t }))
  return print(io, `transfer ${id} cancelled${t !== undefined ? ` (${t.direction === 'out' ? `to ${t.peer}` : `from ${t.peer}`}, ${t.bytes} of ${t.size} bytes had gone)` : ''}`)
}

/** `[#####.....]  12.0 MiB / 50.0 MiB  1.2 MiB/s  ETA 23 s` */
export function bar(t: TransferInfo, ms: number): string {
  const width = 24
  const frac = t.size > 0 ? Math.min(1, t.bytes / t.size) : t.state === 'done' ? 1 : 0
  const filled = Math.round(frac * width)
  const rate = ms > 0 ? t.bytes / (ms / 1000) : 0
  const eta = rate > 0 && t.size > t.bytes ? `ETA ${Math.ceil((t.size - t.bytes) / rate)} s` : ''
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${mib(t.bytes)} / ${mib(t.size)}  ${mib(rate)}/s  ${eta}  ${t.state}   `
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

export async function transfers(io: Io, args: string[], signal?: AbortSignal): Promise<number> {
  const { values } = parse(args, { socket: { type: 'string' }, all: { type: 'boolean' } }, false)
  if (values.help) return print(io, TRANSFERS_HELP)
  let list: TransferInfo[] = []
  await askAgent(io, load(io, values, false), values.socket, { op: 'transfers' }, (obj) => { list = (obj.transfers ?? []) as TransferInfo[]; return true }, signal)
  if (values.all !== true) list = list.filter((t) => t.state !== 'done' && t.state !== 'failed' && t.state !== 'cancelled')
  if (values.json === true) return print(io, JSON.stringify(list))
  if (list.length === 0) return print(io, values.all === true ? 'no transfers' : 'no transfers in progress (--all shows finished ones)')
  return print(io, table([['ID', 'DIR', 'PEER', 'PATH', 'STATE', 'BYTES', 'RESENT'],
    ...list.map((t) => [t.id, t.direction, t.peer, t.direction === 'out' ? `${t.path} -> ${t.dest ?? ''}` : t.path, t.state + (t.error ? ` (${t.error.code})` : ''), `${t.bytes}/${t.size}`, String(t.resent)])]))
}
