/**
 * The terminal view (#/shell/NODE): `session.open` on a node through the HTTP API's sessions
 * (src/api/http-sessions.ts), drawn by xterm.js (bundled: no CDN).
 *
 *   xterm.js loaded on first use (xterm-load.ts: /console/term.js, term.css)
 *   POST /v1/sessions {toNode, rows, cols} ─▶ id
 *   EventSource /v1/sessions/ID/events ─▶ out (base64) ─▶ term.write; exit/error ─▶ status, stream closed
 *   term.onData / onResize ─▶ queue ─▶ POST /v1/sessions/ID/input {seq, lines}, one batch at a time
 *   leaving the view closes the stream: the node kills the session's process group
 */
import type { Terminal as XTerm } from '@xterm/xterm'
import { useEffect, useRef, useState } from 'preact/hooks'
import { api } from '../api'
import { errorText, href } from '../util'
import { loadXterm } from '../xterm-load'

/** Input lines sent in one POST at most (more wait for the next). */
const BATCH_LINES = 64

type State = { kind: 'opening' } | { kind: 'open' } | { kind: 'exit'; code: number } | { kind: 'error'; text: string }

export function Terminal({ name }: { name: string }) {
  const box = useRef<HTMLDivElement>(null)
  const [state, setState] = useState<State>({ kind: 'opening' })
  const [attempt, setAttempt] = useState(0)
  useEffect(() => {
    let gone = false
    let stop = (): void => {}
    loadXterm().then((Term) => { if (!gone) stop = start(Term) }, (err: unknown) => setState({ kind: 'error', text: errorText(err) }))
    return () => { gone = true; stop() }
  }, [name, attempt])
  /** The session in a new terminal; returns what ends both. */
  function start(Term: typeof XTerm): () => void {
    const term = new Term({ fontSize: 14, fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace', cursorBlink: true, scrollback: 5000 })
    term.open(box.current!)
    fit(term)
    term.focus()
    let id: string | undefined
    let source: EventSource | undefined
    let over = false
    const queue: unknown[] = []
    let seq = 0
    let sending = false
    const enc = new TextEncoder()
    const pump = async (): Promise<void> => {
      if (sending || id === undefined) return
      sending = true
      try {
        while (queue.length > 0 && !over) {
          const lines = queue.splice(0, BATCH_LINES)
          await api('POST', `/v1/sessions/${id}/input`, { seq, lines })
          seq++
        }
      } catch (err) {
        if (!over) finish({ kind: 'error', text: `input refused: ${errorText(err)}` })
      } finally {
        sending = false
      }
    }
    const push = (line: unknown): void => { queue.push(line); void pump() }
    const finish = (s: State): void => {
      if (over) return
      over = true
      source?.close()
      setState(s)
      term.options.cursorBlink = false
    }
    const data = term.onData((s) => push({ in: b64(enc.encode(s)) }))
    const binary = term.onBinary((s) => push({ in: b64(Uint8Array.from(s, (ch) => ch.charCodeAt(0) & 255)) }))
    const resized = term.onResize(({ rows, cols }) => push({ resize: [rows, cols] }))
    const observer = new ResizeObserver(() => fit(term))
    observer.observe(box.current!)
    void (async () => {
      try {
        const r = await api<{ session: { id: string } }>('POST', '/v1/sessions', { toNode: name, rows: term.rows, cols: term.cols })
        id = r.session.id
      } catch (err) {
        finish({ kind: 'error', text: errorText(err) })
        return
      }
      if (over) { void api('DELETE', `/v1/sessions/${id}`).catch(() => undefined); return }
      source = new EventSource(`/v1/sessions/${id}/events`)
      source.addEventListener('ready', () => setState({ kind: 'open' }))
      source.addEventListener('out', (ev) => term.write(unb64((ev as MessageEvent<string>).data)))
      source.addEventListener('exit', (ev) => {
        const code = (JSON.parse((ev as MessageEvent<string>).data) as { code: number }).code
        term.write(`\r\n[exited with status ${code}]\r\n`)
        finish({ kind: 'exit', code })
      })
      source.addEventListener('error', (ev) => {
        const text = (ev as MessageEvent<string>).data
        if (typeof text === 'string') {
          const e = JSON.parse(text) as { code: string; message: string }
          finish({ kind: 'error', text: `${e.message} [${e.code}]` })
        } else finish({ kind: 'error', text: 'the connection to the console\'s node was lost; the session ended' })
      })
      void pump()
    })()
    return () => {
      // Closing the stream is what ends the session (and its process group) on the node.
      over = true
      source?.close()
      observer.disconnect()
      data.dispose(); binary.dispose(); resized.dispose()
      term.dispose()
    }
  }
  const status = state.kind === 'opening' ? 'opening...' : state.kind === 'open' ? 'connected' : state.kind === 'exit' ? `exited with status ${state.code}` : state.text
  return (
    <section aria-labelledby="term-h" class="term-view">
      <div class="bar">
        <h1 id="term-h">Shell on <a href={href('node', name)}>{name}</a></h1>
        <span role="status" data-status={state.kind} data-exit={state.kind === 'exit' ? String(state.code) : undefined}
          class={`badge ${state.kind === 'open' ? 'ok' : state.kind === 'opening' ? 'run' : state.kind === 'exit' && state.code === 0 ? 'ok' : 'bad'}`}>{status}</span>
        {(state.kind === 'exit' || state.kind === 'error') && <button type="button" class="secondary small" onClick={() => { setState({ kind: 'opening' }); setAttempt((n) => n + 1) }}>New session</button>}
      </div>
      <div class="term-box" ref={box} aria-label={`terminal on ${name}`} />
      <p class="hint">Runs as the user the node's agent runs as. Leaving this view ends the session.</p>
    </section>
  )
}

/** Rows and columns that fill the box (what @xterm/addon-fit does, without the dependency). */
function fit(term: XTerm): void {
  // xterm.js keeps its cell size private; the fit addon reads it the same way.
  const cell = (term as unknown as { _core?: { _renderService?: { dimensions?: { css: { cell: { width: number; height: number } } } } } })._core?._renderService?.dimensions?.css.cell
  const parent = term.element?.parentElement
  if (cell === undefined || cell.width === 0 || cell.height === 0 || parent == null) return
  const style = getComputedStyle(parent)
  const w = parent.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 14
  const h = parent.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom)
  const cols = Math.max(20, Math.floor(w / cell.width))
  const rows = Math.max(5, Math.floor(h / cell.height))
  if (cols !== term.cols || rows !== term.rows) term.resize(cols, rows)
}

function b64(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += String.fromCharCode(b)
  return btoa(s)
}

function unb64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0))
}
