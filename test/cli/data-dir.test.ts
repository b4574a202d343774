/**
 * A data directory outpost cannot create or write stops `agent` and `hub` at once with
 * data_dir_unwritable, exit 2 and one line naming it: real processes, real file systems. As
 * root (CI), permissions do not stop writes, so a read-only tmpfs mount stands for a read-only
 * directory; otherwise chmod does.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN } from '../fixtures/cluster'
import { freePort, tmpDir } from '../fixtures/ports'

const isRoot = process.getuid?.() === 0
const dirs: string[] = []
const mounts: string[] = []

test.after(() => {
  for (const m of mounts.reverse()) {
    try { execFileSync('umount', [m]) } catch { /* not mounted */ }
  }
  for (const d of dirs) {
    try { fs.chmodSync(d, 0o700) } catch { /* gone */ }
  }
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})

/** A config for `agent` and `hub` with dataDir set; nothing listens where the agent dials. */
async function setup(dataDir: (base: string) => string): Promise<{ base: string; config: string; dataDir: string }> {
  const base = tmpDir('outpost-datadir-')
  dirs.push(base)
  const dir = dataDir(base)
  const config = path.join(base, 'outpost.yaml')
  const port = await freePort()
  fs.writeFileSync(config, [
    'node:', '  name: ship1', 'transport:', '  kind: tcp', `  servers: ["tcp://127.0.0.1:${port}"]`, '  token: t',
    'hub:', `  listen: 127.0.0.1:${port}`, `dataDir: ${JSON.stringify(dir)}`, '',
  ].join('\n'))
  return { base, config, dataDir: dir }
}

/** A directory nobody may write to: read-only mount as root, mode 0555 otherwise. */
function makeReadOnly(dir: string): void {
  fs.mkdirSync(dir, { recursive: true })
  if (isRoot) {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', dir])
    mounts.push(dir)
  } else {
    fs.chmodSync(dir, 0o555)
    dirs.push(dir)
  }
}

function run(command: 'agent' | 'hub', config: string): { code: number | null; stderr: string } {
  const env = { ...process.env }
  delete env.OUTPOST_CONFIG
  delete env.CONFIG
  const r = spawnSync(process.execPath, [BIN, command, '--config', config], { env, encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' })
  return { code: r.status, stderr: r.stderr }
}

function assertRefused(r: { code: number | null; stderr: string }, dir: string, why: string): void {
  assert.is(r.code, 2, r.stderr)
  assert.match(r.stderr, '[data_dir_unwritable]')
  assert.ok(r.stderr.includes(`data directory ${dir} `), r.stderr)
  assert.ok(r.stderr.includes(why), r.stderr)
  assert.match(r.stderr, 'set dataDir (or --data-dir)')
  assert.is(r.stderr.trim().split('\n').length, 1, `one line, no stack trace:\n${r.stderr}`)
  assert.not.match(r.stderr, /\n\s+at /)
}

test('data dir - one under a regular file cannot be created: data_dir_unwritable, exit 2, one line naming it', async () => {
  const s = await setup((base) => {
    fs.writeFileSync(path.join(base, 'afile'), '')
    return path.join(base, 'afile', 'data')
  })
  for (const command of ['agent', 'hub'] as const) assertRefused(run(command, s.config), s.dataDir, 'ENOTDIR')
})

test('data dir - a read-only one, or one under a read-only directory: data_dir_unwritable, exit 2', async () => {
  const ro = await setup((base) => path.join(base, 'ro'))
  makeReadOnly(ro.dataDir)
  const why = isRoot ? 'EROFS' : 'EACCES'
  for (const command of ['agent', 'hub'] as const) assertRefused(run(command, ro.config), ro.dataDir, why)
  const under = await setup((base) => path.join(base, 'ro', 'data'))
  makeReadOnly(path.dirname(under.dataDir))
  assertRefused(run('agent', under.config), under.dataDir, why)
})

test('data dir - a writable one whose store (outbox/) is read-only: data_dir_unwritable naming the store', async () => {
  const s = await setup((base) => path.join(base, 'data'))
  makeReadOnly(path.join(s.dataDir, 'outbox'))
  const r = run('agent', s.config)
  assertRefused(r, s.dataDir, path.join(s.dataDir, 'outbox'))
})

test.run()
