/**
 * `outpost shell` end to end: a real pty at the CLI, real agents and a real hub, a real pty on
 * the remote node. Typing and output, window size, Ctrl-C, the exit status, a refusal.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fs from 'node:fs'
import net from 'node:net'
import * as pty from '@lydell/node-pty'
import { BIN, Cluster } from '../fixtures/cluster'
import { Term } from './term'

let c: Cluster
/** The remote shell's prompt: typing starts once the remote terminal is there (and the local one raw). */
const PROMPT = /[#$] $/

test.before(async () => {
  c = await Cluster.create(['ship1'])
  await c.startHub()
  await c.start('central')
  await c.start('ship1')
})

test.after(async () => {
  await c.destroy()
})

test('shell - a typed command runs on the node and its output comes back; the window size is the terminal\'s and follows a resize; Ctrl-C interrupts, Ctrl-Z stops; exit 3 gives 3', async () => {
  const t = new Term(['shell', 'ship1', '--config', c.node('central').config, '--', 'sh'], { cols: 101, rows: 33 })
  try {
    await t.waitFor(PROMPT)
    t.write('echo "node is $(cat /proc/sys/kernel/hostname | wc -c) and pid $$"; stty size\r')
    await t.waitFor(/node is \d+ and pid \d+\n33 101\n/)
    // The remote shell runs in ship1's data dir world: its environment carries the run mark.
    let at = t.out.length
    t.write('echo "mark=${OUTPOST_RUN:+yes}"\r')
    await t.waitFor(/mark=yes/, at)

    at = t.out.length
    t.p.resize(120, 40)
    await new Promise((r) => setTimeout(r, 200))
    t.write('stty size\r')
    await t.waitFor(/40 120\n/, at)

    // Ctrl-Z stops the remote foreground job (the shell's job control says so); fg brings it
    // back and Ctrl-C interrupts it, the shell stays.
    at = t.out.length
    t.write('sleep 30\r')
    await new Promise((r) => setTimeout(r, 500))
    t.write('\x1a')
    await t.waitFor(/Stopped/i, at, 5000)
    t.write('fg\r')
    await new Promise((r) => setTimeout(r, 500))
    t.write('\x03')
    t.write('echo after-sleep-$?\r')
    await t.waitFor(/after-sleep-130/, at, 5000)

    t.write('exit 3\r')
    assert.is(await t.exited, 3)
  } finally {
    t.kill()
  }
})

test('shell - Ctrl-D ends the remote shell and the command exits 0; a one-string command runs with methods.shell -c', async () => {
  const t = new Term(['shell', 'ship1', '--config', c.node('central').config, '--', 'sh'])
  try {
    await t.waitFor(PROMPT)
    t.write('echo ready-for-eof\r')
    await t.waitFor(/ready-for-eof\n/)
    t.write('\x04')
    assert.is(await t.exited, 0)
  } finally {
    t.kill()
  }
  const u = new Term(['shell', 'ship1', '--config', c.node('central').config, '--', 'echo one-string && exit 7'])
  try {
    assert.is(await u.exited, 7)
    assert.match(u.text(), /one-string/)
  } finally {
    u.kill()
  }
})

test('shell - full-screen programs: top draws and quits on q; vi edits a file on the node', async () => {
  const t = new Term(['shell', 'ship1', '--config', c.node('central').config, '--', 'top'], { cols: 120, rows: 30 })
  try {
    await t.waitFor(/load average/)
    t.write('q')
    assert.is(await t.exited, 0)
  } finally {
    t.kill()
  }
  const file = `${c.dir}/edited-by-vi.txt`
  const v = new Term(['shell', 'ship1', '--config', c.node('central').config, '--', 'vi', file], { cols: 100, rows: 25 })
  try {
    await v.waitFor(/edited-by-vi\.txt/)
    v.write('ihello from vi\x1b')
    await new Promise((r) => setTimeout(r, 300))
    v.write(':wq\r')
    assert.is(await v.exited, 0)
    assert.is(fs.readFileSync(file, 'utf8'), 'hello from vi\n')
  } finally {
    v.kill()
  }
})

test('shell - a terminal that reports no size (0 rows, 0 columns: a pty nobody sized) opens a 24 × 80 terminal instead of being refused', async () => {
  const p = pty.spawn('/bin/sh', ['-c', 'stty rows 0 cols 0; exec "$0" "$@"', process.execPath, BIN, 'shell', 'ship1', '--config', c.node('central').config, '--', 'stty size; exit 4'], { name: 'xterm', cols: 100, rows: 30, cwd: process.cwd(), env: process.env as Record<string, string> })
  let out = ''
  p.onData((d) => { out += d })
  try {
    const code = await new Promise<number>((resolve) => p.onExit((e) => resolve(e.exitCode)))
    assert.is(code, 4, out)
    assert.match(out, /24 80/)
  } finally {
    try { p.kill('SIGKILL') } catch { /* gone */ }
  }
})

test('shell - a node opens a shell on itself; --user runs the command as that account (root agents only)', async () => {
  const self = new Term(['shell', 'ship1', '--config', c.node('ship1').config, '--', 'echo "on myself"; exit 2'])
  try {
    assert.is(await self.exited, 2)
    assert.match(self.text(), /on myself/)
  } finally {
    self.kill()
  }
  const u = new Term(['shell', 'ship1', '--user', 'nobody', '--config', c.node('central').config, '--', 'id -un'])
  try {
    const code = await u.exited
    if (process.getuid?.() === 0) {
      assert.is(code, 0)
      assert.match(u.text(), /^nobody$/m)
    } else {
      assert.is(code, 1)
      assert.match(u.text(), /not_permitted/)
    }
  } finally {
    u.kill()
  }
  // An account the node does not have: exit 1, and the message names the shell's method, not cli.run.
  const none = new Term(['shell', 'ship1', '--user', 'no-such-account-x', '--config', c.node('central').config, '--', 'id -un'])
  try {
    assert.is(await none.exited, 1)
    assert.match(none.text(), process.getuid?.() === 0 ? /session\.open: no user "no-such-account-x"/ : /session\.open: --user/)
    assert.not.match(none.text(), /cli\.run/)
  } finally {
    none.kill()
  }
})

test('shell - the socket API refuses a session request for a method that is not a session, and ends the connection', async () => {
  const lines = await new Promise<string>((resolve, reject) => {
    const s = net.connect(c.node('central').socket)
    let text = ''
    s.setEncoding('utf8')
    s.on('data', (d: string) => { text += d })
    s.on('end', () => resolve(text))
    s.on('error', reject)
    s.write(JSON.stringify({ op: 'session', toNode: 'ship1', method: 'cli.run', methodArgs: ['--', 'id'] }) + '\n{"in":"aWQK"}\n')
  })
  const [first, ...rest] = lines.trim().split('\n').map((l) => JSON.parse(l) as { error?: { code: string; message: string } })
  assert.is(first?.error?.code, 'api_bad_request')
  assert.match(first!.error!.message, /session\.open, tunnel\.open or tunnel\.listen/)
  assert.is(rest.length, 0, 'the input line after it was not taken as a request')
})

test('shell - a node whose methods.allow does not let the caller open a session refuses it: exit 3, denied', async () => {
  const t = new Term(['shell', 'central', '--config', c.node('ship1').config])
  try {
    assert.is(await t.exited, 3)
    assert.match(t.text(), /denied/)
  } finally {
    t.kill()
  }
})

test.run()
