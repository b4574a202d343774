/**
 * reply.job: the reply method of a job's messages (src/jobs/). Central keeps each final reply
 * of a job's node as one JSON line in `<dataDir>/jobs/<job id>.replies`, written and synced
 * before the reply counts as handled: a reply central acknowledged is never lost to a crash,
 * and the job picks it up again when central restarts (src/jobs/store.ts reads the file).
 *
 *   {"id":<request id>,"node":<who answered>,"at":<ms>,"exitCode"?,"error"?,"output"?}
 *
 * Stream chunks before the final reply are not kept (the job shows the node as running).
 */
import fs from 'node:fs'
import path from 'node:path'
import { OutpostError } from '../src/errors'
import type { MethodContext, UnaryMethod } from '../src/method'
import type { Envelope } from '../src/wire/envelope'

/** Output kept per node in the job's record. */
const MAX_OUTPUT = 4096
const JOB_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/

/** The replies file of job `id` (a ULID, checked: it names a file). */
export function repliesFile(dataDir: string, id: string): string {
  if (!JOB_ID.test(id)) throw new OutpostError('method_args', `reply.job takes a job id (a ULID), got ${JSON.stringify(id.slice(0, 40))}`)
  return path.join(dataDir, 'jobs', `${id}.replies`)
}

function text(v: Uint8Array | string | undefined): string | undefined {
  if (v === undefined || v.length === 0) return undefined
  const s = typeof v === 'string' ? v : Buffer.from(v).toString('utf8')
  return s.length > MAX_OUTPUT ? `${s.slice(0, MAX_OUTPUT)}…` : s
}

function lineOf(env: Envelope, at: number): string {
  const out = text(env.data)
  const err = text(env.stderr)
  return JSON.stringify({
    id: env.inReplyTo, node: env.fromNode, at,
    ...(env.exitCode !== undefined ? { exitCode: env.exitCode } : {}),
    ...(env.error !== undefined ? { error: env.error } : {}),
    ...(out !== undefined ? { output: out } : {}),
    ...(err !== undefined ? { stderr: err } : {}),
  }) + '\n'
}

function alreadyKept(file: string, id: string): boolean {
  try {
    return fs.readFileSync(file, 'utf8').includes(`{"id":${JSON.stringify(id)},`)
  } catch {
    return false
  }
}

export default {
  name: 'reply.job',
  kind: 'unary',
  sink: true,
  summary: "keeps a job's final replies in <dataDir>/jobs/<job>.replies (central's jobs)",
  async run(ctx: MethodContext) {
    const env = ctx.env
    if (env.final === false) return {}
    const file = repliesFile(ctx.dataDir, ctx.args[0] ?? '')
    if (env.inReplyTo === undefined || alreadyKept(file, env.inReplyTo)) return {}
    await fs.promises.mkdir(path.dirname(file), { recursive: true })
    // Appended and synced without holding up the event loop: other replies go on meanwhile.
    const fh = await fs.promises.open(file, 'a', 0o600)
    try {
      await fh.appendFile(lineOf(env, Date.now()))
      await fh.datasync()
    } finally {
      await fh.close()
    }
    return {}
  },
  async landed(ctx: MethodContext) {
    return ctx.env.inReplyTo !== undefined && alreadyKept(repliesFile(ctx.dataDir, ctx.args[0] ?? ''), ctx.env.inReplyTo)
  },
} satisfies UnaryMethod
