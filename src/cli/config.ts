/**
 * `outpost config set|unset` beside a running node. The file is written first (validated,
 * comments kept), then the node that runs from it is told to re-read it and take over what
 * needs no restart, as `config.set` from central does (src/config/remote.ts reloadFile):
 *
 *   socket of the config *before* the edit ─▶ editConfig ─▶ {"op":"config.reload","file"}
 *   ─▶ "applied at once: …" / "needs a restart: …" / nothing runs: the file alone, as before
 */
import { talk } from '../api/client'
import { load, socketPath, type Io } from './common'
import { isOutpostError, OutpostError } from '../errors'

export type LiveResult =
  | { type: 'none'; socket: string | undefined }
  | { type: 'applied'; node: string; socket: string; changed: string[]; restartNeeded: string[]; restartable: boolean }
  | { type: 'other-file'; node: string; socket: string; file: string }
  | { type: 'failed'; socket: string; error: OutpostError }

/**
 * Where the node of this config listens, read before the edit (an edit of dataDir or
 * api.socket does not move the running node). undefined when the file cannot be read.
 */
export function runningSocket(io: Io, values: { config?: string | undefined; 'data-dir'?: string | undefined }): string | undefined {
  try {
    return socketPath(load(io, { config: values.config, 'data-dir': values['data-dir'] }, false).config)
  } catch {
    return undefined
  }
}

/** Ask the node at `socket` (if one answers) to re-read `file`. Never throws: the file is written already. */
export async function tellRunningNode(socket: string | undefined, file: string, ms = 5000): Promise<LiveResult> {
  if (socket === undefined) return { type: 'none', socket }
  let answer: Record<string, unknown> | undefined
  try {
    await talk(socket, JSON.stringify({ op: 'config.reload', file }) + '\n', (obj) => { answer = obj; return true }, AbortSignal.timeout(ms))
  } catch (err) {
    // No socket, or one a dead process left: no node runs with this config.
    if (isOutpostError(err) && (err.code === 'agent_not_running' || err.code === 'not_connected')) return { type: 'none', socket }
    return { type: 'failed', socket, error: isOutpostError(err) ? err : new OutpostError('io', `no answer from the node at ${socket} within ${ms} ms`, { cause: err }) }
  }
  const error = answer?.error as { code?: string; message?: string } | undefined
  if (error !== undefined) return { type: 'failed', socket, error: new OutpostError('api_bad_request', `the node at ${socket} answered: ${error.message ?? ''} [${error.code ?? '?'}]`) }
  const c = (answer?.config ?? {}) as { node?: string; type?: string; file?: string; changed?: string[]; restartNeeded?: string[]; restartable?: boolean }
  const node = c.node ?? '?'
  if (c.type === 'other-file') return { type: 'other-file', node, socket, file: c.file ?? '?' }
  // An older node does not say whether it can restart itself: as before, it is offered agent.restart.
  return { type: 'applied', node, socket, changed: c.changed ?? [], restartNeeded: c.restartNeeded ?? [], restartable: c.restartable !== false }
}

/** The lines `config set|unset` prints after "KEY = VALUE, written to FILE". */
export function describeLive(r: LiveResult): string {
  switch (r.type) {
    case 'none':
      return ''
    case 'applied': {
      const live = r.changed.filter((k) => !r.restartNeeded.includes(k))
      if (r.changed.length === 0) return `the running node ${r.node} has this value already\n`
      const lines: string[] = []
      if (live.length > 0) lines.push(`the running node ${r.node} applied at once: ${live.join(', ')}`)
      if (r.restartNeeded.length > 0) {
        // Inside `outpost up` agent.restart is refused (restart_unavailable): only a new `outpost up` restarts it.
        const how = r.restartable ? `restart its service, or \`outpost send --to ${r.node} agent.restart\`` : 'it runs inside `outpost up` or another process that cannot restart it: stop that (Ctrl-C) and start it again'
        lines.push(`the running node ${r.node} needs a restart for: ${r.restartNeeded.join(', ')} (${how})`)
      }
      return lines.join('\n') + '\n'
    }
    case 'other-file':
      return `the node ${r.node} running here (${r.socket}) reads ${r.file}, not this file: nothing applied to it\n`
    case 'failed':
      return `the running node was not told (${r.error.message}); it reads the file at its next start\n`
  }
}

/** The JSON form, for --json. */
export function liveJson(r: LiveResult): Record<string, unknown> | null {
  switch (r.type) {
    case 'none': return null
    case 'applied': return { node: r.node, socket: r.socket, applied: true, changed: r.changed, restartNeeded: r.restartNeeded, restartable: r.restartable }
    case 'other-file': return { node: r.node, socket: r.socket, applied: false, file: r.file }
    case 'failed': return { socket: r.socket, applied: false, error: r.error.toJSON() }
  }
}
