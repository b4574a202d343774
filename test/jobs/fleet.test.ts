/**
 * Jobs over a fleet of real processes: a hub, central and seven nodes with different labels
 * (one an older node whose labels central never learns). Each command writes when it started and
 * ended (`date +%s%N`) with its node's tag into one file; the tests read order, overlap and what
 * ran from there.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, editYaml, section } from '../fixtures/cluster'
import { outpost, untilLabels } from './fleet-helpers'

const LABELS: Record<string, Record<string, string> | undefined> = {
  central: { site: 'hq', role: 'hq' },
  s1: { site: 'oslo', role: 'db' },
  s2: { site: 'oslo', role: 'web' },
  s3: { site: 'bergen', role: 'db' },
  s4: { site: 'bergen', role: 'web', decommissioned: 'yes' },
  s5: { site: 'tromso', role: 'db' },
  s6: { site: 'tromso', role: 'test' },
  old: undefined, // sends no heartbeat: central knows its name (the hub's presence), not its labels
}

interface Mark { node: string; what: 'start' | 'end'; at: bigint; run: string }
interface Shown { id: string; status: string; reason?: string; nodes: { name: string; state: string; exitCode?: number; output?: string; reason?: string }[]; counts: Record<string, number>; endedAt?: number }

let c: Cluster
let marks: string
let central: string

/** The command each node runs: marks its start and end in `file`, fails where FAIL lists its tag. */
function command(file: string, sleep: number, fail: string[] = []): string {
  const failing = fail.length === 0 ? '' : `case "$NODE_TAG" in ${fail.join('|')}) exit 7;; esac; `
  return `echo "$NODE_TAG start $(date +%s%N) $$" >> ${file}; sleep ${sleep}; echo "$NODE_TAG end $(date +%s%N) $$" >> ${file}; ${failing}echo "hi from $NODE_TAG"`
}

function read(file: string): Mark[] {
  if (!fs.existsSync(file)) return []
  return fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => {
    const [node, what, at, run] = l.split(' ')
    return { node: node!, what: what as Mark['what'], at: BigInt(at!), run: run! }
  }).sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0))
}

/** Most commands running at once, from the marks. */
function overlap(ms: Mark[]): number {
  let now = 0
  let most = 0
  for (const m of ms) { now += m.what === 'start' ? 1 : -1; most = Math.max(most, now) }
  return most
}

async function job(id: string): Promise<Shown> {
  const r = await outpost(['job', id, '--json', '--config', central])
  assert.is(r.code, 0, r.stderr)
  return JSON.parse(r.stdout) as Shown
}

/** `outpost send … ` as a job, followed to its end: its exit code and the job as it ended. */
async function sendJob(args: string[]): Promise<{ code: number | null; job: Shown; stderr: string; stdout: string }> {
  const r = await outpost(['send', '--json', '--config', central, ...args])
  const lines = r.stdout.trim().split('\n').filter(Boolean)
  assert.ok(lines.length > 0, `no output: ${r.stderr}`)
  return { code: r.code, job: JSON.parse(lines.at(-1)!) as Shown, stderr: r.stderr, stdout: r.stdout }
}

function stateOf(j: Shown): Record<string, string> {
  return Object.fromEntries(j.nodes.map((n) => [n.name, n.state]))
}

test.before(async () => {
  c = await Cluster.create(Object.keys(LABELS).filter((n) => n !== 'central'))
  marks = path.join(c.dir, 'marks')
  fs.mkdirSync(marks)
  central = c.node('central').config
  for (const [name, labels] of Object.entries(LABELS)) {
    editYaml(c.node(name).config, (d) => {
      if (labels !== undefined) section(d, 'node').labels = labels
      else section(d, 'hello').interval = 0
      section(d, 'log').level = 'info'
    })
  }
  await c.startHub()
  for (const name of Object.keys(LABELS)) await c.start(name, true, { NODE_TAG: name })
  await untilLabels(c, (list) => Object.entries(LABELS).every(([n, l]) => l === undefined ? list.some((x) => x.name === n) : list.find((x) => x.name === n)?.labels?.role === l.role))
})

test.after(async () => {
  await c?.destroy()
})

test('fleet - a selector hits exactly the nodes whose labels match; a node with unknown labels is not hit', async () => {
  const file = path.join(marks, 'select')
  const a = await sendJob(['--to', 'role=db,!decommissioned', '--job', 'cli.run', '--', command(file, 0)])
  assert.is(a.code, 0, a.stderr)
  assert.equal(a.job.nodes.map((n) => n.name).sort(), ['s1', 's3', 's5'])
  assert.equal(Object.values(stateOf(a.job)), ['ok', 'ok', 'ok'])
  assert.equal([...new Set(read(file).map((m) => m.node))].sort(), ['s1', 's3', 's5'])
  assert.match(a.job.nodes[0]!.output ?? '', /hi from s\d/)

  // role!=test: every node without role=test whose labels central knows; not s6, not old.
  const b = await sendJob(['--to', 'role!=test', '--job', 'node.ping'])
  assert.equal(b.job.nodes.map((n) => n.name).sort(), ['central', 's1', 's2', 's3', 's4', 's5'])
  // A name pattern needs only the name: old is hit by it.
  const d = await sendJob(['--to', 'o*', '--job', 'node.ping'])
  assert.equal(d.job.nodes.map((n) => n.name), ['old'])
  // Only old would match !decommissioned among these: unknown is not "absent".
  const e = await outpost(['send', '--config', central, '--to', 'o*,!decommissioned', '--job', 'node.ping'])
  assert.is(e.code, 2)
  assert.match(e.stderr, /selector_no_match/)
})

test('fleet - --batch 2 runs at most two at once, and all of them', async () => {
  const file = path.join(marks, 'batch')
  const r = await sendJob(['--to', 'role in (db,web)', '--batch', '2', 'cli.run', '--', command(file, 0.6)])
  assert.is(r.code, 0, r.stderr)
  const ms = read(file)
  assert.equal([...new Set(ms.map((m) => m.node))].sort(), ['s1', 's2', 's3', 's4', 's5'])
  assert.is(ms.filter((m) => m.what === 'start').length, 5)
  assert.is(overlap(ms), 2, JSON.stringify(ms.map((m) => `${m.node} ${m.what}`)))
  assert.is(r.job.status, 'done')
  assert.is(r.job.counts.ok, 5)
})

test('fleet - --max-errors 2 starts no more after the second failure; the rest are skipped and never run', async () => {
  const file = path.join(marks, 'errors')
  const r = await sendJob(['--to', 'role in (db,web)', '--batch', '1', '--max-errors', '2', 'cli.run', '--', command(file, 0.2, ['s2', 's4'])])
  assert.is(r.code, 1)
  assert.equal(stateOf(r.job), { s1: 'ok', s2: 'failed', s3: 'ok', s4: 'failed', s5: 'skipped' })
  assert.is(r.job.status, 'stopped')
  assert.match(r.job.reason ?? '', /max-errors 2/)
  const ms = read(file)
  // One after another, in the job's order: each started after the one before ended.
  assert.equal(ms.map((m) => `${m.node} ${m.what}`), ['s1 start', 's1 end', 's2 start', 's2 end', 's3 start', 's3 end', 's4 start', 's4 end'])
  assert.is(overlap(ms), 1)
})

test('fleet - a canary that fails stops the rest', async () => {
  const file = path.join(marks, 'canary')
  const r = await sendJob(['--to', 'role=db', '--canary', '1', 'cli.run', '--', command(file, 0, ['s1'])])
  assert.is(r.code, 1)
  assert.equal(stateOf(r.job), { s1: 'failed', s3: 'skipped', s5: 'skipped' })
  assert.match(r.job.reason ?? '', /canary s1 ended failed/)
  assert.equal([...new Set(read(file).map((m) => m.node))], ['s1'])
  // A canary that is ok lets the rest go.
  const ok = await sendJob(['--to', 'role=db', '--canary', '1', 'cli.run', '--', command(path.join(marks, 'canary-ok'), 0)])
  assert.is(ok.code, 0, ok.stderr)
  assert.is(ok.job.counts.ok, 3)
})

test('fleet - outpost jobs lists them; outpost job ID shows the matrix with counts', async () => {
  const list = await outpost(['jobs', '--config', central])
  assert.is(list.code, 0, list.stderr)
  assert.match(list.stdout, /ID\s+CREATED\s+METHOD\s+TO\s+STATUS\s+NODES\s+COUNTS/)
  assert.match(list.stdout, /cli\.run\s+role=db\s+done\s+3\s+ok 3/)
  const jobs = JSON.parse((await outpost(['jobs', '--json', '--config', central])).stdout) as { id: string; status: string; reason?: string }[]
  const stopped = jobs.find((j) => j.status === 'stopped' && /max-errors/.test(j.reason ?? ''))!
  const one = await outpost(['job', stopped.id, '--config', central])
  assert.is(one.code, 0, one.stderr)
  assert.match(one.stdout, /NODE\s+STATE\s+EXIT\s+DETAIL/)
  assert.match(one.stdout, /s2\s+failed\s+7/, one.stdout)
  assert.match(one.stdout, /s5\s+skipped\s+-\s+2 nodes failed/)
  assert.match(one.stdout, /5 nodes: ok 2, failed 2, skipped 1/)
  const none = await outpost(['job', '01ARZ3NDEKTSV4RRFFQ69G5FAV', '--config', central])
  assert.is(none.code, 2)
  assert.match(none.stderr, /keeps no job "01ARZ3NDEKTSV4RRFFQ69G5FAV" \(outpost jobs lists them\) \[job_unknown\]/)
})

test('fleet - outpost job ID --cancel skips what has not started; what runs finishes', async () => {
  const file = path.join(marks, 'cancel')
  const started = await outpost(['send', '--config', central, '--to', 'role in (db,web)', '--batch', '1', '--no-wait', 'cli.run', '--', command(file, 0.8)])
  assert.is(started.code, 0, started.stderr)
  const id = started.stdout.trim()
  for (const end = Date.now() + 20_000; read(file).length === 0; await new Promise((r) => setTimeout(r, 25))) assert.ok(Date.now() < end, 'the first node did not start')
  const cancel = await outpost(['job', id, '--cancel', '--config', central])
  assert.is(cancel.code, 0, cancel.stderr)
  assert.match(cancel.stdout, /cancelled \(cancelled by outpost job --cancel\)/)
  const watched = await outpost(['job', id, '--watch', '--config', central])
  assert.is(watched.code, 1, watched.stderr)
  assert.match(watched.stdout, /s1  ok/)
  const j = await job(id)
  assert.is(j.status, 'cancelled')
  assert.is(j.nodes[0]!.state, 'ok')
  assert.equal(j.nodes.slice(1).map((n) => n.state), ['skipped', 'skipped', 'skipped', 'skipped'])
  assert.equal(read(file).filter((m) => m.what === 'start').map((m) => m.node), ['s1'])

  // op.cancel of the job's id at central does the same.
  const file2 = path.join(marks, 'op-cancel')
  const second = (await outpost(['send', '--config', central, '--to', 'role in (db,web)', '--batch', '1', '--no-wait', 'cli.run', '--', command(file2, 0.8)])).stdout.trim()
  for (const end = Date.now() + 20_000; read(file2).length === 0; await new Promise((r) => setTimeout(r, 25))) assert.ok(Date.now() < end, 'the first node did not start')
  const op = await outpost(['send', '--config', central, '--to', 'central', 'op.cancel', '--', second])
  assert.is(op.code, 0, op.stderr)
  assert.match(op.stdout, /"cancelled":"[0-9A-Z]{26}","job":true/)
  const j2 = await job(second)
  assert.is(j2.status, 'cancelled')
  assert.match(j2.reason ?? '', /op\.cancel from central/)
  assert.equal(j2.nodes.slice(1).map((n) => n.state), ['skipped', 'skipped', 'skipped', 'skipped'])
})

test('fleet - a node offline longer than --ttl ends expired (exit 3)', async () => {
  await c.node('s6').proc!.stop('SIGKILL')
  const r = await sendJob(['--to', 'role=test', '--ttl', '1', '--job', 'node.ping'])
  assert.is(r.code, 3, r.stderr)
  assert.equal(stateOf(r.job), { s6: 'expired' })
  await c.start('s6', true, { NODE_TAG: 's6' })
})

test('fleet - central SIGKILLed mid-job resumes it after a restart; nothing runs twice', async () => {
  const file = path.join(marks, 'restart')
  const started = await outpost(['send', '--config', central, '--to', 'role in (db,web)', '--batch', '1', '--no-wait', 'cli.run', '--', command(file, 0.5)])
  assert.is(started.code, 0, started.stderr)
  const id = started.stdout.trim()
  assert.match(id, /^[0-9A-Z]{26}$/)
  // Kill central while the job is under way: two nodes have ended, the third has started.
  for (const end = Date.now() + 20_000; ; await new Promise((r) => setTimeout(r, 50))) {
    const ms = read(file)
    if (ms.filter((m) => m.what === 'end').length >= 2 && ms.filter((m) => m.what === 'start').length >= 3) break
    assert.ok(Date.now() < end, `the job did not get going: ${JSON.stringify(await job(id))}`)
  }
  await c.node('central').proc!.stop('SIGKILL')
  await new Promise((r) => setTimeout(r, 1500))
  await c.start('central', true, { NODE_TAG: 'central' })
  let last: Shown | undefined
  for (const end = Date.now() + 30_000; ; await new Promise((r) => setTimeout(r, 200))) {
    last = await job(id)
    if (last.endedAt !== undefined) break
    assert.ok(Date.now() < end, `the job did not end after the restart: ${JSON.stringify(last)}`)
  }
  assert.is(last.status, 'done', JSON.stringify(last))
  assert.is(last.counts.ok, 5, JSON.stringify(last))
  const starts = read(file).filter((m) => m.what === 'start').map((m) => m.node)
  assert.equal(starts.sort(), ['s1', 's2', 's3', 's4', 's5'], 'each node ran once')
})

test.run()
