/**
 * The README's quickstart and "A real fleet" blocks, run as they are written: each shell line
 * in bash (where `npx outpost` and `npm start` are this checkout's CLI, as they are when typed
 * in the checkout), each YAML block saved under the file name its first comment gives.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, tmpDir } from './fixtures/cluster'
import { survivors } from './fixtures/procs'

const ROOT = path.join(__dirname, '..')
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }

/** The fenced blocks of one section (from its heading to the next heading of any level). */
function blocks(heading: string): { lang: string; text: string }[] {
  const at = README.indexOf(`\n${heading}\n`)
  assert.ok(at >= 0, `README has no heading ${heading}`)
  // The section ends at the next heading outside a fenced block (YAML comments start with # too).
  let fenced = false
  const lines: string[] = []
  for (const line of README.slice(at + heading.length + 2).split('\n')) {
    if (line.startsWith('```')) fenced = !fenced
    else if (!fenced && /^#{1,6} /.test(line)) break
    lines.push(line)
  }
  const section = lines.join('\n')
  return [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, text: m[2]! }))
}

/** bash functions: `npx outpost …` and `npm start` as they run in the checkout. */
const PRELUDE = `
npx() { if [ "$1" = outpost ]; then shift; "${process.execPath}" "${BIN}" "$@"; else command npx "$@"; fi; }
npm() { if [ "$1" = start ]; then "${process.execPath}" "${BIN}" up; else command npm "$@"; fi; }
`

function shellLines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'))
}

/** A README line run in the foreground: its exit status and output. */
function run(line: string, cwd: string): { status: number | null; out: string; err: string } {
  const r = spawnSync('bash', ['-c', `${PRELUDE}\n${line}`], { cwd, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } })
  return { status: r.status, out: r.stdout, err: r.stderr }
}

/** A README line ending in `&` (or `npm start`): started in its own process group, killed at the end. */
function background(line: string, cwd: string): ChildProcess & { output: () => string } {
  const child = spawn('bash', ['-c', `${PRELUDE}\n${line.replace(/&\s*(#.*)?$/, '')}`], { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => { output += d })
  child.stderr!.on('data', (d: Buffer) => { output += d })
  return Object.assign(child, { output: () => output })
}

/** SIGTERM to the line's process group (bash and the outpost it started); waits until the group is gone. */
async function stopGroup(child: ChildProcess): Promise<void> {
  const pgid = child.pid!
  try { process.kill(-pgid, 'SIGTERM') } catch { return }
  if ((await survivors(pgid, 15_000)).length > 0) {
    try { process.kill(-pgid, 'SIGKILL') } catch { /* gone */ }
    await survivors(pgid, 5000)
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

async function until(fn: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** The exit status a README line's comment promises ("exit status 3 …"), else 0. */
function promisedStatus(line: string): number {
  const m = /#.*exit status (\d)/.exec(line)
  return m ? Number(m[1]) : 0
}

test('README - the quickstart works as written', async () => {
  assert.is(PKG.scripts.start, 'node bin/outpost.cjs up', 'the prelude maps npm start to what package.json runs')
  assert.ok(await portFree(7430), 'port 7430 (the quickstart port) is in use on this machine')
  const [start, tryIt] = blocks('### Quickstart').filter((b) => b.lang === 'sh')
  assert.ok(start && tryIt, 'the quickstart has its two shell blocks')
  const dir = tmpDir('outpost-readme-')
  const up = background(shellLines(start.text)[0]!, dir)
  try {
    await until(() => /Ctrl-C stops/.test(up.output()), 20_000, `outpost up to start:\n${up.output()}`)
    for (const line of shellLines(tryIt.text)) {
      const r = run(line, dir)
      assert.is(r.status, promisedStatus(line), `${line}\n${r.out}${r.err}`)
      if (line.includes('uname -a')) assert.match(r.out, /Linux/)
      if (line.includes('outpost nodes')) { assert.match(r.out, /^central\s+yes/m); assert.match(r.out, /^local\s+yes/m) }
      if (line.includes('outpost call node.ping')) assert.match(r.out, /pong|"data"/)
    }
    // The ttl that ran out is said once in the log (not again by error.log on the same node).
    const expired = (): string[] => up.output().split('\n').filter((l) => /to nowhere: not delivered within its ttl/.test(l))
    await until(() => expired().length > 0, 5000, `the ttl expiry in the log:\n${up.output()}`)
    await new Promise((r) => setTimeout(r, 500))
    assert.is(expired().length, 1, up.output())
    // "Each reply is also written … to var/central/replies/<node>/<request id>.log"
    const replies = path.join(dir, 'var', 'central', 'replies', 'local')
    assert.ok(fs.readdirSync(replies).some((f) => f.endsWith('.log')), 'reply files under var/central/replies/local')
  } finally {
    await stopGroup(up)
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('README - the fleet example works as written, on one machine', async () => {
  assert.ok(await portFree(7430), 'port 7430 (the fleet example port) is in use on this machine')
  const all = blocks('### A real fleet')
  const dir = tmpDir('outpost-readme-')
  const started: (ChildProcess & { output: () => string })[] = []
  try {
    const yamls = all.filter((b) => b.lang === 'yaml')
    assert.is(yamls.length, 2, 'a file for the hub and one for the node')
    for (const y of yamls) {
      const name = /^# (\S+\.yaml)/.exec(y.text)?.[1]
      assert.ok(name, `a YAML block says which file it is:\n${y.text}`)
      fs.writeFileSync(path.join(dir, name), y.text)
    }
    const sh = all.find((b) => b.lang === 'sh')
    assert.ok(sh, 'the fleet has a shell block')
    let sent = false
    for (const line of shellLines(sh.text)) {
      if (/&\s*(#.*)?$/.test(line)) { started.push(background(line, dir)); continue }
      const r = run(line, dir)
      const why = `${line}\n${r.out}${r.err}\n--- background:\n${started.map((p) => p.output()).join('\n---\n')}`
      assert.is(r.status, 0, why)
      if (line.includes('uname -a')) { assert.match(r.out, /Linux/, why); sent = true }
      if (line.includes('outpost nodes')) { assert.match(r.out, /^central\s+yes/m, why); assert.match(r.out, /^ship1\s+yes/m, why) }
    }
    assert.ok(sent, 'the block sends a command to ship1')
    // central runs inside the hub: attached, never refused, never dialling a port. (The lines
    // above ran with spawnSync: the hub's output is read once the event loop turns again.)
    await until(() => /attached to the hub in this process as central/.test(started[0]!.output()), 5000, `central attached:\n${started[0]!.output()}`)
    assert.not.match(started[0]!.output(), /auth_failed|refused|unknown here|connected to tcp/)
  } finally {
    for (const p of started.reverse()) await stopGroup(p)
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
