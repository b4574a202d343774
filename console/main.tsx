/**
 * The fleet console: a page served by a node with api.http (src/console/serve.ts). Views by
 * the URL's hash: #/fleet, #/node/NAME, #/run, #/jobs, #/jobs/ID, #/errors. Data from the
 * node's /v1/ API with the session cookie; live replies and job changes from /v1/events. Text is always rendered as text (Preact escapes
 * it): nothing a node sends is ever parsed as HTML.
 */
import './app.css'
import { render } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import { resume, signOut, whenSignedOut } from './api'
import { onLive, startEvents, stopEvents } from './events'
import { Errors } from './pages/Errors'
import { Fleet } from './pages/Fleet'
import { Jobs } from './pages/Jobs'
import { Node } from './pages/Node'
import { Run } from './pages/Run'
import { SignIn } from './pages/SignIn'
import { Terminal } from './pages/Terminal'
import { href, useRoute, type Route } from './util'

const VIEWS = [['fleet', 'Fleet', 'f'], ['run', 'Run', 'r'], ['jobs', 'Jobs', 'j'], ['errors', 'Errors', 'e']] as const

function App() {
  const [state, setState] = useState<'checking' | 'in' | 'out'>('checking')
  useEffect(() => {
    whenSignedOut(() => { stopEvents(); setState('out') })
    void resume().then((ok) => {
      if (ok) startEvents()
      setState(ok ? 'in' : 'out')
    })
  }, [])
  if (state === 'checking') return <p class="muted pad">Loading...</p>
  if (state === 'out') return <SignIn onDone={() => { startEvents(); setState('in') }} />
  return <Shell onSignOut={async () => { await signOut(); stopEvents(); setState('out') }} />
}

function Shell({ onSignOut }: { onSignOut: () => void }) {
  const route = useRoute()
  const [live, setLive] = useState(false)
  const main = useRef<HTMLElement>(null)
  useEffect(() => onLive(setLive), [])
  // Keyboard: f, r, j, e switch views, / goes to the view's filter (not while typing).
  useEffect(() => {
    const onKey = (ev: KeyboardEvent): void => {
      const t = ev.target as HTMLElement
      if (ev.ctrlKey || ev.metaKey || ev.altKey || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName) || t.isContentEditable) return
      const view = VIEWS.find((v) => v[2] === ev.key)
      if (view) { location.hash = href(view[0]); ev.preventDefault() }
      if (ev.key === '/') {
        const search = document.querySelector<HTMLInputElement>('[data-search]')
        if (search) { search.focus(); ev.preventDefault() }
      }
    }
    addEventListener('keydown', onKey)
    return () => removeEventListener('keydown', onKey)
  }, [])
  // A new view: keyboard and screen-reader focus goes to it.
  useEffect(() => { main.current?.focus({ preventScroll: true }) }, [route.path.join('/')])
  const view = route.path[0] ?? 'fleet'
  useEffect(() => {
    document.title = `${pageTitle(view, route.path[1])} - outpost console`
  }, [route.path.join('/')])
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); main.current?.focus() }}>Skip to content</a>
      <header class="top">
        <a class="brand" href={href('fleet')}>outpost</a>
        <nav aria-label="views">
          {VIEWS.map(([id, label, key]) => (
            <a key={id} href={href(id)} aria-current={view === id ? 'page' : undefined} aria-keyshortcuts={key} title={`${label} (${key})`}>{label}</a>
          ))}
        </nav>
        <span class={`live ${live ? 'on' : ''}`} title={live ? 'live events connected' : 'live events disconnected'} role="status">{live ? 'live' : 'reconnecting'}</span>
        <button type="button" class="secondary small" onClick={onSignOut}>Sign out</button>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        <Page route={route} view={view} />
      </main>
    </>
  )
}

/** The tab's title: the node or job shown, a shell's node, else the view's name. */
function pageTitle(view: string, item: string | undefined): string {
  if (view === 'shell' && item !== undefined) return `shell on ${item}`
  if (view === 'node' || (view === 'jobs' && item !== undefined)) return item ?? 'node'
  return VIEWS.find((v) => v[0] === view)?.[1] ?? 'Fleet'
}

function Page({ route, view }: { route: Route; view: string }) {
  if (view === 'node' && route.path[1] !== undefined) return <Node name={route.path[1]} key={route.path[1]} />
  if (view === 'shell' && route.path[1] !== undefined) return <Terminal name={route.path[1]} key={route.path[1]} />
  if (view === 'run') return <Run query={route.query} />
  if (view === 'jobs') return <Jobs id={route.path[1]} key={route.path[1] ?? ''} />
  if (view === 'errors') return <Errors />
  return <Fleet initial={route.query.get('selector') ?? ''} />
}

render(<App />, document.getElementById('app')!)
