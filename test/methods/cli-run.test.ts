import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import cliRun, { KILL_GRACE_MS, truncationMark } from '../../methods/cli-run'
import { defaultConfig } from '../../src/config'
import { isOutpostError } from '../../src/errors'
import { Stopper } from '../../src/lib/stopper'
import type { MethodContext } from '../../src/method'
import { runMethod, stopGraceMs } from '../../src/run'
import { leavesSetsid, procStat, untilGone } from '../fixtures/procs'
import { rejectsCode } from '../helpers'

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-cli-run-'))
/** Process groups a test started; killed at the end whatever happened. */
const groups = new Set<number>()
/** Processes a test started outside any group it knows; killed at the end too. */
const strays = new Set<number>()

test.after(() => {
  for (const pgid of groups) {
    try { process.kill(-pgid, 'SIGKILL') } catch { /* gone */ }
  }
  for (const pid of strays) {
    try { process.kill(pid, 'SIGKILL') } catch { /* gone */ }
  }
  fs.rmSync(tmp, { recursive: true, force: true })
})

function makeCtx(args: string[], opts: { outputCap?: number; signal?: AbortSignal } = {}): MethodContext {
  const config = defaultConfig()
  config.dataDir = tmp
  if (opts.outputCap !== undefined) config.methods.outputCap = opts.outputCap
  return {
    node: 'ship1',
    env: { id: '01J0000000000000000000000A', toNode: 'ship1', fromNode: 'central', method: 'cli.run', methodArgs: args, createdAt: Date.now() },
    args,
    config,
    dataDir: tmp,
    signal: opts.signal ?? new AbortController().signal,
    log: () => {},
  }
}

const text = (v: Uint8Array | string | undefined): string => (v === undefined ? '' : typeof v === 'string' ? v : Buffer.from(v).toString('utf8'))
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Fail instead of hanging the whole file when a run never ends. */
async function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms) })
  try {
    return await Promise.race([p, limit])
  } finally {
    clearTimeout(timer)
  }
}

/** Live (non-zombie) members of a process group, as the OS reports them. */
function groupMembers(pgid: number): string[] {
  const out = execFileSync('ps', ['-eo', 'pid=,pgid=,stat=,args='], { encoding: 'utf8' })
  return out.split('\n').map((l) => l.trim()).filter((l) => {
    const [, g, stat] = l.split(/\s+/)
    return g === String(pgid) && stat !== undefined && !stat.startsWith('Z')
  })
}

async function waitForPid(file: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const s = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : ''
    if (/^\d+$/.test(s)) return Number(s)
    await sleep(20)
  }
  throw new Error(`no pid in ${file}`)
}

/** After a kill, give the kernel a moment to finish off the group; returns who is left. */
async function survivors(pgid: number): Promise<string[]> {
  let left = groupMembers(pgid)
  for (let i = 0; i < 20 && left.length > 0; i++) {
    await sleep(50)
    left = groupMembers(pgid)
  }
  return left
}

test('cli.run - one string runs through the shell: stdout, stderr and a non-zero exit code are a result', async () => {
  const r = await cliRun.run(makeCtx(['echo hi; echo err >&2; exit 3']))
  assert.ok(r.data instanceof Uint8Array)
  assert.is(text(r.data), 'hi\n')
  assert.is(text(r.stderr), 'err\n')
  assert.is(r.exitCode, 3)
})

test('cli.run - several args run argv directly, without a shell', async () => {
  const r = await cliRun.run(makeCtx(['printf', '%s', 'a b']))
  assert.is(text(r.data), 'a b')
  assert.is(r.exitCode, 0)
  // No shell: metacharacters are plain arguments.
  const r2 = await cliRun.run(makeCtx(['echo', '$HOME;', 'x>y']))
  assert.is(text(r2.data), '$HOME; x>y\n')
})

test('cli.run - the shell comes from methods.shell', async () => {
  const ctx = makeCtx(['echo "$0"'])
  ctx.config.methods.shell = '/bin/bash'
  const r = await cliRun.run(ctx)
  assert.is(text(r.data), '/bin/bash\n')
})

test('cli.run - a command killed by a signal reports 128 + the signal number', async () => {
  const r = await cliRun.run(makeCtx(['kill -KILL $$']))
  assert.is(r.exitCode, 128 + 9)
})

test('cli.run - no args is method_args', async () => {
  await rejectsCode(cliRun.run(makeCtx([])), 'method_args', 'no command')
})

test('cli.run - a program that does not exist is method_failed naming it', async () => {
  await rejectsCode(cliRun.run(makeCtx(['/nonexistent/outpost-no-such-prog', 'x'])), 'method_failed', '/nonexistent/outpost-no-such-prog', 'ENOENT')
  // Through the shell the shell itself reports it: a result with exit code 127.
  const r = await cliRun.run(makeCtx(['/nonexistent/outpost-no-such-prog']))
  assert.is(r.exitCode, 127)
})

test('cli.run - a file that is not executable is method_failed', async () => {
  const file = path.join(tmp, 'not-executable')
  fs.writeFileSync(file, 'echo no\n', { mode: 0o644 })
  await rejectsCode(cliRun.run(makeCtx([file, 'x'])), 'method_failed', file, 'EACCES')
})

test('cli.run - an argument or environment too long for the system (E2BIG) is method_failed showing 200 characters of the command and its size', async () => {
  const huge = 'x'.repeat(300_000)
  const cases = [
    { args: [`echo ${huge}`], command: `/bin/sh -c echo ${huge}` },
    { args: ['echo', huge], command: `echo ${huge}` },
    { args: [`--env=BIG=${huge}`, '--', 'true'], command: '/bin/sh -c true' },
  ]
  for (const { args, command } of cases) {
    const err = await cliRun.run(makeCtx(args)).then(() => undefined, (e: unknown) => e)
    assert.ok(isOutpostError(err, 'method_failed'), `expected method_failed, got ${String(err).slice(0, 300)}`)
    assert.ok(err.message.length < 800, `the message is ${err.message.length} characters long: ${err.message.slice(0, 300)}…`)
    assert.ok(err.message.includes('E2BIG'), err.message)
    const shown = command.length > 200 ? `${JSON.stringify(command.slice(0, 200))}… (${command.length} bytes)` : JSON.stringify(command)
    assert.ok(err.message.includes(shown), err.message)
  }
})

test('cli.run - output past outputCap is dropped with one mark, per stream', async () => {
  const r = await cliRun.run(makeCtx(['printf 0123456789abcdef; printf ABCDEFGHIJKLMNOP >&2'], { outputCap: 10 }))
  assert.is(text(r.data), '0123456789' + truncationMark(10))
  assert.is(text(r.stderr), 'ABCDEFGHIJ' + truncationMark(10))
  assert.ok(text(r.data).includes('[outpost: output truncated at 10 bytes]'))
  const exact = await cliRun.run(makeCtx(['printf 0123456789'], { outputCap: 10 }))
  assert.is(text(exact.data), '0123456789')
})

test('cli.run - 5 MiB on each stream completes, capped at 1 MiB by default', async () => {
  const cmd = 'head -c 5242880 /dev/zero; head -c 5242880 /dev/zero >&2; echo done >&2; exit 0'
  const r = await within(20_000, cliRun.run(makeCtx([cmd])), '5 MiB run')
  const cap = 1024 * 1024
  const mark = Buffer.from(truncationMark(cap))
  assert.is(r.exitCode, 0)
  assert.is(r.data?.length, cap + mark.length)
  assert.is(r.stderr?.length, cap + mark.length)
  assert.ok(Buffer.from(r.data as Uint8Array).subarray(cap).equals(mark))
})

test('cli.run - a background child holding the pipes does not keep the result waiting', async () => {
  const r = await within(5000, cliRun.run(makeCtx(['sleep 30 & echo $$'])), 'background child run')
  const pgid = Number(text(r.data).trim())
  groups.add(pgid)
  assert.is(r.exitCode, 0)
  process.kill(-pgid, 'SIGKILL')
})

test('cli.run - an aborted signal before the start runs nothing', async () => {
  const ac = new AbortController()
  ac.abort()
  const marker = path.join(tmp, 'ran')
  await rejectsCode(cliRun.run(makeCtx([`touch ${marker}`], { signal: ac.signal })), 'method_timeout')
  await sleep(100)
  assert.not.ok(fs.existsSync(marker))
})

/** Start cmd (which must first write $$ to pidFile), abort after 300 ms, return the rejection time and pgid. */
async function abortAfter300(cmd: string, pidFile: string, minMembers: number): Promise<{ pgid: number; ms: number }> {
  const ac = new AbortController()
  const run = cliRun.run(makeCtx([cmd], { signal: ac.signal }))
  run.catch(() => {}) // observed below
  const pgid = await waitForPid(pidFile)
  groups.add(pgid)
  await sleep(300)
  const before = groupMembers(pgid)
  assert.ok(before.length >= minMembers, `expected at least ${minMembers} processes in group ${pgid} before the abort, saw:\n${before.join('\n')}`)
  const t0 = Date.now()
  ac.abort()
  await within(KILL_GRACE_MS + 5000, rejectsCode(run, 'method_timeout'), 'aborted run')
  return { pgid, ms: Date.now() - t0 }
}

test('cli.run - abort kills the whole process group, background children included', async () => {
  const pidFile = path.join(tmp, 'pid-1')
  const { pgid } = await abortAfter300(`echo $$ > ${pidFile}; sleep 100 & sleep 100 & (sleep 100 &); wait`, pidFile, 4)
  const left = await survivors(pgid)
  assert.equal(left, [], `processes of group ${pgid} survived the abort:\n${left.join('\n')}`)
})

test('cli.run - abort kills children that ignore SIGTERM (SIGKILL after the grace period)', async () => {
  const pidFile = path.join(tmp, 'pid-2')
  // The first two sleeps take TERM; the shell, the third sleep and the orphaned grandchild ignore it.
  const cmd = `echo $$ > ${pidFile}; sleep 100 & sleep 100 & trap "" TERM; (sleep 100 &); sleep 100; wait`
  const { pgid, ms } = await abortAfter300(cmd, pidFile, 5)
  assert.ok(ms >= KILL_GRACE_MS - 100, `SIGKILL came after ${ms} ms, before the ${KILL_GRACE_MS} ms grace`)
  const left = await survivors(pgid)
  assert.equal(left, [], `processes of group ${pgid} survived the abort:\n${left.join('\n')}`)
})

test('cli.run - at methodTimeout a child that left for a session of its own (setsid) is killed too', async () => {
  const pidFile = path.join(tmp, 'pid-setsid')
  const stop = new Stopper()
  const run = runMethod(cliRun, makeCtx([leavesSetsid(pidFile)], { signal: stop.signal }), stop, { seconds: 2, graceMs: stopGraceMs(KILL_GRACE_MS / 1000) })
  const pid = await waitForPid(pidFile)
  strays.add(pid)
  const before = procStat(pid)
  assert.ok(before !== undefined && before.session === pid && before.pgrp === pid, `the sleeper ${pid} should lead a session of its own: ${JSON.stringify(before)}`)
  const r = await within(KILL_GRACE_MS + 10_000, run, 'timed-out run')
  assert.is(r.error?.code, 'method_timeout', JSON.stringify(r))
  assert.ok(await untilGone(pid), `the setsid'd sleeper ${pid} survived methodTimeout: ${JSON.stringify(procStat(pid))}`)
})

test('cli.run - finished runs leave no timers, pipes or child handles behind', async () => {
  // Handles closed by earlier tests finish closing on the next loop turn.
  await sleep(20)
  const before = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap')
  await cliRun.run(makeCtx(['echo a; echo b >&2']))
  await cliRun.run(makeCtx(['sleep 30 & echo $$'])).then((r) => { const g = Number(text(r.data).trim()); groups.add(g); process.kill(-g, 'SIGKILL') })
  const ac = new AbortController()
  const p = cliRun.run(makeCtx(['sleep 100'], { signal: ac.signal }))
  setTimeout(() => ac.abort(), 100)
  await rejectsCode(p, 'method_timeout')
  await sleep(20)
  const after = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap')
  assert.equal(after, before)
})

test.run()
