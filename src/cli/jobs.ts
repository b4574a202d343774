/**
 * `outpost jobs`, `outpost job ID` and `outpost send … --batch/--max-errors/--canary/--job`:
 * jobs kept by the agent (src/jobs/), asked over its socket.
 *
 *   send --job …   ─ {"op":"job.create","watch":true} ─▶ {"job"} at each change … {"done"}
 *   jobs           ─ {"op":"jobs"} ─▶ {"jobs":[…]}
 *   job ID         ─ {"op":"job","id","watch"?} ─▶ {"job"} …;  --cancel: {"op":"job.cancel"}
 */
import { EXIT, GLOBAL_HELP, askAgent, load, parse, print, table, type Io, type Loaded } from './common'
import { ERROR_CODES, OutpostError, type ErrorCode } from '../errors'
import type { JobNode, JobRecord, NodeState } from '../jobs/store'

type Shown = JobRecord & { counts: Record<NodeState, number>; total: number; method: string }

/** The flags that make a send a job. */
export const JOB_FLAGS = {
  batch: { type: 'string' }, 'max-errors': { type: 'string' }, canary: { type: 'string' }, job: { type: 'boolean' },
} as const

export const JOB_HELP = `  --batch N|P%        make it a job: at most N nodes (or P% of them) at once
  --max-errors N      a job: start no more nodes once N failed (or expired)
  --canary N          a job: N nodes first, the rest only if each of them is ok
  --job               a job without those (outpost jobs, outpost job ID follow it);
                      Ctrl-C stops following a job, not the job (outpost job ID --cancel)`

export function isJob(values: { batch?: string | undefined; 'max-errors'?: string | undefined; canary?: string | undefined; job?: boolean | undefined }): boolean {
  return values.batch !== undefined || values['max-errors'] !== undefined || values.canary !== undefined || values.job === true
}

/** Send `draft` as a job and follow it to its end (or, with `wait` false, print its id). */
export async function sendJob(io: Io, loaded: Loaded, socket: string | undefined, values: { batch?: string | undefined; 'max-errors'?: string | undefined; canary?: string | undefined; 'allow-unknown'?: boolean | undefined; json?: boolean | undefined }, draft: Record<string, unknown>, wait: boolean, signal?: AbortSignal): Promise<number> {
  const whole = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined
    if (!/^[1-9]\d*$/.test(v)) throw new OutpostError('usage', `--${name} must be a whole number of at least 1, got ${JSON.stringify(v)}`)
    return Number(v)
  }
  if (values.batch !== undefined && !/^[1-9]\d*%?$/.test(values.batch)) throw new OutpostError('usage', `--batch must be a number of nodes (5) or a percentage of them (10%), got ${JSON.stringify(values.batch)}`)
  const options: Record<string, unknown> = {}
  if (values.batch !== undefined) options.batch = values.batch
  const maxErrors = whole('max-errors', values['max-errors'])
  const canary = whole('canary', values.canary)
  if (maxErrors !== undefined) options.maxErrors = maxErrors
  if (canary !== undefined) options.canary = canary
  if (typeof draft.ttl === 'number') options.ttl = draft.ttl
  const request = { op: 'job.create', message: draft, options, watch: wait, ...(values['allow-unknown'] === true ? { allowUnknown: true } : {}) }
  return follow(io, loaded, socket, request, values.json === true, wait, signal)
}

/** `outpost jobs`. */
export const jobs = async (io: Io, args: string[], signal?: AbortSignal): Promise<number> => {
  const { values } = parse(args, { socket: { type: 'string' } }, false)
  if (values.help) return print(io, `Usage: outpost jobs [--json] [--socket PATH]\n\n  The jobs this node keeps (sends to a selector or to several nodes made with --batch,\n  --max-errors, --canary or --job), newest first, with how many nodes are in each state.\n  --socket PATH names the node's API socket (default <dataDir>/outpost.sock).\n\n${GLOBAL_HELP}`)
  let list: Omit<Shown, 'nodes' | 'message'>[] = []
  await askAgent(io, load(io, values, false), values.socket, { op: 'jobs' }, (obj) => { refused(obj); list = (obj.jobs ?? []) as typeof list; return true }, signal)
  if (values.json) return print(io, JSON.stringify(list))
  const rows = [['ID', 'CREATED', 'METHOD', 'TO', 'STATUS', 'NODES', 'COUNTS'], ...list.map((j) => [j.id, new Date(j.createdAt).toISOString(), j.method, j.targets.join(' '), j.status, String(j.total), countsText(j.counts)])]
  return print(io, list.length === 0 ? 'no jobs' : table(rows))
}

/** `outpost job ID`. */
export const job = async (io: Io, args: string[], signal?: AbortSignal): Promise<number> => {
  const { values, positionals } = parse(args, { socket: { type: 'string' }, watch: { type: 'boolean' }, cancel: { type: 'boolean' } }, true)
  const help = `Usage: outpost job ID [--watch] [--cancel] [--json] [--socket PATH]\n\n  One job as a matrix: each node's state (pending, delivered, running, ok, failed,\n  expired, not_selected, skipped, cancelled), exit status or error, and the counts.\n  --watch    follow it live until it ends (exit 0 all ok, 1 a node failed or it stopped,\n             3 none failed but some were not delivered or not selected)\n  --cancel   stop what has not started: nodes waiting for their turn are skipped, those\n             whose message was never sent yet are withdrawn (cancelled)\n  --json     the job as JSON (with --watch: a line at each change)\n  --socket PATH  the node's API socket (default <dataDir>/outpost.sock)\n\n${GLOBAL_HELP}`
  if (values.help) return print(io, help)
  const id = positionals[0]
  if (id === undefined || positionals.length > 1) throw new OutpostError('usage', 'job: give one job id (outpost jobs lists them)')
  const loaded = load(io, values, false)
  if (values.cancel === true) return follow(io, loaded, values.socket, { op: 'job.cancel', id, by: 'outpost job --cancel' }, values.json === true, false, signal)
  return follow(io, loaded, values.socket, { op: 'job', id, watch: values.watch === true }, values.json === true, values.watch === true, signal)
}

async function follow(io: Io, loaded: Loaded, socket: string | undefined, request: Record<string, unknown>, json: boolean, watch: boolean, signal?: AbortSignal): Promise<number> {
  let last: Shown | undefined
  let shownEnded = new Set<string>()
  await askAgent(io, loaded, socket, request, (obj) => {
    refused(obj)
    if (obj.job !== undefined) {
      const j = obj.job as Shown
      if (json) io.stdout.write(JSON.stringify(j) + '\n')
      else if (watch) shownEnded = progress(io, j, last === undefined, shownEnded)
      last = j
      return !watch
    }
    return obj.done === true
  }, signal)
  if (last === undefined) return EXIT.ok
  if (request.op === 'job.create' && !watch) {
    if (!json) print(io, `${last.id}\n`)
    return EXIT.ok
  }
  if (!json) print(io, watch ? summary(last) : matrix(last))
  return watch || request.op === 'job.create' ? outcome(last) : EXIT.ok
}

/** Watching: the job's id first, then a line as each node ends. */
function progress(io: Io, j: Shown, first: boolean, shown: Set<string>): Set<string> {
  if (first) io.stderr.write(`job ${j.id}: ${j.message.method} to ${j.total} node${j.total === 1 ? '' : 's'} (${j.targets.join(' ')})${optionsText(j)}\n`)
  for (const n of j.nodes) {
    if (!['ok', 'failed', 'expired', 'not_selected', 'skipped', 'cancelled'].includes(n.state) || shown.has(n.name)) continue
    shown.add(n.name)
    io.stdout.write(`${n.name}  ${n.state}${detail(n)}\n`)
  }
  return shown
}

function optionsText(j: Shown): string {
  const o = j.options
  const parts = [o.batch !== undefined ? `batch ${o.batch}` : '', o.maxErrors !== undefined ? `max-errors ${o.maxErrors}` : '', o.canary !== undefined ? `canary ${o.canary}` : '', o.ttl !== undefined ? `ttl ${o.ttl} s` : ''].filter(Boolean)
  return parts.length > 0 ? `, ${parts.join(', ')}` : ''
}

function detail(n: JobNode): string {
  if (n.error !== undefined) return `  ${n.error.code}: ${n.error.message}`
  if (n.exitCode !== undefined && n.exitCode !== 0) return `  exit ${n.exitCode}`
  if (n.reason !== undefined) return `  ${n.reason}`
  return ''
}

function matrix(j: Shown): string {
  const head = `job ${j.id}  ${j.status}${j.reason !== undefined ? ` (${j.reason})` : ''}\n${j.message.method} ${(j.message.methodArgs ?? []).join(' ')}  to ${j.targets.join(' ')}${optionsText(j)}\ncreated ${new Date(j.createdAt).toISOString()}${j.endedAt !== undefined ? `, ended ${new Date(j.endedAt).toISOString()}` : ''}\n\n`
  const rows = [['NODE', 'STATE', 'EXIT', 'DETAIL'], ...j.nodes.map((n) => [n.name, n.state, n.exitCode !== undefined ? String(n.exitCode) : '-', detail(n).trim() || '-'])]
  return `${head}${table(rows)}\n\n${summary(j)}`
}

function summary(j: Shown): string {
  return `${j.total} node${j.total === 1 ? '' : 's'}: ${countsText(j.counts)}${j.endedAt === undefined ? ` (job ${j.status})` : ` (job ${j.status}${j.reason !== undefined ? `: ${j.reason}` : ''})`}`
}

function countsText(c: Record<NodeState, number>): string {
  return Object.entries(c).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ') || '-'
}

/** 0 all ok; 1 a node failed or the job stopped; 3 none failed, some not delivered or not selected. */
function outcome(j: Shown): number {
  if (j.counts.failed > 0 || j.status === 'stopped') return EXIT.remoteFailed
  if (j.counts.expired > 0 || j.counts.not_selected > 0) return EXIT.notDelivered
  if (j.status === 'cancelled' || j.counts.ok < j.total) return EXIT.remoteFailed
  return EXIT.ok
}

function refused(obj: Record<string, unknown>): void {
  if (obj.error === undefined) return
  const e = obj.error as { code: string; message: string }
  throw new OutpostError(Object.hasOwn(ERROR_CODES, e.code) ? (e.code as ErrorCode) : 'api_bad_request', e.message)
}
