/**
 * Where a node lets files be written and read (files.roots, files.read), and what else a
 * transfer must pass before anything is written: its size, free space, its owner.
 *
 *   target ─ absolute, no NUL ─▶ parent made (--mkdir, one level at a time, never through a
 *   symlink out of the root) ─▶ realpath(parent) inside realpath(a root) ─▶ the target itself
 *   not a symlink ─▶ size ≤ files.maxBytes ─▶ free space ≥ size + reserve
 */
import fs from 'node:fs'
import path from 'node:path'
import type { Config } from '../config'
import { OutpostError } from '../errors'

/** The directories of a rule list; empty means <dataDir>/files. */
export function rootsOf(list: readonly string[], dataDir: string): string[] {
  return list.length === 0 ? [path.join(dataDir, 'files')] : [...list]
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p)
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))
}

function checkAbsolute(p: string, what: string): void {
  if (typeof p !== 'string' || !path.isAbsolute(p) || p.includes('\0')) {
    throw new OutpostError('file_outside', `${what}: ${JSON.stringify(p)} is not an absolute path`)
  }
}

async function realRoots(roots: readonly string[]): Promise<{ given: string; real: string }[]> {
  const out: { given: string; real: string }[] = []
  for (const r of roots) {
    const real = await fs.promises.realpath(r).catch(() => undefined)
    if (real !== undefined) out.push({ given: path.resolve(r), real })
  }
  return out
}

/**
 * The real directory a target may be written in, making its parents (inside the root that
 * holds them, only with `mkdir`). Refuses with file_outside what no root holds.
 */
export async function writableParent(target: string, roots: readonly string[], mkdir: boolean, defaultRoot: string): Promise<string> {
  checkAbsolute(target, 'file.put')
  // The default root is made on first use; a configured one must exist.
  if (roots.length === 1 && roots[0] === defaultRoot) await fs.promises.mkdir(defaultRoot, { recursive: true, mode: 0o755 })
  const real = await realRoots(roots)
  const parent = path.dirname(path.resolve(target))
  const root = real.find((r) => inside(r.given, parent) || inside(r.real, parent))
  if (root === undefined) {
    throw new OutpostError('file_outside', `file.put: ${target} is outside files.roots (${roots.join(', ')}); nothing was written`)
  }
  if (mkdir) {
    // One level at a time from the root down, so nothing is created through a symlink out of it.
    const base = inside(root.given, parent) ? root.given : root.real
    let current = base
    for (const seg of path.relative(base, parent).split(path.sep).filter((s) => s !== '')) {
      current = path.join(current, seg)
      await fs.promises.mkdir(current, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'EEXIST') throw ioError(`cannot create ${current}`, err) })
      const r = await fs.promises.realpath(current)
      if (!inside(root.real, r)) throw new OutpostError('file_outside', `file.put: ${current} is a symlink to ${r}, outside files.roots; nothing was written`)
    }
  }
  let realParent: string
  try {
    realParent = await fs.promises.realpath(parent)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new OutpostError('file_not_found', `file.put: the directory ${parent} does not exist on this node (--mkdir creates it)`)
    throw ioError(`cannot resolve ${parent}`, err)
  }
  if (!real.some((r) => inside(r.real, realParent))) {
    throw new OutpostError('file_outside', `file.put: ${parent} resolves to ${realParent}, outside files.roots (a symlink leads out); nothing was written`)
  }
  const st = await fs.promises.stat(realParent)
  if (!st.isDirectory()) throw new OutpostError('io', `file.put: ${parent} is not a directory`)
  const existing = await fs.promises.lstat(path.join(realParent, path.basename(target))).catch(() => undefined)
  if (existing?.isSymbolicLink()) throw new OutpostError('file_outside', `file.put: ${target} is a symlink; outpost does not write through one (remove it first); nothing was written`)
  if (existing !== undefined && !existing.isFile()) throw new OutpostError('io', `file.put: ${target} exists and is not a regular file`)
  return realParent
}

/** The real path of a file a node may send (file.get): a regular file inside files.read. */
export async function readableFile(file: string, config: Config, dataDir: string): Promise<{ real: string; size: number }> {
  checkAbsolute(file, 'file.get')
  const roots = rootsOf(config.files.read, dataDir)
  const real = await realRoots(roots)
  let r: string
  try {
    r = await fs.promises.realpath(file)
  } catch {
    throw new OutpostError('file_not_found', `file.get: ${file} does not exist on this node`)
  }
  if (!real.some((x) => inside(x.real, r))) {
    throw new OutpostError('file_outside', `file.get: ${file}${r !== file ? ` (${r})` : ''} is outside files.read (${roots.join(', ')}); nothing was sent`)
  }
  const st = await fs.promises.stat(r)
  if (!st.isFile()) throw new OutpostError('file_not_found', `file.get: ${file} is not a regular file`)
  return { real: r, size: st.size }
}

/** Size and free space checks before a transfer is accepted (`have`: bytes already held for it). */
export function checkRoom(dir: string, size: number, have: number, config: Config, shown: string): void {
  if (config.files.maxBytes > 0 && size > config.files.maxBytes) {
    throw new OutpostError('file_too_large', `file.put: ${shown} is ${size} bytes, more than files.maxBytes (${config.files.maxBytes}) on this node; nothing was written`)
  }
  const s = fs.statfsSync(dir)
  const free = s.bavail * s.bsize
  const need = size - have + config.delivery.reserveBytes
  if (free < need) {
    throw new OutpostError('file_no_space', `file.put: ${shown} needs ${size - have} bytes (and ${config.delivery.reserveBytes} kept in reserve) but ${dir} has ${free} free; nothing was written`)
  }
}

/** uid and gid for `user[:group]` (names from /etc/passwd and /etc/group, or numbers); root only. */
export async function resolveOwner(owner: string): Promise<{ uid: number; gid: number }> {
  const uid = process.getuid?.() ?? -1
  if (uid !== 0) throw new OutpostError('not_permitted', `file.put: --owner needs outpost to run as root on the receiver (it runs as uid ${uid})`)
  const [user = '', group] = owner.split(':')
  const u = await lookup('/etc/passwd', user)
  if (u === undefined) throw new OutpostError('not_found', `file.put: no user ${JSON.stringify(user)} on this node`)
  let gid = u.gid
  if (group !== undefined && group !== '') {
    const g = await lookup('/etc/group', group)
    if (g === undefined) throw new OutpostError('not_found', `file.put: no group ${JSON.stringify(group)} on this node`)
    gid = g.id
  }
  return { uid: u.id, gid }
}

async function lookup(file: string, key: string): Promise<{ id: number; gid: number } | undefined> {
  if (/^\d+$/.test(key)) return { id: Number(key), gid: Number(key) }
  const text = await fs.promises.readFile(file, 'utf8').catch(() => '')
  for (const line of text.split('\n')) {
    const f = line.split(':')
    if (f[0] === key) return { id: Number(f[2]), gid: Number(file === '/etc/passwd' ? f[3] : f[2]) }
  }
  return undefined
}

const DISK_FULL = new Set(['ENOSPC', 'EDQUOT', 'EFBIG'])

export function ioError(what: string, err: unknown): OutpostError {
  const full = DISK_FULL.has((err as NodeJS.ErrnoException).code ?? '')
  return new OutpostError(full ? 'file_no_space' : 'io', `file transfer: ${what}: ${(err as Error).message}`, { cause: err })
}
