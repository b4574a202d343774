/**
 * Jobs through the local APIs: the socket's job ops and the HTTP API's /v1/jobs routes share
 * what they answer (a job as JSON, its counts) and how a request makes one.
 *
 *   {"op":"job.create","message":{…},"options":{batch,maxErrors,canary,ttl},"allowUnknown"?,"watch"?}
 *   {"op":"jobs"}   {"op":"job","id":ID,"watch"?}   {"op":"job.cancel","id":ID}
 *   ─▶ {"job":{…}} (watch: again at each change) … {"done":true} once it ended; {"jobs":[…]}
 */
import { OutpostError } from '../errors'
import { parseMessage } from '../wire/envelope'
import { checkOptions, counts, type JobEvent, type JobRunner } from './runner'
import type { JobRecord } from './store'

/** A job as the APIs show it: its record and its counts. */
export function jobJson(job: JobRecord): Record<string, unknown> {
  return { ...job, method: job.message.method, counts: counts(job), total: job.nodes.length }
}

/** A job in a list: without its nodes. */
export function jobSummary(job: JobRecord): Record<string, unknown> {
  const { nodes: _n, message: _m, ...rest } = jobJson(job)
  return rest
}

/** Make a job from a request's body: {message, options?, allowUnknown?}. */
export function createFrom(jobs: JobRunner, body: Record<string, unknown>): JobRecord {
  if (body.message === undefined) throw new OutpostError('api_bad_request', 'job: "message" is required: the message each node gets, with its receivers in toNodes (names and selectors)')
  const draft = parseMessage(body.message, 'message')
  const options = body.options === undefined ? {} : body.options
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new OutpostError('api_bad_request', 'job: "options" must be an object {batch, maxErrors, canary, ttl}')
  if (body.allowUnknown !== undefined && typeof body.allowUnknown !== 'boolean') throw new OutpostError('api_bad_request', 'job: allowUnknown must be true or false')
  return jobs.create(draft, checkOptions(options as Record<string, unknown>), body.allowUnknown === true)
}

/** Follow job `id`: `fn` with each change, `end` once it ended (at once if it has). Returns the unsubscribe. */
export function follow(jobs: JobRunner, id: string, fn: (job: JobRecord) => void, end: () => void): () => void {
  const job = jobs.get(id)
  fn(job)
  if (job.endedAt !== undefined) { end(); return () => {} }
  const stop = jobs.watch((ev: JobEvent) => {
    if (ev.job.id !== id) return
    fn(ev.job)
    if (ev.job.endedAt !== undefined) { stop(); end() }
  })
  return stop
}

/**
 * Answer a socket request about jobs; false when `req.op` is not one. `write` sends a line,
 * `finished` ends the request, `cleanups` run when the client goes.
 */
export function jobRequest(jobs: JobRunner | undefined, req: Record<string, unknown>, write: (o: unknown) => void, cleanups: (() => void)[], finished: () => void): boolean {
  if (typeof req.op !== 'string' || !['job.create', 'jobs', 'job', 'job.cancel'].includes(req.op)) return false
  if (jobs === undefined) throw new OutpostError('api_bad_request', 'api: this node runs no jobs')
  const idOf = (): string => {
    if (typeof req.id !== 'string' || req.id === '') throw new OutpostError('api_bad_request', `api: ${String(req.op)} needs "id", a job id`)
    return req.id
  }
  const watch = (id: string): void => {
    cleanups.push(follow(jobs, id, (job) => write({ job: jobJson(job) }), () => { write({ done: true }); finished() }))
  }
  switch (req.op) {
    case 'jobs':
      write({ jobs: jobs.list().map(jobSummary) })
      break
    case 'job.create': {
      const job = createFrom(jobs, req)
      if (req.watch === true) return watch(job.id), true
      write({ job: jobJson(job) })
      break
    }
    case 'job':
      if (req.watch === true) return watch(idOf()), true
      write({ job: jobJson(jobs.get(idOf())) })
      break
    case 'job.cancel':
      write({ job: jobJson(jobs.cancel(idOf(), typeof req.by === 'string' ? req.by : 'the local API')) })
      break
  }
  finished()
  return true
}
