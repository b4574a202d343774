/**
 * The local API's file requests (api/socket.ts; the HTTP API's /v1/transfers):
 *
 *   {"op":"cp","src":S,"dst":D,"mode"?,"owner"?,"mkdir"?,"rate"?,"wait"?}
 *       ─▶ {"transfer":{id,state,bytes,size,…}} … (each change, at most every PROGRESS_MS) ─▶ {"done":true}
 *   {"op":"transfers"} ─▶ {"transfers":[…]}
 *   {"op":"cp.cancel","id":ID} ─▶ {"transfer":{…,"state":"cancelled"}} (both ends told; the partial file deleted)
 */
import { OutpostError } from '../errors'
import type { CopyRequest, FileTransfers, TransferInfo } from './index'

/** Least time between two progress lines of one transfer. */
const PROGRESS_MS = 250

/** The id of a cp.cancel request (socket) or of POST /v1/transfers/ID/cancel, checked. */
export function transferId(v: unknown): string {
  if (typeof v !== 'string' || !/^[0-9A-Za-z_-]{1,64}$/.test(v)) throw new OutpostError('api_bad_request', 'api: cp.cancel: id must be a transfer id (outpost transfers lists them)')
  return v
}

/** A cp request's fields, checked. */
export function parseCopy(req: Record<string, unknown>): CopyRequest & { wait: boolean } {
  const bad = (what: string): never => { throw new OutpostError('api_bad_request', `api: cp: ${what}`) }
  if (typeof req.src !== 'string' || req.src === '') bad('src must be a path or NODE:/path')
  if (typeof req.dst !== 'string' || req.dst === '') bad('dst must be a path or NODE:/path')
  const out: CopyRequest & { wait: boolean } = { src: req.src as string, dst: req.dst as string, wait: req.wait !== false }
  if (req.mode !== undefined) {
    if (!Number.isInteger(req.mode) || (req.mode as number) < 0 || (req.mode as number) > 0o7777) bad('mode must be a file mode as a number (420 is 0644)')
    out.mode = req.mode as number
  }
  if (req.owner !== undefined) {
    if (typeof req.owner !== 'string' || req.owner === '') bad('owner must be user[:group]')
    out.owner = req.owner as string
  }
  if (req.mkdir !== undefined) out.mkdir = req.mkdir === true
  if (req.rate !== undefined) {
    if (!Number.isInteger(req.rate) || (req.rate as number) < 0) bad('rate must be bytes per second')
    out.rate = req.rate as number
  }
  return out
}

/**
 * Start a copy and report it: `write` gets each progress line; `end` once it is done or failed
 * (or at once without wait). Returns the unsubscribe for a client that goes away.
 */
export async function serveCopy(files: FileTransfers, req: CopyRequest & { wait: boolean }, write: (o: unknown) => void, end: () => void): Promise<() => void> {
  let last = 0
  let held: TransferInfo | undefined
  let timer: NodeJS.Timeout | undefined
  let ended = false
  let id = ''
  let local = true
  const finish = (): void => {
    if (ended) return
    ended = true
    if (timer !== undefined) clearTimeout(timer)
    stop()
    write({ done: true })
    end()
  }
  const show = (t: TransferInfo): void => {
    if (ended) return
    const final = t.state === 'done' || t.state === 'failed' || t.state === 'cancelled' || (!local && t.state === 'sending')
    const now = Date.now()
    if (!final && now - last < PROGRESS_MS) {
      held = t
      timer ??= setTimeout(() => { timer = undefined; if (held) show(held) }, PROGRESS_MS)
      return
    }
    held = undefined
    last = now
    write({ transfer: t })
    if (final) finish()
  }
  // Watch before starting: the first changes come before copy() resolves.
  let early: TransferInfo[] = []
  let watching = (t: TransferInfo): void => { early.push(t) }
  let stop = (): void => {}
  let started: { id: string; local: boolean }
  try {
    started = await files.copy(req, (newId) => { id = newId; stop = files.watch(newId, (t) => watching(t)) })
  } catch (err) {
    stop()
    throw err
  }
  local = started.local
  write({ transfer: files.info(id) ?? { id, state: 'opening' } })
  if (!req.wait) { ended = true; stop(); write({ done: true }); end(); return () => {} }
  watching = show
  for (const t of early) show(t)
  early = []
  const now = files.info(id)
  if (now !== undefined) show(now)
  return () => { ended = true; stop() }
}
