/**
 * sessions.record, sessions.idleTimeout and sessions.maxDuration on the node that runs the
 * session: an asciicast v2 file per shell; an idle shell, and one past its longest duration,
 * ended with session_timeout and their processes killed.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, editYaml, section } from '../fixtures/cluster'
import { Term } from './term'

const alive = (pid: number): boolean => {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

let c: Cluster
test.before(async () => {
  c = await Cluster.create(['ship1', 'ship2'])
  editYaml(c.node('ship1').config, (doc) => { Object.assign(section(doc, 'sessions'), { record: true, idleTimeout: 2 }) })
  editYaml(c.node('ship2').config, (doc) => { Object.assign(section(doc, 'sessions'), { maxDuration: 3 }) })
  await c.startHub()
  await c.start('central')
  await c.start('ship1')
  await c.start('ship2')
})
test.after(async () => { await c.destroy() })

test('limits - sessions.record writes an asciicast v2 file of the session on the node that ran it', async () => {
  const t = new Term(['shell', 'ship1', '--config', c.node('central').config, '--', 'sh'], { cols: 77, rows: 19 })
  try {
    await t.waitFor(/[#$] $/)
    t.write('echo "recorded $((3*3))"; exit 4\r')
    assert.is(await t.exited, 4)
  } finally {
    t.kill()
  }
  const dir = path.join(c.node('ship1').dataDir, 'sessions')
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.cast'))
  assert.is(files.length, 1)
  const [head, ...events] = fs.readFileSync(path.join(dir, files[0]!), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown)
  assert.equal({ ...(head as object), timestamp: 0, title: '', env: {} }, { version: 2, width: 77, height: 19, timestamp: 0, title: '', env: {} })
  const output = (events as [number, string, string][]).filter((e) => e[1] === 'o').map((e) => e[2]).join('')
  assert.match(output, /recorded 9/)
  assert.ok((events as [number][]).every((e, i, all) => i === 0 || e[0] >= all[i - 1]![0]), 'times only go forward')
})

test('limits - an idle shell ends at sessions.idleTimeout; one past sessions.maxDuration ends too; both with session_timeout and no process left', async () => {
  for (const [node, typing] of [['ship1', false], ['ship2', true]] as const) {
    const t = new Term(['shell', node, '--config', c.node('central').config, '--', 'sh'])
    try {
      await t.waitFor(/[#$] $/)
      t.write('echo "pid=$$"\r')
      await t.waitFor(/pid=(\d+)/)
      const pid = Number(/pid=(\d+)/.exec(t.text())![1])
      // ship2: busy all along, so only maxDuration can end it.
      const keys = typing ? setInterval(() => t.write('\r'), 300) : undefined
      const code = await Promise.race([t.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 15_000))])
      clearInterval(keys)
      assert.is(code, 1, node)
      assert.match(t.text(), typing ? /sessions\.maxDuration/ : /sessions\.idleTimeout/)
      assert.match(t.text(), /session_timeout/)
      const end = Date.now() + 8000
      while (alive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 100))
      assert.not.ok(alive(pid), `the shell on ${node} is gone`)
    } finally {
      t.kill()
    }
  }
})

test.run()
