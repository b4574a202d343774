/**
 * The console's calls to its node: same-origin fetch with the session cookie, the CSRF token
 * in a header on anything that changes state. A 401 anywhere means the session is gone.
 */
const CSRF_HEADER = 'x-outpost-csrf'
let csrf = ''
let onSignedOut: () => void = () => {}

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message)
  }
}

export function whenSignedOut(fn: () => void): void {
  onSignedOut = fn
}

export async function api<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (method !== 'GET') headers[CSRF_HEADER] = csrf
  const res = await fetch(path, { method, credentials: 'same-origin', headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
  const text = await res.text()
  let data: unknown
  try {
    data = text === '' ? undefined : JSON.parse(text)
  } catch {
    data = undefined
  }
  if (!res.ok) {
    const e = (data as { error?: { code?: string; message?: string } } | undefined)?.error
    if (res.status === 401 && path !== '/console/session') onSignedOut()
    throw new ApiError(res.status, e?.code ?? `http_${res.status}`, e?.message ?? res.statusText)
  }
  return data as T
}

/** Whether a session is live (and its CSRF token, kept here). */
export async function resume(): Promise<boolean> {
  try {
    csrf = (await api<{ csrf: string }>('GET', '/console/session')).csrf
    return true
  } catch {
    return false
  }
}

export async function signIn(token: string): Promise<void> {
  csrf = (await api<{ csrf: string }>('POST', '/console/session', { token })).csrf
}

export async function signOut(): Promise<void> {
  await api('DELETE', '/console/session').catch(() => undefined)
  csrf = ''
}

export interface NodeInfo {
  name: string
  online: boolean
  lastSeen: number
  version?: string
  os?: string
  arch?: string
  labels?: Record<string, string>
  facts?: Record<string, string>
  keyFingerprint?: string
}

export interface Reply {
  id: string
  inReplyTo?: string
  fromNode: string
  method: string
  data?: string
  stderr?: string
  seq?: number
  final?: boolean
  exitCode?: number
  error?: { code: string; message: string }
  createdAt: number
}

export interface Accepted { id: string; toNode: string }

export interface Status {
  node: string
  version: string
  connected: boolean
  outbox: { count: number; bytes: number; destinations: { node: string; count: number; bytes: number; oldest: number }[] }
}

export function send(message: Record<string, unknown>, wait = false): Promise<{ accepted: Accepted[]; replies?: Reply[]; done?: boolean }> {
  return api('POST', `/v1/messages${wait ? '?wait=1&timeout=30' : ''}`, message)
}

export type NodeState = 'pending' | 'delivered' | 'running' | 'ok' | 'failed' | 'expired' | 'not_selected' | 'skipped'
export const NODE_STATES: readonly NodeState[] = ['pending', 'delivered', 'running', 'ok', 'failed', 'expired', 'not_selected', 'skipped']

export interface JobOptions { batch?: string; maxErrors?: number; canary?: number; ttl?: number }

/** A job as GET /v1/jobs lists it (without its nodes). */
export interface JobSummary {
  id: string
  createdAt: number
  endedAt?: number
  origin?: string
  targets: string[]
  options: JobOptions
  status: 'running' | 'done' | 'stopped' | 'cancelled'
  reason?: string
  method: string
  counts: Record<NodeState, number>
  total: number
}

export interface JobNode {
  name: string
  id: string
  selector?: string
  state: NodeState
  sentAt?: number
  deliveredAt?: number
  endedAt?: number
  exitCode?: number
  error?: { code: string; message: string }
  output?: string
  reason?: string
}

export interface Job extends JobSummary {
  message: { method: string; methodArgs?: string[]; methodTimeout?: number }
  nodes: JobNode[]
}

/** A job's change on /v1/events (`event: job`). */
export interface JobEvent { id: string; status: string; reason?: string; counts: Record<NodeState, number>; node?: { name: string; state: NodeState } }
