/**
 * The methodTimeout of unary runs on one shared timer (src/run-deadlines.ts): a run held up among
 * thousands that ended is still stopped at its own deadline, runs of other lengths keep theirs,
 * and once nothing runs no timer is left to hold the process.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { RunDeadlines } from '../src/run-deadlines'
import { Stopper } from '../src/lib/stopper'
import { runMethod } from '../src/run'
import type { Method, MethodContext } from '../src/method'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length

test('run deadlines - a run among thousands that ended is stopped at its own deadline, the others never', async () => {
  const d = new RunDeadlines()
  const ended: Stopper[] = []
  for (let i = 0; i < 3000; i++) {
    const s = new Stopper()
    d.disarm(d.arm(s, 'test.quick', 0.05))
    ended.push(s)
  }
  const stuck = new Stopper()
  d.arm(stuck, 'test.stuck', 0.05)
  const longer = new Stopper()
  const l = d.arm(longer, 'test.longer', 0.4)
  for (let i = 0; i < 3000; i++) d.disarm(d.arm(new Stopper(), 'test.quick', 0.05))
  await sleep(200)
  assert.ok(stuck.aborted, 'the stuck run is stopped')
  assert.match(String((stuck.reason as Error).message), /test\.stuck ran past its methodTimeout of 0\.05 s/)
  assert.is((stuck.reason as { code?: string }).code, 'method_timeout')
  assert.not.ok(longer.aborted, 'a longer methodTimeout is not reached yet')
  assert.ok(ended.every((s) => !s.aborted), 'runs that ended are not stopped')
  d.disarm(l)
  assert.is(timers(), 0, 'nothing runs: no timer left')
  // And the next run after that has its deadline again.
  const next = new Stopper()
  d.arm(next, 'test.next', 0.05)
  await sleep(150)
  assert.ok(next.aborted, 'a run armed after the timer was cleared is stopped too')
})

test('run deadlines - a unary method that never settles ends as method_timeout; the process is not held after', async () => {
  const hang: Method = { name: 'test.hang', kind: 'unary', summary: 'never ends', run: () => new Promise(() => {}) }
  const quick: Method = { name: 'test.quick', kind: 'unary', summary: 'ends', run: async () => ({ data: 'ok' }) }
  const ctx = {} as MethodContext
  // The stopped method's grace timer does not hold the process (its own work would): this does, meanwhile.
  const hold = setInterval(() => {}, 1000)
  const results = await Promise.all([
    runMethod(hang, ctx, new Stopper(), { seconds: 0.1, graceMs: 50 }),
    ...Array.from({ length: 100 }, () => runMethod(quick, ctx, new Stopper(), { seconds: 0.1, graceMs: 50 })),
  ])
  clearInterval(hold)
  assert.is(results[0]!.error?.code, 'method_timeout')
  assert.ok(results.slice(1).every((r) => r.data === 'ok' && r.error === undefined))
  await sleep(10)
  assert.is(timers(), 0, 'no timer left behind')
})

test('run deadlines - a methodTimeout that is not a number stops the run at once, as a timer of that delay did', async () => {
  // setTimeout takes NaN as 1 ms; the shared timer armed nothing for it, and the run went on for ever.
  const hang: Method = { name: 'test.hang', kind: 'unary', summary: 'never ends', run: () => new Promise(() => {}) }
  const hold = setInterval(() => {}, 1000)
  let giveUp: NodeJS.Timeout | undefined
  const result = await Promise.race([
    runMethod(hang, {} as MethodContext, new Stopper(), { seconds: NaN, graceMs: 0 }),
    new Promise<{ error: { code: string } }>((resolve) => { giveUp = setTimeout(resolve, 1000, { error: { code: 'still running' } }) }),
  ])
  clearTimeout(giveUp)
  clearInterval(hold)
  assert.is(result.error?.code, 'method_timeout')
  await sleep(10)
  assert.is(timers(), 0, 'no timer left behind')
})

test('run deadlines - runs that ended, each with a methodTimeout of its own, are not held while a long one runs; both ends still fire', async () => {
  const d = new RunDeadlines()
  const long = new Stopper()
  const l = d.arm(long, 'test.long', 86_400)
  // A sender giving each message its own methodTimeout: every run ends at once.
  for (let i = 0; i < 10_000; i++) d.disarm(d.arm(new Stopper(), 'test.quick', 100 + i))
  assert.ok(d.held <= 2, `${d.held} deadlines held for runs that ended`)
  // Lengths interleaved: a stuck run of each is still stopped at its deadline.
  const a = new Stopper()
  const b = new Stopper()
  d.arm(a, 'test.a', 0.05)
  for (let i = 0; i < 100; i++) d.disarm(d.arm(new Stopper(), 'test.quick', 0.06 + i / 1000))
  d.arm(b, 'test.b', 0.08)
  for (let i = 0; i < 100; i++) d.disarm(d.arm(new Stopper(), 'test.quick', 0.05))
  await sleep(250)
  assert.ok(a.aborted && b.aborted, 'both stuck runs are stopped')
  assert.not.ok(long.aborted)
  d.disarm(l)
  assert.is(d.held, 0)
  assert.is(timers(), 0, 'nothing runs: no timer left')
})

test('run deadlines - outpost call --timeout takes a number of seconds; anything else is a usage error, not a run without a deadline', () => {
  const bin = path.join(__dirname, '..', 'bin', 'outpost.cjs')
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-call-timeout-'))
  const env = { ...process.env }
  delete env.OUTPOST_CONFIG
  delete env.CONFIG
  const call = (...args: string[]) => spawnSync(process.execPath, [bin, 'call', ...args], { cwd, env, encoding: 'utf8', timeout: 20_000 })
  const bad = call('--timeout', 'abc', 'cli.run', '--', 'sleep', '30')
  assert.is(bad.status, 2, `exit code (stderr: ${bad.stderr})`)
  assert.match(bad.stderr, /--timeout must be a number of seconds, got "abc"/)
  const timedOut = call('--timeout', '0.2', 'cli.run', '--', 'sleep', '30')
  assert.match(timedOut.stderr, /method_timeout|methodTimeout of 0\.2 s/)
  fs.rmSync(cwd, { recursive: true, force: true })
})

test.run()
