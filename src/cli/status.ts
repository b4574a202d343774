/**
 * `outpost status`: this node as its agent sees it, over the local socket ({"op":"status"},
 * src/node.ts status()): the link to the hub or broker, what waits in the outbox per
 * destination, and the methods running here now. `--json` prints the answer as it is.
 */
import { GLOBAL_HELP, askAgent, load, parse, print, table, type Io } from './common'
import type { NodeStatus } from '../node'

const HELP = `Usage: outpost status [--json] [--socket PATH]

  This node, as its running agent sees it:
    link      transport kind, connected or not, server, since when, the last refusal
    outbox    messages and bytes waiting per destination, and the age of the oldest
    running   methods running here now (id, method, from, started): op.cancel stops one

  --json            one JSON object (the local API's {"op":"status"} answer)
  --socket PATH     the node's API socket (default <dataDir>/outpost.sock)

  Exit: 0, or 2 when no agent runs for this config (nothing to ask).

${GLOBAL_HELP}`

export async function status(io: Io, args: string[], signal?: AbortSignal, now: () => number = Date.now): Promise<number> {
  const { values } = parse(args, { socket: { type: 'string' } }, false)
  if (values.help) return print(io, HELP)
  let s: NodeStatus | undefined
  await askAgent(io, load(io, values, false), values.socket, { op: 'status' }, (obj) => { s = obj as unknown as NodeStatus; return true }, signal)
  if (s === undefined) throw new Error('status: no answer')
  if (values.json) return print(io, JSON.stringify(s))
  return print(io, render(s, now()))
}

/** The human form: a few labelled lines, then the outbox and the runs as tables. */
export function render(s: NodeStatus, now: number): string {
  const c = s.connection
  const since = c.since !== undefined ? ` since ${iso(c.since)} (${age(now - c.since)})` : ''
  const link = c.connected
    ? `${c.kind}, connected to ${c.server ?? '?'}${since}`
    : `${c.kind}, NOT connected${c.server !== undefined ? ` (last server ${c.server})` : ''}${since || ' yet'}`
  const o = s.outbox
  const head: string[][] = [
    ['node', `${s.node} (outpost ${s.version}, pid ${s.pid}, up ${age(now - s.startedAt)})`],
    ['data', s.dataDir],
    ['link', link],
  ]
  if (c.lastError !== undefined) head.push(['refused', `${c.lastError.code}: ${c.lastError.message}`])
  head.push(['outbox', `${o.count} message${o.count === 1 ? '' : 's'}, ${bytes(o.bytes)} of ${bytes(o.maxBytes)}`])
  if (o.diskFull) head.push(['disk', 'FULL: new messages are refused (disk_full) until space is freed; deliveries, replies and receipts are recorded from the reserve'])
  const out = [head.map(([k, v]) => `${k!.padEnd(8)}  ${v}`).join('\n')]
  if (o.destinations.length > 0) {
    out.push(table([['TO', 'MESSAGES', 'BYTES', 'OLDEST'], ...o.destinations.map((d) => [d.node, String(d.count), bytes(d.bytes), `${age(now - d.oldest)} ago`])]))
  }
  out.push(s.runs.length === 0
    ? 'running   nothing'
    : table([['RUNNING', 'METHOD', 'FROM', 'STARTED'], ...s.runs.map((r) => [r.id, r.method, r.from, `${iso(r.started)} (${age(now - r.started)} ago)`])]))
  return out.join('\n\n')
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}

/** 42 s, 5 min, 3 h, 2 d: enough to see at a glance what is stuck. */
function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 120) return `${s} s`
  if (s < 7200) return `${Math.round(s / 60)} min`
  if (s < 172_800) return `${Math.round(s / 3600)} h`
  return `${Math.round(s / 86_400)} d`
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(1)} GiB`
}
