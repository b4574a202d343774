/**
 * Jobs: the jobs central keeps (#/jobs, newest first) and one job's matrix (#/jobs/ID): each
 * node's state, exit code, error and output, the counts, and Cancel. Live from `event: job` on
 * the page's event stream; fetched again every few seconds while the stream is down (it has no
 * replay), and now and then while it is up, should a change have slipped past a reconnect.
 * A node's output shows as its replies come on the stream (a cli.stream line by line); the
 * job's record keeps only the final reply's.
 */
import { useEffect, useRef, useState } from 'preact/hooks'
import { api, NODE_STATES, type Job, type JobNode, type JobEvent, type JobSummary, type NodeState, type Reply } from '../api'
import { isLive, onJob, onReply, repliesOf } from '../events'
import { ago, errorText, href, iso, usePoll } from '../util'

/**
 * A fetch that runs at most once at a time and starts at most once every `gapMs`; asked again
 * meanwhile, it runs once more after. A job of a thousand nodes sends a thousand changes: the
 * page fetches a few times a second, not a thousand times.
 */
function coalesced(fn: () => Promise<void>, gapMs: number): () => void {
  let busy = false
  let again = false
  let lastStart = 0
  const go = async (): Promise<void> => {
    if (busy) { again = true; return }
    busy = true
    try {
      do {
        again = false
        const wait = lastStart + gapMs - Date.now()
        if (wait > 0) await new Promise((r) => setTimeout(r, wait))
        lastStart = Date.now()
        await fn()
      } while (again)
    } finally {
      busy = false
    }
  }
  return () => { void go() }
}

/** A change from the stream applied at once (the fetch it triggers brings exit codes and output). */
function patched(job: Job, ev: JobEvent): Job {
  const next: Job = { ...job, status: ev.status as Job['status'], counts: ev.counts }
  if (ev.reason !== undefined) next.reason = ev.reason
  if (ev.node !== undefined) {
    const { name, state } = ev.node
    next.nodes = job.nodes.map((n) => (n.name === name ? { ...n, state } : n))
  }
  return next
}

/** How often a running job is fetched when the live stream is down, and when it is up (ms). */
const FETCH_DOWN_MS = 2000
const FETCH_UP_MS = 10_000

export function Jobs({ id }: { id: string | undefined }) {
  return id === undefined ? <JobList /> : (
    <section aria-labelledby="job-h">
      <div class="bar">
        <h1 id="job-h">Job <span class="mono small">{id}</span></h1>
        <a href={href('jobs')}>All jobs</a>
      </div>
      <JobMatrix id={id} />
    </section>
  )
}

function JobList() {
  const [jobs, setJobs] = useState<JobSummary[] | undefined>()
  const [filter, setFilter] = useState('')
  const [error, setError] = useState('')
  const load = async (): Promise<void> => {
    try {
      setJobs((await api<{ jobs: JobSummary[] }>('GET', '/v1/jobs')).jobs)
      setError('')
    } catch (err) {
      setError(errorText(err))
    }
  }
  const [refresh] = useState(() => coalesced(load, 1000))
  useEffect(() => onJob(refresh), [])
  usePoll(load, 5000, [])
  const f = filter.trim().toLowerCase()
  const shown = (jobs ?? []).filter((j) => f === '' || `${j.id} ${j.method} ${j.targets.join(' ')} ${j.status} ${j.origin ?? ''}`.toLowerCase().includes(f))
  const running = (jobs ?? []).filter((j) => j.status === 'running').length
  return (
    <section aria-labelledby="jobs-h">
      <div class="bar">
        <h1 id="jobs-h">Jobs</h1>
        {jobs !== undefined && <p class="summary" aria-live="polite"><b>{jobs.length}</b> kept, <b>{running}</b> running</p>}
        <a class="button secondary" href={href('run')}>New run</a>
      </div>
      <div class="filter">
        <label for="jfilter">Filter</label>
        <input id="jfilter" data-search placeholder="id, method, target or status" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
      </div>
      {error !== '' && <p role="alert" class="error">{error}</p>}
      {jobs === undefined ? <p class="muted">Loading...</p> : shown.length === 0 ? <p class="muted">{jobs.length === 0 ? 'No jobs yet: a run with rollout options on the Run view makes one.' : 'Nothing matches.'}</p> : (
        <table class="grid jobs">
          <thead><tr><th>Job</th><th>Method</th><th>Targets</th><th>Status</th><th>Nodes</th><th>Age</th></tr></thead>
          <tbody>
            {shown.map((j) => (
              <tr key={j.id} data-job={j.id}>
                <td data-label="Job"><a class="mono" href={href('jobs', j.id)}>{j.id}</a></td>
                <td data-label="Method" class="mono">{j.method}</td>
                <td data-label="Targets" class="mono">{j.targets.join(' + ')}{j.origin !== undefined && <span class="muted small"> ({j.origin})</span>}</td>
                <td data-label="Status"><StatusBadge status={j.status} /></td>
                <td data-label="Nodes"><Counts counts={j.counts} total={j.total} /></td>
                <td data-label="Age"><time dateTime={iso(j.createdAt)} title={iso(j.createdAt)}>{ago(j.createdAt)}</time></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  )
}

/** One job, followed live: its header, counts, Cancel, and a row per node. Used by Jobs and Run. */
export function JobMatrix({ id, compact = false }: { id: string; compact?: boolean }) {
  const [job, setJob] = useState<Job | undefined>()
  const [error, setError] = useState('')
  const [cancelling, setCancelling] = useState('')
  const [, setTick] = useState(0)
  const [only, setOnly] = useState<NodeState | ''>('')
  const messageIds = useRef(new Set<string>())
  const fetchedAt = useRef(0)
  const ended = useRef(false)
  const load = async (): Promise<void> => {
    fetchedAt.current = Date.now()
    try {
      const j = (await api<{ job: Job }>('GET', `/v1/jobs/${encodeURIComponent(id)}`)).job
      ended.current = j.endedAt !== undefined
      messageIds.current = new Set(j.nodes.map((n) => n.id))
      setJob(j)
      setError('')
    } catch (err) {
      setError(errorText(err))
    }
  }
  const [refresh] = useState(() => coalesced(load, 500))
  useEffect(() => onJob((ev) => {
    if (ev.id !== id) return
    setJob((j) => (j === undefined ? j : patched(j, ev)))
    refresh()
  }), [id])
  useEffect(() => onReply((r) => { if (messageIds.current.has(r.inReplyTo ?? '')) setTick((t) => t + 1) }), [id])
  usePoll(async () => {
    if (fetchedAt.current !== 0 && ended.current) return
    if (fetchedAt.current === 0 || Date.now() - fetchedAt.current >= (isLive() ? FETCH_UP_MS : FETCH_DOWN_MS)) await load()
  }, 1000, [id])
  const cancel = async (): Promise<void> => {
    setCancelling('cancelling...')
    try {
      const j = (await api<{ job: Job }>('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`)).job
      ended.current = j.endedAt !== undefined
      setJob(j)
      setCancelling('')
    } catch (err) {
      setCancelling(`cancel failed: ${errorText(err)}`)
    }
  }
  if (job === undefined) return error !== '' ? <p role="alert" class="error">{error}</p> : <p class="muted">Loading job...</p>
  const args = job.message.methodArgs ?? []
  const opts = options(job)
  return (
    <div class="job" data-job={job.id} data-status={job.status}>
      <div class="bar job-head">
        <StatusBadge status={job.status} />
        {compact ? <a class="mono small" href={href('jobs', job.id)}>job {job.id}</a> : <span><span class="mono">{job.method}</span> {args.length > 0 && <span class="mono muted">{args.join(' ')}</span>}</span>}
        <span class="small" data-counts><Counts counts={job.counts} total={job.total} picked={only} onPick={setOnly} /></span>
        {job.status === 'running' && (cancelling === 'cancelling...' ? <span class="muted small">{cancelling}</span>
          : <button type="button" class="danger small" data-cancel-job onClick={cancel} title="Skip the nodes that have not started">Cancel job</button>)}
        {cancelling !== '' && cancelling !== 'cancelling...' && <span role="alert" class="error small">{cancelling}</span>}
      </div>
      <p class="muted small job-facts">
        to <span class="mono">{job.targets.join(' + ')}</span>{opts !== '' && <>, {opts}</>}
        {job.origin !== undefined && <>, made by {job.origin}</>}
        ; created <time dateTime={iso(job.createdAt)} title={iso(job.createdAt)}>{ago(job.createdAt)}</time>
        {job.endedAt !== undefined && <>, ended <time dateTime={iso(job.endedAt)} title={iso(job.endedAt)}>{ago(job.endedAt)}</time></>}
      </p>
      {job.reason !== undefined && <p class="note small" data-reason>{job.status === 'done' ? '' : `Job ${job.status}: `}{job.reason}</p>}
      {error !== '' && <p role="alert" class="error small">{error}</p>}
      {only !== '' && <p class="small muted" role="status">Only the nodes {only.replace('_', ' ')}: <button type="button" class="secondary small" onClick={() => setOnly('')}>show all {job.total}</button></p>}
      <table class="grid matrix">
        <thead><tr><th>Node</th><th>State</th><th>Exit</th><th>Detail</th><th>Output</th></tr></thead>
        <tbody>
          {job.nodes.filter((n) => only === '' || n.state === only).map((n) => <NodeRow key={n.name} n={n} />)}
        </tbody>
      </table>
    </div>
  )
}

const FINAL_STATES: ReadonlySet<NodeState> = new Set(['ok', 'failed', 'expired', 'not_selected', 'skipped'])

/**
 * A node's output: its replies as they came on the live stream while it runs, or once they hold
 * its final reply; else (the page came later, or the stream was down) what the job kept.
 */
function outputOf(n: JobNode): { live: Reply[] } | { kept: string } | undefined {
  const live = [...repliesOf(n.id)].sort((x, y) => (x.seq ?? 0) - (y.seq ?? 0))
  const whole = live.some((r) => r.final === true || r.error !== undefined)
  if (live.some((r) => (r.data ?? '') !== '' || (r.stderr ?? '') !== '') && (whole || !FINAL_STATES.has(n.state))) return { live }
  return n.output !== undefined && n.output !== '' ? { kept: n.output } : undefined
}

function NodeRow({ n }: { n: JobNode }) {
  const out = outputOf(n)
  const detail = n.error !== undefined ? `${n.error.message} [${n.error.code}]` : n.reason ?? ''
  return (
    <tr data-node={n.name} data-state={n.state}>
      <td data-label="Node"><a href={href('node', n.name)}>{n.name}</a>{n.selector !== undefined && n.selector !== n.name && <span class="muted small"> by {n.selector}</span>}</td>
      <td data-label="State"><StateBadge state={n.state} /></td>
      <td data-label="Exit" class="mono" data-exit>{n.exitCode ?? '-'}</td>
      <td data-label="Detail" class={`message ${n.error !== undefined ? 'error' : ''}`} data-detail>{detail === '' ? '-' : detail}</td>
      <td data-label="Output" class="out-cell">{out === undefined ? <span class="muted">-</span> : 'kept' in out ? <pre class="output short">{out.kept}</pre> : (
        <pre class="output short" aria-live="polite">
          {out.live.map((r) => <>{(r.data ?? '') !== '' && <span key={`d${r.id}`}>{r.data}</span>}{(r.stderr ?? '') !== '' && <span class="stderr" key={`e${r.id}`}>{r.stderr}</span>}</>)}
        </pre>
      )}</td>
    </tr>
  )
}

/** "batch 2, max-errors 1, canary 1, ttl 60 s", as `outpost job` says it. */
function options(job: Job): string {
  const o = job.options
  return [o.batch !== undefined ? `batch ${o.batch}` : '', o.maxErrors !== undefined ? `max-errors ${o.maxErrors}` : '',
    o.canary !== undefined ? `canary ${o.canary}` : '', o.ttl !== undefined ? `ttl ${o.ttl} s` : ''].filter(Boolean).join(', ')
}

const STATE_CLASS: Record<NodeState, string> = { ok: 'ok', failed: 'bad', expired: 'bad', pending: 'run', delivered: 'run', running: 'run', not_selected: 'idle', skipped: 'idle' }

function StateBadge({ state }: { state: NodeState }) {
  return <span class={`badge ${STATE_CLASS[state]}`} data-state={state}>{state.replace('_', ' ')}</span>
}

function StatusBadge({ status }: { status: string }) {
  return <span class={`badge ${status === 'done' ? 'ok' : status === 'running' ? 'run' : 'bad'}`} data-status={status}>{status}</span>
}

/**
 * "ok 3 · failed 1 · skipped 2 of 6", only the states some node is in. With `onPick` each is a
 * toggle that shows only the nodes in that state (the failed of a few hundred, say).
 */
function Counts({ counts, total, picked, onPick }: { counts: Record<NodeState, number>; total: number; picked?: NodeState | ''; onPick?: (s: NodeState | '') => void }) {
  const shown = NODE_STATES.filter((s) => (counts[s] ?? 0) > 0)
  return (
    <span class="counts">
      {shown.map((s) => onPick === undefined
        ? <span key={s} class={`count ${STATE_CLASS[s]}`} data-count={s}>{s.replace('_', ' ')} <b>{counts[s]}</b></span>
        : <button type="button" key={s} class={`count ${STATE_CLASS[s]}`} data-count={s} aria-pressed={picked === s} title={picked === s ? 'show every node' : `show only the nodes ${s.replace('_', ' ')}`}
          onClick={() => onPick(picked === s ? '' : s)}>{s.replace('_', ' ')} <b>{counts[s]}</b></button>)}
      <span class="muted"> of {total}</span>
    </span>
  )
}
