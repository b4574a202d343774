import { useState } from 'preact/hooks'
import { api, type NodeInfo, type Status } from '../api'
import { ago, errorText, href, iso, usePoll } from '../util'

export function Labels({ labels }: { labels: Record<string, string> | undefined }) {
  if (labels === undefined) return <span class="muted" title="unknown: no heartbeat with labels yet">?</span>
  const entries = Object.entries(labels)
  if (entries.length === 0) return <span class="muted">-</span>
  return <span class="chips">{entries.map(([k, v]) => <span class="chip" key={k}>{k}={v}</span>)}</span>
}

/** "0.1.0 (12), 0.0.9 (3)": how many nodes run each version, the most common first. */
function versions(nodes: NodeInfo[]): string {
  const count = new Map<string, number>()
  for (const n of nodes) count.set(n.version ?? '?', (count.get(n.version ?? '?') ?? 0) + 1)
  return [...count].sort((a, b) => b[1] - a[1]).map(([v, k]) => `${v} (${k})`).join(', ')
}

export function StateBadge({ online }: { online: boolean }) {
  return <span class={`badge ${online ? 'ok' : 'bad'}`}>{online ? 'online' : 'offline'}</span>
}

type SortKey = 'name' | 'state' | 'lastSeen' | 'version' | 'backlog'
const COLUMNS: [SortKey | null, string][] = [[null, 'Pick'], ['name', 'Node'], ['state', 'State'], ['lastSeen', 'Last seen'], ['version', 'Version'], [null, 'OS/arch'], [null, 'Labels'], ['backlog', 'Backlog']]

export function Fleet({ initial }: { initial: string }) {
  const [sort, setSort] = useState<{ key: SortKey; down: boolean }>({ key: 'state', down: false })
  const [draft, setDraft] = useState(initial)
  const [selector, setSelector] = useState(initial)
  const [nodes, setNodes] = useState<NodeInfo[] | undefined>()
  const [status, setStatus] = useState<Status | undefined>()
  const [error, setError] = useState('')
  const [picked, setPicked] = useState<Set<string>>(new Set())
  usePoll(async () => {
    try {
      const q = selector.trim() === '' ? '' : `?selector=${encodeURIComponent(selector)}`
      const [n, s] = await Promise.all([api<{ nodes: NodeInfo[] }>('GET', `/v1/nodes${q}`), api<Status>('GET', '/v1/status')])
      setNodes(n.nodes)
      setStatus(s)
      setError('')
    } catch (err) {
      setError(errorText(err))
    }
  }, 2000, [selector])
  const backlog = new Map((status?.outbox.destinations ?? []).map((d) => [d.node, d]))
  const online = nodes?.filter((n) => n.online).length ?? 0
  // Offline first by default: what needs looking at comes to the top.
  const value = (n: NodeInfo): string | number => {
    if (sort.key === 'state') return n.online ? 1 : 0
    if (sort.key === 'lastSeen') return n.lastSeen
    if (sort.key === 'version') return n.version ?? ''
    if (sort.key === 'backlog') return backlog.get(n.name)?.count ?? 0
    return n.name
  }
  const sorted = [...(nodes ?? [])].sort((a, b) => {
    const x = value(a)
    const y = value(b)
    const c = x < y ? -1 : x > y ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0
    return sort.down && x !== y ? -c : c
  })
  const sortBy = (key: SortKey): void => setSort(sort.key === key ? { key, down: !sort.down } : { key, down: key === 'lastSeen' || key === 'backlog' })
  const toggle = (name: string): void => {
    const next = new Set(picked)
    if (!next.delete(name)) next.add(name)
    setPicked(next)
  }
  const runHref = picked.size > 0 ? `${href('run')}?nodes=${encodeURIComponent([...picked].join(','))}`
    : `${href('run')}${selector.trim() !== '' ? `?selector=${encodeURIComponent(selector)}` : ''}`
  return (
    <section aria-labelledby="fleet-h">
      <div class="bar">
        <h1 id="fleet-h">Fleet</h1>
        {nodes !== undefined && <p class="summary" aria-live="polite"><b>{nodes.length}</b> nodes, <b class="ok-text">{online}</b> online, <b class={nodes.length - online > 0 ? 'bad-text' : ''}>{nodes.length - online}</b> offline</p>}
      </div>
      <form class="filter" onSubmit={(e) => { e.preventDefault(); setSelector(draft); history.replaceState(null, '', `${href('fleet')}${draft.trim() ? `?selector=${encodeURIComponent(draft)}` : ''}`) }}>
        <label for="selector">Selector</label>
        <input id="selector" data-search placeholder="role=db,site in (oslo,bergen)  or  ship*" value={draft} onInput={(e) => setDraft((e.target as HTMLInputElement).value)} />
        <button type="submit">Filter</button>
        <a class="button secondary" href={runHref}>Run on {picked.size > 0 ? `${picked.size} picked` : selector.trim() !== '' ? 'these' : '...'}</a>
      </form>
      {error !== '' && <p role="alert" class="error">{error}</p>}
      {nodes === undefined ? <p class="muted">Loading...</p> : nodes.length === 0 ? <p class="muted">No node matches.</p> : (
        <table class="grid fleet">
          <thead><tr>{COLUMNS.map(([key, label]) => key === null
            ? <th key={label}>{label === 'Pick' ? <span class="sr">Pick</span> : label}</th>
            : <th key={label} aria-sort={sort.key === key ? (sort.down ? 'descending' : 'ascending') : undefined}>
              <button type="button" class="sort" onClick={() => sortBy(key)}>{label}{sort.key === key ? (sort.down ? ' \u25BC' : ' \u25B2') : ''}</button>
            </th>)}</tr></thead>
          <tbody>
            {sorted.map((n) => {
              const b = backlog.get(n.name)
              return (
                <tr key={n.name} data-node={n.name} class={n.online ? '' : 'offline'}>
                  <td data-label="Pick"><input type="checkbox" aria-label={`pick ${n.name}`} checked={picked.has(n.name)} onChange={() => toggle(n.name)} /></td>
                  <td data-label="Node"><a href={href('node', n.name)}>{n.name}</a></td>
                  <td data-label="State"><StateBadge online={n.online} /></td>
                  <td data-label="Last seen"><time dateTime={iso(n.lastSeen)} title={iso(n.lastSeen)}>{ago(n.lastSeen)}</time></td>
                  <td data-label="Version">{n.version ?? '?'}</td>
                  <td data-label="OS/arch">{n.os ?? '?'}/{n.arch ?? '?'}</td>
                  <td data-label="Labels"><Labels labels={n.labels} /></td>
                  <td data-label="Backlog" title={b ? `oldest waiting since ${iso(b.oldest)}` : 'nothing waiting'}>{b ? `${b.count} msg` : '0'}</td>
                </tr>
              )
            })}
          </tbody>
        </table>
      )}
      {nodes !== undefined && nodes.length > 0 && <p class="muted small" data-versions>Versions: {versions(nodes)}</p>}
      {status !== undefined && <p class="muted small">Backlog: messages waiting in {status.node}'s outbox for each node ({status.outbox.count} in all).</p>}
    </section>
  )
}
