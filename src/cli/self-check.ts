/**
 * `outpost self-check` (not in --help): proves that what the single binary embeds works on this
 * machine: sql.js from the embedded wasm, and node-pty from the embedded addon (a command
 * really run in a pseudo-terminal). Used by the packaging tests and by operators on a new board.
 */
import { loadSqlJs } from '../store/sqljs'
import { loadPty } from '../lib/pty'
import { VERSION } from '../version'

export interface SelfCheck {
  version: string
  platform: string
  packaged: boolean
  sqljs: string
  pty: string
}

export async function selfCheck(): Promise<SelfCheck> {
  const packaged = (globalThis as { __OUTPOST_SEA__?: boolean }).__OUTPOST_SEA__ === true
  let sqljs: string
  try {
    const SQL = await loadSqlJs()
    const db = new SQL.Database()
    sqljs = `ok ${String(db.exec('select sqlite_version()')[0]?.values[0]?.[0])}`
    db.close()
  } catch (err) {
    sqljs = `error: ${(err as Error).message}`
  }
  return { version: VERSION, platform: `${process.platform}-${process.arch}`, packaged, sqljs, pty: await ptyCheck() }
}

async function ptyCheck(): Promise<string> {
  const loaded = loadPty()
  if (!loaded.ok) return `unavailable (detached process group fallback): ${loaded.reason}`
  const pty = loaded.pty
  return new Promise((resolve) => {
    let out = ''
    const term = pty.spawn('/bin/sh', ['-c', 'tty >/dev/null && echo pty-ok'], { cols: 80, rows: 24 })
    const timer = setTimeout(() => { term.kill(); resolve(`error: no answer from the pty in 5 s (${JSON.stringify(out)})`) }, 5000)
    term.onData((d) => { out += d })
    term.onExit(({ exitCode }) => {
      clearTimeout(timer)
      // Output may still be in flight when exit is reported: give it a moment.
      setTimeout(() => resolve(out.includes('pty-ok') && exitCode === 0 ? 'ok' : `error: exit ${exitCode}, output ${JSON.stringify(out)}`), 50)
    })
  })
}
