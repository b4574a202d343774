import { useEffect, useState } from 'preact/hooks'
import { api, send, type Accepted, type Job, type JobOptions, type NodeInfo, type Reply } from '../api'
import { mergeReplies, onReply, repliesOf } from '../events'
import { errorText, href, usePoll } from '../util'
import { JobMatrix } from './Jobs'

const METHODS = ['cli.run', 'cli.stream', 'node.ping', 'info.system', 'info.os', 'info.kernel', 'info.users', 'file.tail', 'http.get', 'op.list', 'config.get']

/** The rollout options as typed; any of them given makes the run a job (POST /v1/jobs). */
interface Rollout { batch: string; maxErrors: string; canary: string; ttl: string }
const NO_ROLLOUT: Rollout = { batch: '', maxErrors: '', canary: '', ttl: '' }

/** The job options of a rollout form, or undefined when none is given (a plain run). */
function jobOptions(r: Rollout): JobOptions | undefined {
  const o: JobOptions = {}
  const num = (v: string): number => (/^\s*\d+\s*$/.test(v) ? Number(v) : NaN)
  if (r.batch.trim() !== '') o.batch = r.batch.trim()
  if (r.maxErrors.trim() !== '') o.maxErrors = num(r.maxErrors)
  if (r.canary.trim() !== '') o.canary = num(r.canary)
  if (r.ttl.trim() !== '') o.ttl = num(r.ttl)
  return Object.keys(o).length > 0 ? o : undefined
}

interface RunRecord {
  key: number
  method: string
  args: string[]
  targets: string[]
  /** The form as it was, for "Again". */
  form: { selector: string; nodes: string[]; args: string; timeout: string; rollout: Rollout }
  /** Sent as a job (rollout options given): its id; `accepted` is then empty. */
  job?: string
  startedAt: number
  accepted: Accepted[]
  cancelling: Record<string, string>
}

/** Runs of this page's life, newest first: they survive moving between views. */
const runs: RunRecord[] = []
let nextKey = 1
/** Requests looked up at most this often each (ms), and this many per round. */
const LOOKUP_EVERY_MS = 3000
const LOOKUPS_PER_ROUND = 20
const lookedUp = new Map<string, number>()

/**
 * The live stream has no replay: a reply that came while it was down would never show. Requests
 * still running are looked up now and then (quiet ones first) and what is missing filled in.
 */
async function backfill(): Promise<void> {
  const now = Date.now()
  const due = runs.flatMap((r) => r.accepted)
    .filter((a) => outcome(repliesOf(a.id)).state === 'running' && now - (lookedUp.get(a.id) ?? 0) >= LOOKUP_EVERY_MS)
    .sort((x, y) => (lookedUp.get(x.id) ?? 0) - (lookedUp.get(y.id) ?? 0))
    .slice(0, LOOKUPS_PER_ROUND)
  await Promise.all(due.map(async (a) => {
    lookedUp.set(a.id, now)
    const m = await api<{ replies?: Reply[] }>('GET', `/v1/messages/${a.id}`).catch(() => undefined)
    if (m?.replies !== undefined) mergeReplies(m.replies)
  }))
}

export function Run({ query }: { query: URLSearchParams }) {
  const [selector, setSelector] = useState(query.get('selector') ?? '')
  const [picked, setPicked] = useState<Set<string>>(new Set((query.get('nodes') ?? '').split(',').filter(Boolean)))
  const [method, setMethod] = useState('cli.run')
  const [args, setArgs] = useState('')
  const [timeout, setTimeoutS] = useState('')
  const [rollout, setRollout] = useState<Rollout>(NO_ROLLOUT)
  const [nodes, setNodes] = useState<NodeInfo[]>([])
  const [error, setError] = useState('')
  const [matches, setMatches] = useState<{ names: string[] } | { error: string } | undefined>()
  const [, setTick] = useState(0)
  // What the selector matches now, shown before anything is sent (a typo could reach the whole fleet).
  useEffect(() => {
    if (selector.trim() === '') { setMatches(undefined); return }
    const timer = window.setTimeout(() => {
      api<{ nodes: NodeInfo[] }>('GET', `/v1/nodes?selector=${encodeURIComponent(selector.trim())}`)
        .then((r) => setMatches({ names: r.nodes.map((n) => n.name) }), (err) => setMatches({ error: errorText(err) }))
    }, 250)
    return () => window.clearTimeout(timer)
  }, [selector])
  useEffect(() => onReply(() => setTick((t) => t + 1)), [])
  usePoll(async () => setNodes((await api<{ nodes: NodeInfo[] }>('GET', '/v1/nodes')).nodes), 5000, [])
  usePoll(backfill, 1000, [])
  const toggle = (name: string): void => {
    const next = new Set(picked)
    if (!next.delete(name)) next.add(name)
    setPicked(next)
  }
  const submit = async (ev: Event): Promise<void> => {
    ev.preventDefault()
    setError('')
    const targets = [...(selector.trim() !== '' ? [selector.trim()] : []), ...picked]
    if (targets.length === 0) { setError('Pick nodes or give a selector.'); return }
    const methodArgs = args.split('\n').map((a) => a.replace(/\r$/, '')).filter((a) => a.trim() !== '')
    const msg: Record<string, unknown> = { toNodes: targets, method: method.trim(), ...(methodArgs.length > 0 ? { methodArgs } : {}) }
    if (timeout.trim() !== '') msg.methodTimeout = Number(timeout)
    const form = { selector, nodes: [...picked], args, timeout, rollout }
    const options = jobOptions(rollout)
    try {
      if (options !== undefined) {
        for (const [k, v] of Object.entries(options)) if (Number.isNaN(v)) throw new Error(`${k === 'maxErrors' ? 'Max errors' : k === 'canary' ? 'Canary' : 'TTL'} must be a whole number.`)
        const { job } = await api<{ job: Job }>('POST', '/v1/jobs', { message: msg, options })
        runs.unshift({ key: nextKey++, method: method.trim(), args: methodArgs, targets, form, startedAt: Date.now(), accepted: [], cancelling: {}, job: job.id })
        if (runs.length > 20) runs.pop()
        setTick((t) => t + 1)
        return
      }
      const r = await send(msg)
      runs.unshift({ key: nextKey++, method: method.trim(), args: methodArgs, targets, form, startedAt: Date.now(), accepted: r.accepted, cancelling: {} })
      for (const a of r.accepted) lookedUp.set(a.id, Date.now())
      if (runs.length > 20) runs.pop()
      setTick((t) => t + 1)
    } catch (err) {
      setError(errorText(err))
    }
  }
  const cancel = async (run: RunRecord, a: Accepted): Promise<void> => {
    run.cancelling[a.id] = 'cancelling...'
    setTick((t) => t + 1)
    try {
      await send({ toNode: a.toNode, method: 'op.cancel', methodArgs: [a.id] })
    } catch (err) {
      run.cancelling[a.id] = `cancel failed: ${errorText(err)}`
    }
    setTick((t) => t + 1)
  }
  // Back into the form, to run it again as it is or changed.
  const again = (run: RunRecord): void => {
    setSelector(run.form.selector)
    setPicked(new Set(run.form.nodes))
    setMethod(run.method)
    setArgs(run.form.args)
    setTimeoutS(run.form.timeout)
    setRollout(run.form.rollout)
    document.getElementById('run-button')?.focus()
  }
  return (
    <section aria-labelledby="run-h">
      <div class="bar"><h1 id="run-h">Run</h1></div>
      <form class="card run-form" onSubmit={submit}>
        <div class="field f-sel">
          <label for="run-selector">Selector</label>
          <input id="run-selector" placeholder="role=db  or  ship*  (optional)" value={selector} aria-describedby="run-matches" onInput={(e) => setSelector((e.target as HTMLInputElement).value)} />
          <span id="run-matches" class="small" data-matches aria-live="polite">
            {matches === undefined ? '' : 'error' in matches ? <span class="error">{matches.error}</span>
              : `matches ${matches.names.length} node${matches.names.length === 1 ? '' : 's'}${matches.names.length > 0 ? `: ${matches.names.slice(0, 8).join(', ')}${matches.names.length > 8 ? ', ...' : ''}` : ''}`}
          </span>
        </div>
        <div class="field f-method">
          <label for="method">Method</label>
          <input id="method" list="methods" value={method} required onInput={(e) => setMethod((e.target as HTMLInputElement).value)} />
          <datalist id="methods">{METHODS.map((m) => <option value={m} key={m} />)}</datalist>
        </div>
        <div class="field f-timeout">
          <label for="timeout">Timeout (s)</label>
          <input id="timeout" type="number" min="1" placeholder="node's default" value={timeout} onInput={(e) => setTimeoutS((e.target as HTMLInputElement).value)} />
        </div>
        <fieldset class="field f-nodes">
          <legend>Nodes</legend>
          <div class="picks">
            {nodes.map((n) => (
              <label key={n.name} class={`pick ${n.online ? '' : 'offline'}`}>
                <input type="checkbox" name="node" value={n.name} checked={picked.has(n.name)} onChange={() => toggle(n.name)} /> {n.name}
              </label>
            ))}
          </div>
        </fieldset>
        <div class="field f-args">
          <label for="args">Arguments <span class="muted small">one per line; for cli.run and cli.stream one line is a shell command</span></label>
          <textarea id="args" rows={2} value={args} onInput={(e) => setArgs((e.target as HTMLTextAreaElement).value)} />
        </div>
        <fieldset class="field f-rollout">
          <legend>Rollout <span class="muted small">optional; any of these makes the run a job (see Jobs)</span></legend>
          <div class="rollout">
            <RolloutField id="batch" label="Batch" hint="at most N (or N%) at once" placeholder="5 or 10%" value={rollout.batch} onInput={(v) => setRollout({ ...rollout, batch: v })} />
            <RolloutField id="max-errors" label="Max errors" hint="stop starting nodes after N failed" placeholder="N" value={rollout.maxErrors} onInput={(v) => setRollout({ ...rollout, maxErrors: v })} numeric />
            <RolloutField id="canary" label="Canary" hint="the first N go first; the rest only if all are ok" placeholder="N" value={rollout.canary} onInput={(v) => setRollout({ ...rollout, canary: v })} numeric />
            <RolloutField id="ttl" label="TTL (s)" hint="how long a message waits for an offline node" placeholder="s" value={rollout.ttl} onInput={(v) => setRollout({ ...rollout, ttl: v })} numeric />
          </div>
        </fieldset>
        <div class="actions f-go"><button type="submit" id="run-button">Run</button></div>
        {error !== '' && <p role="alert" class="error">{error}</p>}
      </form>
      {runs.map((run) => <RunView key={run.key} run={run} onCancel={(a) => cancel(run, a)} onAgain={() => again(run)} />)}
    </section>
  )
}

function RolloutField({ id, label, hint, placeholder, value, onInput, numeric = false }: { id: string; label: string; hint: string; placeholder: string; value: string; onInput: (v: string) => void; numeric?: boolean }) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input id={id} inputMode={numeric ? 'numeric' : undefined} placeholder={placeholder} value={value} aria-describedby={`${id}-hint`} onInput={(e) => onInput((e.target as HTMLInputElement).value)} />
      <span id={`${id}-hint`} class="muted small">{hint}</span>
    </div>
  )
}

function outcome(replies: Reply[]): { state: 'running' | 'ok' | 'failed'; label: string } {
  const last = replies.find((r) => r.final === true || r.error !== undefined)
  if (last === undefined) return { state: 'running', label: 'running' }
  if (last.error !== undefined) return { state: 'failed', label: last.error.code }
  const code = last.exitCode ?? 0
  return { state: code === 0 ? 'ok' : 'failed', label: `exit ${code}` }
}

function RunView({ run, onCancel, onAgain }: { run: RunRecord; onCancel: (a: Accepted) => void; onAgain: () => void }) {
  if (run.job !== undefined) {
    return (
      <article class="run" aria-label={`run of ${run.method} as a job`} data-job={run.job}>
        <header class="bar">
          <h2><span class="mono">{run.method}</span> {run.args.length > 0 && <span class="mono muted">{run.args.join(' ')}</span>}</h2>
          <button type="button" class="secondary small" onClick={onAgain} title="Put this run back into the form">Again</button>
        </header>
        <JobMatrix id={run.job} compact />
      </article>
    )
  }
  const per = run.accepted.map((a) => ({ a, replies: [...repliesOf(a.id)].sort((x, y) => (x.seq ?? 0) - (y.seq ?? 0)) }))
  const count = (state: string): number => per.filter((p) => outcome(p.replies).state === state).length
  const running = per.filter((p) => outcome(p.replies).state === 'running')
  return (
    <article class="run" aria-label={`run of ${run.method}`}>
      <header class="bar">
        <h2><span class="mono">{run.method}</span> {run.args.length > 0 && <span class="mono muted">{run.args.join(' ')}</span>}</h2>
        <span class="small" data-counts>
          <b class="ok-text">{count('ok')}</b> ok, <b class={count('failed') > 0 ? 'bad-text' : ''}>{count('failed')}</b> failed, <b>{running.length}</b> running
          <span class="muted"> of {per.length}, to {run.targets.join(' + ')}</span>
        </span>
        <button type="button" class="secondary small" onClick={onAgain} title="Put this run back into the form">Again</button>
        {running.length > 1 && <button type="button" class="danger" onClick={() => running.forEach((p) => onCancel(p.a))}>Cancel all</button>}
      </header>
      <div class="outputs">
        {per.map(({ a, replies }) => {
          const o = outcome(replies)
          const err = replies.find((r) => r.error !== undefined)?.error
          return (
            <div class={`out ${o.state}`} key={a.id} data-node={a.toNode} data-id={a.id}>
              <div class="out-head">
                <a href={href('node', a.toNode)}>{a.toNode}</a>
                <span class={`badge ${o.state === 'ok' ? 'ok' : o.state === 'failed' ? 'bad' : 'run'}`} data-state={o.state}>{o.label}</span>
                {o.state === 'running' && (run.cancelling[a.id] !== undefined
                  ? <span class="muted small">{run.cancelling[a.id]}</span>
                  : <button type="button" class="danger small" onClick={() => onCancel(a)}>Cancel</button>)}
              </div>
              <pre class="output" aria-live="polite">
                {replies.map((r) => <>{r.data !== undefined && r.data !== '' && <span key={`d${r.id}`}>{r.data}</span>}{r.stderr !== undefined && r.stderr !== '' && <span class="stderr" key={`e${r.id}`}>{r.stderr}</span>}</>)}
                {replies.length === 0 && <span class="muted">waiting for output...</span>}
              </pre>
              {err !== undefined && <p class="error">{err.message} [{err.code}]</p>}
            </div>
          )
        })}
      </div>
    </article>
  )
}
