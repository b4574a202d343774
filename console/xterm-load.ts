/** xterm.js, loaded once on first use from /console/term.js and /console/term.css (term-entry.ts). */
import type { Terminal } from '@xterm/xterm'

let loading: Promise<typeof Terminal> | undefined

export function loadXterm(): Promise<typeof Terminal> {
  loading ??= Promise.all([
    added(Object.assign(document.createElement('link'), { rel: 'stylesheet', href: '/console/term.css' })),
    added(Object.assign(document.createElement('script'), { src: '/console/term.js' })),
  ]).then(() => {
    const t = (globalThis as { outpostXterm?: { Terminal: typeof Terminal } }).outpostXterm?.Terminal
    if (t === undefined) throw new Error('/console/term.js did not provide the terminal')
    return t
  }).catch((err: unknown) => {
    loading = undefined
    throw err
  })
  return loading
}

function added(el: HTMLLinkElement | HTMLScriptElement): Promise<void> {
  return new Promise((resolve, reject) => {
    el.onload = () => resolve()
    el.onerror = () => reject(new Error(`could not load ${el instanceof HTMLLinkElement ? el.href : el.src}`))
    document.head.append(el)
  })
}
