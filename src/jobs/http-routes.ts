/**
 * The HTTP API's job routes (api/http.ts hands them every path under /v1/jobs):
 *
 *   POST /v1/jobs              {message, options?, allowUnknown?} ─▶ 201 {job}
 *   GET  /v1/jobs              ─▶ {jobs: [summary…]} newest first
 *   GET  /v1/jobs?node=NAME    ─▶ the same, only jobs that have that node, each with its `node`
 *   GET  /v1/jobs/ID           ─▶ {job} with its nodes and counts
 *   POST /v1/jobs/ID/cancel    ─▶ {job}: nodes that have not started are skipped
 *
 * Changes to jobs go out on GET /v1/events as `event: job` (jobEventFrame).
 */
import type http from 'node:http'
import { OutpostError } from '../errors'
import { createFrom, jobJson, jobSummary } from './requests'
import type { JobEvent, JobRunner } from './runner'
import type { JobRecord } from './store'

export interface RouteKit {
  readBody(req: http.IncomingMessage, res: http.ServerResponse): Promise<string>
  json(res: http.ServerResponse, status: number, obj: unknown): void
  /** Refuses a method the route does not take (api_method_not_allowed). */
  only(...methods: string[]): void
}

export async function jobRoute(jobs: JobRunner | undefined, route: string, req: http.IncomingMessage, res: http.ServerResponse, kit: RouteKit): Promise<void> {
  if (jobs === undefined) throw new OutpostError('api_not_found', 'api: this node runs no jobs')
  if (route === '/v1/jobs') {
    kit.only('GET', 'POST')
    if (req.method === 'GET') {
      const node = new URL(req.url ?? '/', 'http://localhost').searchParams.get('node')
      if (node === null || node === '') return kit.json(res, 200, { jobs: jobs.list().map(jobSummary) })
      return kit.json(res, 200, { jobs: jobs.list().flatMap((j) => nodeOf(j, node)) })
    }
    const body = await kit.readBody(req, res)
    let value: unknown
    try {
      value = JSON.parse(body)
    } catch (err) {
      throw new OutpostError('api_bad_request', `api: the request body is not JSON (${(err as Error).message})`)
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new OutpostError('api_bad_request', 'api: POST /v1/jobs takes {"message": {…}, "options": {…}}')
    return kit.json(res, 201, { job: jobJson(createFrom(jobs, value as Record<string, unknown>)) })
  }
  const m = /^\/v1\/jobs\/([^/]+)(\/cancel)?$/.exec(route)
  if (m === null) throw new OutpostError('api_not_found', `api: no route ${route} (GET /v1/jobs, GET /v1/jobs/ID, POST /v1/jobs, POST /v1/jobs/ID/cancel)`)
  if (m[2] !== undefined) {
    kit.only('POST')
    return kit.json(res, 200, { job: jobJson(jobs.cancel(m[1]!, 'the HTTP API')) })
  }
  kit.only('GET')
  return kit.json(res, 200, { job: jobJson(jobs.get(m[1]!)) })
}

/** Job `j` as listed for one node (GET /v1/jobs?node=NAME): its summary and that node's row; none if it has not. */
function nodeOf(j: JobRecord, name: string): Record<string, unknown>[] {
  const n = j.nodes.find((x) => x.name === name)
  if (n === undefined) return []
  const { output: _o, ...row } = n
  return [{ ...jobSummary(j), node: row }]
}

/** A job's change as a server-sent event. */
export function jobEventFrame(ev: JobEvent): string {
  const { job, node } = ev
  const data = { id: job.id, status: job.status, ...(job.reason !== undefined ? { reason: job.reason } : {}), counts: jobJson(job).counts, ...(node !== undefined ? { node: { name: node.name, state: node.state } } : {}) }
  return `event: job\ndata: ${JSON.stringify(data)}\n\n`
}
