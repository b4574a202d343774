/**
 * File transfer refused by each of the receiver's rules: nothing is left behind (no target,
 * no .outpost-part file) and the refusal reaches `outpost cp` with its code and exit 3. Real
 * hub and agents; the full disk is a real 1 MiB tmpfs (the tests run as root).
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster } from '../fixtures/cluster'
import { cp, errorCode, lastTransfer, partials, randomFile, sha256Of, until } from './helpers'

let c: Cluster
let root: string
let readable: string
let outside: string
let tiny: string
let filling: string
let src: string
let big: string

test.before(async () => {
  const base = fs.mkdtempSync('/tmp/outpost-files-')
  root = path.join(base, 'root')
  readable = path.join(base, 'readable')
  outside = path.join(base, 'outside')
  tiny = path.join(base, 'tiny')
  filling = path.join(base, 'filling')
  for (const d of [root, readable, outside, tiny, filling]) fs.mkdirSync(d)
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', tiny])
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1536k', 'tmpfs', filling])
  c = await Cluster.create(['ship1', 'other'])
  const ship1 = c.node('ship1').config
  // No store reserve on ship1: the free-space checks below count the file alone.
  fs.appendFileSync(ship1, `files:\n  roots: [${root}, ${tiny}, ${filling}]\n  read: [${readable}]\n  maxBytes: 1048576\ndelivery:\n  reserveBytes: 0\n`)
  await c.startHub()
  await c.start('central')
  await c.start('ship1')
  await c.start('other')
  src = path.join(c.dir, 'small.bin')
  randomFile(src, 200_000)
  big = path.join(c.dir, 'big.bin')
  randomFile(big, 2 * 1024 * 1024)
  fs.symlinkSync(outside, path.join(root, 'away'))
  fs.writeFileSync(path.join(outside, 'victim'), 'keep me')
  fs.symlinkSync(path.join(outside, 'victim'), path.join(root, 'victim-link'))
})

test.after(async () => {
  await c?.destroy()
  execFileSync('umount', [tiny])
  execFileSync('umount', [filling])
  fs.rmSync(path.dirname(root), { recursive: true, force: true })
})

async function refused(from: string, args: string[], code: string, dir: string): Promise<void> {
  const r = await cp(c, from, args)
  assert.is(errorCode(r), code, JSON.stringify(r.lines) + r.stderr)
  assert.is(r.code, code === 'file_hash_mismatch' ? 1 : 3)
  assert.equal(partials(dir), [], `partial files left in ${dir}`)
}

test('files - a push inside files.roots lands with its mode, in directories --mkdir made', async () => {
  const dest = path.join(root, 'a', 'b', 'small.bin')
  const r = await cp(c, 'central', ['--mkdir', '--mode', '0600', src, `ship1:${dest}`])
  assert.is(r.code, 0, r.stderr)
  assert.is(lastTransfer(r).state, 'done')
  assert.is(sha256Of(dest), sha256Of(src))
  assert.is(fs.statSync(dest).mode & 0o777, 0o600)
  assert.equal(partials(path.dirname(dest)), [])
})

test('files - a push outside files.roots is refused (file_outside) and writes nothing', async () => {
  await refused('central', [src, `ship1:${outside}/evil.bin`], 'file_outside', outside)
  assert.not.ok(fs.existsSync(path.join(outside, 'evil.bin')))
})

test('files - a push through a symlink that leaves the root is refused and writes nothing', async () => {
  await refused('central', [src, `ship1:${root}/away/evil.bin`], 'file_outside', outside)
  assert.not.ok(fs.existsSync(path.join(outside, 'evil.bin')))
  await refused('central', [src, `ship1:${root}/victim-link`], 'file_outside', root)
  assert.is(fs.readFileSync(path.join(outside, 'victim'), 'utf8'), 'keep me')
})

test('files - a file larger than files.maxBytes is refused (file_too_large) and writes nothing', async () => {
  await refused('central', [big, `ship1:${root}/big.bin`], 'file_too_large', root)
  assert.not.ok(fs.existsSync(path.join(root, 'big.bin')))
})

test('files - a file the disk has no room for is refused (file_no_space) and writes nothing', async () => {
  // 1 MiB of tmpfs with 900 KB taken: the 200 KB file does not fit.
  fs.writeFileSync(path.join(tiny, 'taken'), Buffer.alloc(900_000))
  await refused('central', [src, `ship1:${tiny}/small.bin`], 'file_no_space', tiny)
  assert.equal(fs.readdirSync(tiny), ['taken'])
})

test('files - a disk that fills up during the transfer ends it (file_no_space) with nothing left behind', async () => {
  const moving = path.join(c.dir, 'fill.bin')
  randomFile(moving, 900_000)
  const run = cp(c, 'central', ['--rate', '300k', moving, `ship1:${filling}/fill.bin`])
  // Accepted and under way before the disk fills.
  await until(c.node('ship1').socket, (t) => t.state === 'receiving' && t.bytes > 0)
  fs.writeFileSync(path.join(filling, 'other'), Buffer.alloc(1_300_000))
  const r = await run
  assert.is(errorCode(r), 'file_no_space', JSON.stringify(r.lines.slice(-2)))
  assert.is(r.code, 3)
  assert.equal(fs.readdirSync(filling), ['other'])
})

test('files - a pull of a file outside files.read is refused (file_outside) and writes nothing here', async () => {
  fs.writeFileSync(path.join(outside, 'secret'), 'no')
  const here = path.join(c.dir, 'pulled')
  fs.mkdirSync(here)
  await refused('central', [`ship1:${outside}/secret`, here + '/'], 'file_outside', here)
  assert.equal(fs.readdirSync(here), [])
})

test('files - a sender methods.allow does not let call file.put is denied and writes nothing', async () => {
  await refused('other', [src, `ship1:${root}/from-other.bin`], 'denied', root)
  assert.not.ok(fs.existsSync(path.join(root, 'from-other.bin')))
})

test('files - a file that changes while it is sent fails (file_source_changed) and leaves the old target as it was', async () => {
  const dest = path.join(root, 'changing.bin')
  fs.writeFileSync(dest, 'old content')
  const moving = path.join(c.dir, 'moving.bin')
  randomFile(moving, 900_000)
  // 300 KiB/s: the end of the file is rewritten long before it is read.
  const run = cp(c, 'central', ['--rate', '300k', moving, `ship1:${dest}`])
  // Changed once it is sending (a fixed wait raced the start on a loaded machine).
  await until(c.node('central').socket, (t) => t.state === 'sending' && t.size === 900_000)
  const fd = fs.openSync(moving, 'r+')
  fs.writeSync(fd, Buffer.alloc(1000, 7), 0, 1000, 800_000)
  fs.closeSync(fd)
  const r = await run
  // Written to before its end was read: the chunks agree with their sha256s, the source's modification time does not.
  assert.is(errorCode(r), 'file_source_changed', JSON.stringify(r.lines))
  assert.is(r.code, 1)
  assert.is(fs.readFileSync(dest, 'utf8'), 'old content')
  // The sender tells ship1 to delete its partial file (file.commit abort), after cp has its answer.
  const end = Date.now() + 10_000
  while (partials(root).length > 0 && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(partials(root), [])
})

test.run()
