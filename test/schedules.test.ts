import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parseConfig } from '../src/config'
import { scheduleKey, type Schedule } from '../src/schedules'
import { Cluster } from './fixtures/cluster'
import { configure } from './fixtures/configure'
import { throwsCode } from './helpers'


const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Lines of a file, waiting up to ms for at least n. */
async function linesOf(file: string, n: number, ms = 20_000): Promise<string[]> {
  const end = Date.now() + ms
  for (;;) {
    const lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : []
    if (lines.length >= n) return lines
    if (Date.now() > end) throw new Error(`${file}: ${lines.length} of ${n} lines after ${ms} ms`)
    await sleep(50)
  }
}

test('schedules - a cron of 4 or 7 fields, or nonsense, is a config error naming the key', () => {
  throwsCode(() => parseConfig('schedules:\n  - { cron: "* * * *", method: node.ping }\n', 'outpost.yaml'), 'config_invalid', 'schedules.0.cron', '5 fields')
  throwsCode(() => parseConfig('schedules:\n  - { cron: "* * * * * * *", method: node.ping }\n', 'outpost.yaml'), 'config_invalid', 'schedules.0.cron')
  throwsCode(() => parseConfig('schedules:\n  - { cron: "61 * * * *", method: node.ping }\n', 'outpost.yaml'), 'config_invalid', 'schedules.0.cron')
  assert.is(parseConfig('schedules:\n  - { cron: "*/2 * * * * *", method: node.ping }\n', 'outpost.yaml').schedules.length, 1)
})

test('schedules - a 6-field every-second cron runs here and its results arrive in central\'s reply file', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    configure(c, 'ship1', { schedules: [{ cron: '* * * * * *', method: 'cli.run', methodArgs: ['echo tick from $(hostname)'], toNode: 'central', replyMethod: 'reply.file.append', directory: 'ticks', fileName: 'ship1.log' }] })
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const lines = await linesOf(path.join(c.node('central').dataDir, 'ticks', 'ship1', 'ship1.log'), 3)
    for (const l of lines) assert.match(l, /^tick from /)
  } finally {
    await c.destroy()
  }
})

test('schedules - a run missed while the node was down runs exactly once at start, not once per slot', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    const yearly: Schedule = { cron: '0 0 1 1 *', method: 'cli.named', methodArgs: ['stamp'], directory: 'yearly', fileName: 'y.log' }
    const never: Schedule = { cron: '0 0 1 1 *', method: 'cli.run', methodArgs: ['echo first start'], directory: 'yearly', fileName: 'first.log' }
    configure(c, 'ship1', { schedules: [yearly, never], methods: { commands: { stamp: 'echo caught up' } } })
    // The yearly run last happened three years ago: three slots were missed, one run is due.
    const dataDir = c.node('ship1').dataDir
    fs.mkdirSync(dataDir, { recursive: true })
    fs.writeFileSync(path.join(dataDir, 'schedules.json'), JSON.stringify({ [scheduleKey(yearly)]: Date.now() - 3 * 366 * 86_400_000 }))
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const file = path.join(c.node('central').dataDir, 'yearly', 'ship1', 'y.log')
    assert.equal(await linesOf(file, 1), ['caught up'])
    // Restarted: the stamp now says it ran; nothing more is due.
    await c.node('ship1').proc!.stop('SIGKILL')
    await c.start('ship1')
    await sleep(2000)
    assert.equal(fs.readFileSync(file, 'utf8'), 'caught up\n')
    // A schedule with no stamp (first start) was missed by no one: it did not run.
    assert.not.ok(fs.existsSync(path.join(c.node('central').dataDir, 'yearly', 'ship1', 'first.log')))
    const stamps = JSON.parse(fs.readFileSync(path.join(dataDir, 'schedules.json'), 'utf8')) as Record<string, number>
    assert.ok(stamps[scheduleKey(never)]! > Date.now() - 60_000)
  } finally {
    await c.destroy()
  }
})

test('schedules - a disabled method does not run; central gets the method_disabled error instead', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    configure(c, 'ship1', { schedules: [{ cron: '* * * * * *', method: 'cli.run', methodArgs: ['echo no'], directory: 'off', fileName: 'x.log' }], methods: { enabled: ['cli.named'] } })
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const lines = await linesOf(path.join(c.node('central').dataDir, 'off', 'ship1', 'x.log'), 1)
    assert.match(lines[0]!, /^\[error method_disabled\]/)
  } finally {
    await c.destroy()
  }
})

test.run()
