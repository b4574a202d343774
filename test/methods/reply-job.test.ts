import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import replyJob from '../../methods/reply-job'
import { defaultConfig } from '../../src/config'
import { JobStore } from '../../src/jobs/store'
import type { MethodContext } from '../../src/method'
import type { Envelope } from '../../src/wire/envelope'
import { rejectsCode } from '../helpers'

const JOB = '01J00000000000000000000JAB'
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-reply-job-'))
test.after(() => fs.rmSync(root, { recursive: true, force: true }))

function ctx(dataDir: string, args: string[], fields: Partial<Envelope> = {}): MethodContext {
  const config = defaultConfig()
  config.dataDir = dataDir
  const env: Envelope = { id: '01J00000000000000000000REP', toNode: 'central', fromNode: 's1', method: 'reply.job', inReplyTo: '01J00000000000000000000REQ', final: true, createdAt: Date.now(), ...fields }
  return { node: 'central', env, args, config, dataDir, signal: new AbortController().signal, log: () => {} }
}

test('reply.job - keeps a final reply once, as the job store reads it; landed says so; chunks are not kept', async () => {
  const dataDir = fs.mkdtempSync(path.join(root, 'd'))
  const first = ctx(dataDir, [JOB], { data: 'hello\n', exitCode: 3 })
  await replyJob.run(ctx(dataDir, [JOB], { final: false, data: 'chunk' }))
  assert.not.ok(await replyJob.landed(first))
  await replyJob.run(first)
  assert.ok(await replyJob.landed(first))
  await replyJob.run(first) // run again after a crash: not kept twice
  const kept = new JobStore(dataDir).replies(JOB)
  assert.is(kept.size, 1)
  const r = kept.get('01J00000000000000000000REQ')!
  assert.equal([r.node, r.exitCode, r.output], ['s1', 3, 'hello\n'])
  assert.is(fs.readFileSync(path.join(dataDir, 'jobs', `${JOB}.replies`), 'utf8').split('\n').filter(Boolean).length, 1)
})

test('reply.job - refuses a job id that is not a ULID (it names a file)', async () => {
  const dataDir = fs.mkdtempSync(path.join(root, 'd'))
  await rejectsCode(replyJob.run(ctx(dataDir, ['../../etc/x'])), 'method_args')
  await rejectsCode(replyJob.run(ctx(dataDir, [])), 'method_args')
  assert.not.ok(fs.existsSync(path.join(dataDir, 'jobs')))
})

test.run()
