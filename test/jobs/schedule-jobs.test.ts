/**
 * Selectors in schedules: an entry with `to` on central becomes a job at each slot, sent to the
 * nodes its selector matches then; it does not run on central itself.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parseConfig } from '../../src/config'
import { defaultsContext } from '../../src/config/schema'
import { Cluster, editYaml, section } from '../fixtures/cluster'
import { throwsCode } from '../helpers'
import { outpost, untilLabels } from './fleet-helpers'

test('schedule-jobs - the config takes names and selectors in schedules[].to and refuses a broken selector', () => {
  const ctx = defaultsContext()
  const ok = parseConfig('schedules:\n  - cron: "0 3 * * *"\n    method: cli.run\n    to: [ "role=db,!decommissioned", ship1 ]\n    batch: "10%"\n    maxErrors: 2\n', 'x.yaml', ctx)
  assert.equal(ok.schedules[0]!.to, ['role=db,!decommissioned', 'ship1'])
  throwsCode(() => parseConfig('schedules:\n  - cron: "0 3 * * *"\n    method: cli.run\n    to: [ "site in (oslo" ]\n', 'x.yaml', ctx), 'config_invalid', 'schedules.0.to lists a selector "site in (oslo" that has a ( without its )', '(line 4)')
  throwsCode(() => parseConfig('schedules:\n  - cron: "0 3 * * *"\n    method: cli.run\n    to: [ ship1 ]\n    batch: "0"\n', 'x.yaml', ctx), 'config_invalid', 'schedules.0.batch must be a number of nodes (5) or a percentage of them (10%) (line 5)')
})

test('schedule-jobs - central makes a job of a schedule with a selector at each slot; only the matching nodes run it', async () => {
  const c = await Cluster.create(['ship1', 'ship2'])
  try {
    const marks = path.join(c.dir, 'marks')
    editYaml(c.node('central').config, (d) => {
      d.schedules = [{ cron: '* * * * * *', method: 'cli.run', methodArgs: [`echo "$NODE_TAG" >> ${marks}; echo done`], to: ['role=db'] }]
    })
    editYaml(c.node('ship1').config, (d) => { section(d, 'node').labels = { role: 'db' } })
    editYaml(c.node('ship2').config, (d) => { section(d, 'node').labels = { role: 'web' } })
    await c.startHub()
    for (const n of ['ship1', 'ship2']) await c.start(n, true, { NODE_TAG: n })
    await c.start('central', true, { NODE_TAG: 'central' })
    await untilLabels(c, (l) => l.find((n) => n.name === 'ship1')?.labels?.role === 'db' && l.find((n) => n.name === 'ship2')?.labels?.role === 'web')
    let jobs: { id: string; origin?: string; status: string; total: number; counts: Record<string, number> }[] = []
    for (const end = Date.now() + 20_000; ; await new Promise((r) => setTimeout(r, 200))) {
      jobs = JSON.parse((await outpost(['jobs', '--json', '--config', c.node('central').config])).stdout) as typeof jobs
      if (jobs.some((j) => j.status === 'done' && j.counts.ok === 1)) break
      assert.ok(Date.now() < end, JSON.stringify(jobs))
    }
    const done = jobs.find((j) => j.status === 'done' && j.counts.ok === 1)!
    assert.is(done.origin, 'schedule 1 (* * * * * *)')
    assert.is(done.total, 1)
    const ran = fs.readFileSync(marks, 'utf8').trim().split('\n')
    assert.ok(ran.length >= 1)
    assert.equal([...new Set(ran)], ['ship1'])
  } finally {
    await c.destroy()
  }
})

test.run()
