import { useState } from 'preact/hooks'
import { api, send, type JobNode, type JobSummary, type NodeInfo } from '../api'
import { ago, errorText, href, iso, usePoll } from '../util'
import { Labels, StateBadge } from './Fleet'

interface RecentReq { id: string; method: string; acceptedAt?: number; final: boolean; exitCode?: number; error?: { code: string; message: string } }
const INFO = ['info.system', 'info.os', 'info.kernel'] as const

export function Node({ name }: { name: string }) {
  const [node, setNode] = useState<NodeInfo | null | undefined>()
  const [recent, setRecent] = useState<RecentReq[]>([])
  const [jobs, setJobs] = useState<(JobSummary & { node: JobNode })[]>([])
  const [errors, setErrors] = useState<{ time: string; code: string; message: string }[]>([])
  const [ping, setPing] = useState('')
  const [info, setInfo] = useState<{ method: string; text: string; failed: boolean } | undefined>()
  const [busy, setBusy] = useState(false)
  usePoll(async () => {
    const [n, r, e, j] = await Promise.all([
      api<{ nodes: NodeInfo[] }>('GET', '/v1/nodes'),
      api<{ requests: RecentReq[] }>('GET', `/v1/requests?toNode=${encodeURIComponent(name)}&limit=20`),
      api<{ errors: { time: string; code: string; message: string }[] }>('GET', `/v1/errors?limit=10&node=${encodeURIComponent(name)}`),
      // A node that runs no jobs answers 404: no jobs to show, the rest still is.
      api<{ jobs: (JobSummary & { node: JobNode })[] }>('GET', `/v1/jobs?node=${encodeURIComponent(name)}`).catch(() => ({ jobs: [] })),
    ])
    setJobs(j.jobs.slice(0, 10))
    setNode(n.nodes.find((x) => x.name === name) ?? null)
    setRecent(r.requests)
    setErrors(e.errors)
  }, 3000, [name])
  const doPing = async (): Promise<void> => {
    setPing('pinging...')
    const t0 = performance.now()
    try {
      const r = await send({ toNode: name, method: 'node.ping', methodTimeout: 10, ttl: 30 }, true)
      const reply = r.replies?.find((x) => x.final === true || x.error !== undefined)
      setPing(reply?.error ? `failed: ${reply.error.message} [${reply.error.code}]` : r.done ? `answered in ${Math.round(performance.now() - t0)} ms` : 'no answer within 30 s')
    } catch (err) {
      setPing(`failed: ${errorText(err)}`)
    }
  }
  const load = async (method: string): Promise<void> => {
    setBusy(true)
    try {
      const r = await send({ toNode: name, method, methodTimeout: 20, ttl: 30 }, true)
      const reply = r.replies?.find((x) => x.final === true || x.error !== undefined)
      if (reply === undefined) setInfo({ method, text: 'no answer within 30 s', failed: true })
      else if (reply.error) setInfo({ method, text: `${reply.error.message} [${reply.error.code}]`, failed: true })
      else {
        let text = reply.data ?? ''
        try { text = JSON.stringify(JSON.parse(text), null, 2) } catch { /* not JSON: as it is */ }
        setInfo({ method, text, failed: false })
      }
    } catch (err) {
      setInfo({ method, text: errorText(err), failed: true })
    } finally {
      setBusy(false)
    }
  }
  if (node === undefined) return <p class="muted">Loading...</p>
  if (node === null) return <section><h1>{name}</h1><p class="error" role="alert">No node {name} in the fleet list.</p><a href={href('fleet')}>Back to the fleet</a></section>
  return (
    <section aria-labelledby="node-h">
      <div class="bar">
        <h1 id="node-h">{node.name} <StateBadge online={node.online} /></h1>
        <div class="actions">
          <button type="button" onClick={doPing}>Ping</button>
          <a class="button secondary" href={`${href('run')}?nodes=${encodeURIComponent(name)}`}>Run here</a>
          <a class="button secondary" href={href('shell', name)} data-shell>Shell</a>
        </div>
      </div>
      {ping !== '' && <p class="note" role="status" data-ping>{ping}</p>}
      <div class="cols">
        <div class="card">
          <h2>Node</h2>
          <dl class="facts">
            <dt>Last seen</dt><dd><time dateTime={iso(node.lastSeen)} title={iso(node.lastSeen)}>{ago(node.lastSeen)}</time></dd>
            <dt>Version</dt><dd>{node.version ?? '?'}</dd>
            <dt>OS/arch</dt><dd>{node.os ?? '?'}/{node.arch ?? '?'}</dd>
            <dt>Labels</dt><dd><Labels labels={node.labels} /></dd>
            {node.keyFingerprint !== undefined && <><dt>Key</dt><dd class="mono">{node.keyFingerprint}</dd></>}
          </dl>
          <h2>Facts</h2>
          {node.facts === undefined ? <p class="muted">unknown</p> : (
            <dl class="facts">{Object.entries(node.facts).map(([k, v]) => <><dt key={`k${k}`}>{k}</dt><dd key={`v${k}`}>{v}</dd></>)}</dl>
          )}
        </div>
        <div class="card">
          <h2>Recent requests</h2>
          {recent.length === 0 ? <p class="muted">None sent from this console's node lately.</p> : (
            <ul class="recent">
              {recent.map((r) => (
                <li key={r.id}>
                  <span class="mono">{r.method || '?'}</span>{' '}
                  <span class={`badge ${r.error ? 'bad' : !r.final ? 'run' : r.exitCode ? 'bad' : 'ok'}`}>
                    {r.error ? r.error.code : !r.final ? 'waiting' : `exit ${r.exitCode ?? 0}`}
                  </span>{' '}
                  <span class="muted small">{r.acceptedAt !== undefined ? ago(r.acceptedAt) : ''}</span>
                </li>
              ))}
            </ul>
          )}
        </div>
      </div>
      <div class="card">
        <h2>Recent jobs</h2>
        {jobs.length === 0 ? <p class="muted">In none of the jobs central keeps.</p> : (
          <ul class="recent node-jobs">
            {jobs.map((j) => (
              <li key={j.id} data-job={j.id}>
                <a class="mono" href={href('jobs', j.id)}>{j.method}</a>{' '}
                <span class="muted small">to {j.targets.join(' + ')}</span>{' '}
                <span class={`badge ${j.node.state === 'ok' ? 'ok' : j.node.state === 'failed' || j.node.state === 'expired' ? 'bad' : j.node.state === 'skipped' || j.node.state === 'not_selected' ? 'idle' : 'run'}`} data-state={j.node.state}>
                  {j.node.state.replace('_', ' ')}{j.node.exitCode !== undefined && j.node.exitCode !== 0 ? ` (exit ${j.node.exitCode})` : ''}
                </span>{' '}
                <span class="muted small"><time dateTime={iso(j.createdAt)} title={iso(j.createdAt)}>{ago(j.createdAt)}</time></span>
              </li>
            ))}
          </ul>
        )}
      </div>
      <div class="card">
        <h2>Errors it reported</h2>
        {errors.length === 0 ? <p class="muted">None in central's error log.</p> : (
          <ul class="recent node-errors">
            {errors.map((e, i) => (
              <li key={i}><span class="badge bad">{e.code}</span> <span class="message">{e.message}</span> <span class="muted small">{e.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</span></li>
            ))}
          </ul>
        )}
      </div>
      <div class="card">
        <h2>Ask the node</h2>
        <div class="actions">{INFO.map((m) => <button type="button" class="secondary" disabled={busy} onClick={() => load(m)} key={m}>{m}</button>)}</div>
        {info !== undefined && <><h3>{info.method}</h3><pre class={`output ${info.failed ? 'failed' : ''}`}>{info.text}</pre></>}
      </div>
    </section>
  )
}
