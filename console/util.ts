import { useEffect, useState } from 'preact/hooks'

/** The part of the URL after `#`, as a path and its query: `#/node/ship1?x=1`. */
export interface Route { path: string[]; query: URLSearchParams }

function readHash(): Route {
  const h = location.hash.replace(/^#\/?/, '')
  const q = h.indexOf('?')
  const path = (q < 0 ? h : h.slice(0, q)).split('/').filter(Boolean).map((p) => decodeURIComponent(p))
  return { path, query: new URLSearchParams(q < 0 ? '' : h.slice(q + 1)) }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(readHash)
  useEffect(() => {
    const on = (): void => setRoute(readHash())
    addEventListener('hashchange', on)
    return () => removeEventListener('hashchange', on)
  }, [])
  return route
}

export function href(...parts: string[]): string {
  return `#/${parts.map(encodeURIComponent).join('/')}`
}

/** Re-run `fn` every `ms` while the view is shown (and at once). */
export function usePoll(fn: () => void | Promise<void>, ms: number, deps: unknown[]): void {
  useEffect(() => {
    let stopped = false
    let timer: number | undefined
    const tick = async (): Promise<void> => {
      try { await fn() } catch { /* shown by fn */ }
      if (!stopped) timer = window.setTimeout(tick, ms)
    }
    void tick()
    return () => { stopped = true; window.clearTimeout(timer) }
  }, deps)
}

/** "just now", "12 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function ago(ms: number, now = Date.now()): string {
  if (!ms) return 'never'
  const s = Math.max(0, Math.round((now - ms) / 1000))
  if (s < 2) return 'just now'
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`
  return `${Math.floor(s / 86400)} d ago`
}

export function iso(ms: number): string {
  return ms ? new Date(ms).toISOString() : ''
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

export function errorText(err: unknown): string {
  const e = err as { code?: string; message?: string }
  return e.code !== undefined ? `${e.message ?? ''} [${e.code}]` : String(e.message ?? err)
}
