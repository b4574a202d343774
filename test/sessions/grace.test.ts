/**
 * A shell across a hub outage: the hub SIGKILLed mid-session and started again within
 * sessions.grace, the session goes on with nothing typed during the outage lost; down past
 * the grace, the session ends (session_lost, exit 1) and the remote processes are gone,
 * background jobs included (checked in /proc).
 */
import fs from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster } from '../fixtures/cluster'
import { eventually, readOr } from '../helpers'
import { Term } from './term'

const GRACE = 8
const alive = (pid: number): boolean => {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

test('shell - survives a hub restart within sessions.grace without losing keys or output; past it the session ends and the remote processes are killed', async () => {
  const c = await Cluster.create(['ship1'], { sessions: { grace: GRACE } })
  let t: Term | undefined
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    t = new Term(['shell', 'ship1', '--config', c.node('central').config, '--', 'sh'])
    await t.waitFor(/[#$] $/)
    // The shell and a background job (its own process group under job control).
    t.write('sleep 1000 & echo "pids=$$,$!"\r')
    await t.waitFor(/pids=(\d+),(\d+)/)
    const [, shellPid, bgPid] = /pids=(\d+),(\d+)/.exec(t.text())!.map(Number) as [number, number, number]
    assert.ok(alive(shellPid) && alive(bgPid))

    // Outage within the grace: keys typed meanwhile are not lost.
    await c.hub!.stop('SIGKILL')
    let at = t.out.length
    t.write('echo "typed during the outage: $((6*7))"\r')
    await new Promise((r) => setTimeout(r, 1200))
    assert.not.match(t.text(at), /outage: 42/)
    await c.startHub()
    await t.waitFor(/typed during the outage: 42/, at, 15_000)
    at = t.out.length
    t.write('seq 1 2000 | tail -n 1\r')
    await t.waitFor(/\n2000\n/, at)
    assert.ok(alive(shellPid) && alive(bgPid))

    // Past the grace: the session ends on both sides.
    await c.hub!.stop('SIGKILL')
    const code = await Promise.race([t.exited, new Promise<string>((r) => setTimeout(() => r('still running'), (GRACE + 10) * 1000))])
    assert.is(code, 1)
    assert.match(t.text(), /session_lost/)
    const end = Date.now() + 8000
    while ((alive(shellPid) || alive(bgPid)) && Date.now() < end) await new Promise((r) => setTimeout(r, 100))
    assert.not.ok(alive(shellPid), 'the remote shell is gone')
    assert.not.ok(alive(bgPid), 'its background job is gone')
    // The node that ran it recorded the session in its audit log.
    const audit = await eventually('the audit line of the session', () => {
      const lines = readOr(`${c.node('ship1').dataDir}/audit.log`).split('\n').filter((l) => l.includes('"event":"session"'))
      return lines.length > 0 ? lines : undefined
    })
    assert.is(audit.length, 1)
    const line = JSON.parse(audit[0]!) as { fromNode: string; method: string; error: { code: string }; bytesIn: number; bytesOut: number; ms: number }
    assert.is(line.fromNode, 'central')
    assert.is(line.method, 'session.open')
    assert.is(line.error.code, 'session_lost')
    assert.ok(line.bytesIn > 40 && line.bytesOut > 40 && line.ms > GRACE * 1000)
  } finally {
    t?.kill()
    await c.destroy()
  }
})

test.run()
