/**
 * One live connection to /v1/events for the whole page: every reply arriving at the node.
 * Replies are kept by request id (bounded), so a view that learns its request ids only when
 * POST /v1/messages answers still sees the replies that overtook that answer. Jobs' changes
 * (`event: job`) go to whoever listens with onJob.
 */
import type { JobEvent, Reply } from './api'

const KEPT_REQUESTS = 2000
const byRequest = new Map<string, Reply[]>()
const listeners = new Set<(r: Reply) => void>()
const stateListeners = new Set<(live: boolean) => void>()
const jobListeners = new Set<(ev: JobEvent) => void>()
let source: EventSource | undefined
let live = false

export function startEvents(): void {
  if (source !== undefined) return
  source = new EventSource('/v1/events')
  source.addEventListener('reply', (ev) => {
    let r: Reply
    try {
      r = JSON.parse((ev as MessageEvent<string>).data) as Reply
    } catch {
      return
    }
    keep(r)
  })
  source.addEventListener('job', (ev) => {
    let j: JobEvent
    try {
      j = JSON.parse((ev as MessageEvent<string>).data) as JobEvent
    } catch {
      return
    }
    for (const fn of jobListeners) fn(j)
  })
  source.onopen = () => setLive(true)
  source.onerror = () => setLive(false)
}

export function stopEvents(): void {
  source?.close()
  source = undefined
  setLive(false)
}

/** A reply into the store, once (the live stream and a look-up may both bring it). */
function keep(r: Reply): void {
  if (r.inReplyTo !== undefined) {
    let list = byRequest.get(r.inReplyTo)
    if (list === undefined) {
      list = []
      byRequest.set(r.inReplyTo, list)
      if (byRequest.size > KEPT_REQUESTS) byRequest.delete(byRequest.keys().next().value!)
    }
    if (list.some((x) => x.id === r.id)) return
    list.push(r)
  }
  for (const fn of listeners) fn(r)
}

/**
 * Replies of a request looked up with GET /v1/messages/:id: what the live stream missed while
 * it was down (it has no replay) is filled in.
 */
export function mergeReplies(replies: Reply[]): void {
  for (const r of replies) keep(r)
}

function setLive(v: boolean): void {
  live = v
  for (const fn of stateListeners) fn(v)
}

export function repliesOf(id: string): Reply[] {
  return byRequest.get(id) ?? []
}

export function onReply(fn: (r: Reply) => void): () => void {
  listeners.add(fn)
  return () => listeners.delete(fn)
}

export function onLive(fn: (live: boolean) => void): () => void {
  stateListeners.add(fn)
  fn(live)
  return () => stateListeners.delete(fn)
}

/** Each job change as it comes on the stream (`event: job`). */
export function onJob(fn: (ev: JobEvent) => void): () => void {
  jobListeners.add(fn)
  return () => jobListeners.delete(fn)
}

export function isLive(): boolean {
  return live
}
