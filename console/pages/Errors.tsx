import { useState } from 'preact/hooks'
import { api } from '../api'
import { errorText, href, usePoll } from '../util'

interface Entry { time: string; node: string; code: string; message: string }

export function Errors() {
  const [entries, setEntries] = useState<Entry[] | undefined>()
  const [filter, setFilter] = useState('')
  const [error, setError] = useState('')
  usePoll(async () => {
    try {
      setEntries((await api<{ errors: Entry[] }>('GET', '/v1/errors?limit=500')).errors)
      setError('')
    } catch (err) {
      setError(errorText(err))
    }
  }, 5000, [])
  const f = filter.trim().toLowerCase()
  const shown = (entries ?? []).filter((e) => f === '' || `${e.node} ${e.code} ${e.message}`.toLowerCase().includes(f))
  return (
    <section aria-labelledby="errors-h">
      <div class="bar"><h1 id="errors-h">Errors</h1><p class="summary">central's error log, newest first</p></div>
      <div class="filter">
        <label for="efilter">Filter</label>
        <input id="efilter" data-search placeholder="node, code or text" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
      </div>
      {error !== '' && <p role="alert" class="error">{error}</p>}
      {entries === undefined ? <p class="muted">Loading...</p> : shown.length === 0 ? <p class="muted">{entries.length === 0 ? 'No errors reported.' : 'Nothing matches.'}</p> : (
        <table class="grid errors">
          <thead><tr><th>Time</th><th>Node</th><th>Code</th><th>Message</th></tr></thead>
          <tbody>
            {shown.map((e, i) => (
              <tr key={i}>
                <td data-label="Time"><time dateTime={e.time}>{e.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time></td>
                <td data-label="Node"><a href={href('node', e.node)}>{e.node}</a></td>
                <td data-label="Code"><span class="badge bad">{e.code}</span></td>
                <td data-label="Message" class="message">{e.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  )
}
