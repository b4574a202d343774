/**
 * A node SIGKILLed under a parent that does not reap it (a container's init, a shell script
 * that started it in the background) stays a zombie for a while, or for good. Its pid still
 * answers kill(pid, 0), but it holds nothing: the next agent on the same data directory starts.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, Cluster, Proc } from './fixtures/cluster'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

test('lock - an agent killed and left a zombie by a parent that never reaps does not keep its data directory locked', async () => {
  const c = await Cluster.create(['ship1'])
  // A parent that starts the agent, prints its pid and then only sleeps: it never waits for it.
  const parent = spawn('python3', ['-c', 'import subprocess, sys, time\np = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\nprint(p.pid, flush=True)\ntime.sleep(600)', process.execPath, BIN, 'agent', '--config', c.node('ship1').config], { stdio: ['ignore', 'pipe', 'inherit'] })
  let next: Proc | undefined
  try {
    await c.startHub()
    const pid = await new Promise<number>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(Number.parseInt(String(d), 10))))
    const lock = `${c.node('ship1').dataDir}/outbox/lock`
    for (let i = 0; i < 200 && !fs.existsSync(lock); i++) await sleep(50)
    assert.is(fs.readFileSync(lock, 'utf8').trim(), String(pid), 'the first agent holds the lock')
    process.kill(pid, 'SIGKILL')
    let state = ''
    for (let i = 0; i < 200 && state !== 'Z'; i++) {
      await sleep(25)
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
      state = stat.charAt(stat.lastIndexOf(')') + 2)
    }
    assert.is(state, 'Z', 'the killed agent is a zombie: its parent has not reaped it')
    next = new Proc(['agent', '--config', c.node('ship1').config])
    const ended = next.exited.then((code) => { throw new Error(`the second agent exited (${code}):\n${next!.output}`) })
    await Promise.race([next.waitFor(/node ship1 started/, 20_000), ended])
  } finally {
    parent.kill('SIGKILL')
    await next?.stop('SIGKILL')
    await c.destroy()
  }
})

test.run()
