/**
 * Read-only views the HTTP API adds for the console (and tools): the node list filtered by a
 * selector, central's error log, and the recent requests sent to one node.
 *
 *   GET /v1/nodes?selector=S            nodes matching S (selector_invalid on a bad one)
 *   GET /v1/errors[?limit=N&node=X]     <dataDir>/errors.log, newest first (only X's reports)
 *   GET /v1/requests?toNode=X[&limit=N] what this node sent to X lately, newest first
 */
import fs from 'node:fs'
import path from 'node:path'
import { OutpostError } from '../errors'
import type { NodeInfo } from '../node-list'
import { matches, parseSelector } from '../selector'

/** How much of the end of errors.log is read (older lines are left to the file). */
const ERROR_LOG_TAIL_BYTES = 512 * 1024
export const MAX_LIMIT = 1000

export interface ErrorLogEntry { time: string; node: string; code: string; message: string }

export function filterNodes(nodes: NodeInfo[], selector: string | null): NodeInfo[] {
  if (selector === null || selector.trim() === '') return nodes
  const sel = parseSelector(selector)
  return nodes.filter((n) => matches(sel, n))
}

/** `?limit=` as a count between 1 and MAX_LIMIT (default `def`). */
export function limitParam(v: string | null, def: number): number {
  if (v === null || v === '') return def
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) throw new OutpostError('api_bad_request', `api: limit must be a whole number between 1 and ${MAX_LIMIT}, got ${JSON.stringify(v.slice(0, 20))}`)
  return n
}

/** The last `limit` lines of <dataDir>/errors.log (error.log's file; of `node` only when given), newest first; none yet: []. */
export function readErrorLog(dataDir: string, limit: number, node: string | null = null): ErrorLogEntry[] {
  const file = path.join(dataDir, 'errors.log')
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw new OutpostError('io', `api: cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
  try {
    const size = fs.fstatSync(fd).size
    const start = Math.max(0, size - ERROR_LOG_TAIL_BYTES)
    const buf = Buffer.alloc(size - start)
    fs.readSync(fd, buf, 0, buf.length, start)
    let lines = buf.toString('utf8').split('\n')
    if (start > 0) lines = lines.slice(1) // the first may be cut
    const entries = lines.filter((l) => l !== '').map(parseLine)
    return (node === null ? entries : entries.filter((e) => e.node === node)).slice(-limit).reverse()
  } finally {
    fs.closeSync(fd)
  }
}

/** `<ISO time> <fromNode> <code> <message>` (methods/error-log.ts writes it). */
function parseLine(line: string): ErrorLogEntry {
  const m = /^(\S+) (\S+) (\S+) ?(.*)$/.exec(line)
  if (!m) return { time: '', node: '', code: '', message: line }
  return { time: m[1]!, node: m[2]!, code: m[3]!, message: m[4]!.replace(/\\n/g, '\n') }
}
