/**
 * info.kernel, info.os, info.users, info.system: host facts as JSON in the reply's data,
 * read from /proc, /etc/os-release, /etc/passwd and /etc/login.defs (never by shelling out,
 * so they work on minimal images with no coreutils).
 *
 * The file locations are options of `readers` so a test can point them at fixtures.
 */
import fs from 'node:fs/promises'
import os from 'node:os'
import { parseArgs } from 'node:util'
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'

/** Where the facts come from. */
export const FILES = {
  osRelease: ['/etc/os-release', '/usr/lib/os-release'],
  passwd: '/etc/passwd',
  loginDefs: '/etc/login.defs',
  mounts: '/proc/mounts',
  cpuinfo: '/proc/cpuinfo',
  meminfo: '/proc/meminfo',
  procVersion: '/proc/version',
}

const json = (value: unknown): MethodResult => ({ data: JSON.stringify(value, null, 2) + '\n' })

async function readText(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8')
  } catch {
    return undefined
  }
}

// ── info.kernel ──────────────────────────────────────────────────────────────

export interface KernelInfo { name: string; release: string; version: string; machine: string; hostname: string; procVersion: string | null }

export async function kernelInfo(): Promise<KernelInfo> {
  return {
    name: os.type(), release: os.release(), version: os.version(), machine: os.machine(), hostname: os.hostname(),
    procVersion: (await readText(FILES.procVersion))?.trim() ?? null,
  }
}

// ── info.os ──────────────────────────────────────────────────────────────────

/** KEY=value lines of os-release(5); values may be quoted. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const raw of text.split('\n')) {
    const m = /^\s*([A-Z0-9_]+)\s*=\s*(.*?)\s*$/.exec(raw)
    if (!m) continue
    let v = m[2]!
    if (/^(["']).*\1$/.test(v)) v = v.slice(1, -1).replace(/\\(["'$`\\])/g, '$1')
    out[m[1]!] = v
  }
  return out
}

/** Families an operator scripts against, most specific first. */
const FAMILIES = ['debian', 'rhel', 'fedora', 'suse', 'alpine', 'arch', 'gentoo', 'void', 'nixos'] as const
const FAMILY_OF: Record<string, string> = { ubuntu: 'debian', raspbian: 'debian', centos: 'rhel', rocky: 'rhel', almalinux: 'rhel', ol: 'rhel', amzn: 'rhel', sles: 'suse', opensuse: 'suse', 'opensuse-leap': 'suse', 'opensuse-tumbleweed': 'suse', manjaro: 'arch', endeavouros: 'arch' }

export function osFamily(id: string, idLike: string): string {
  const ids = [id, ...idLike.split(/\s+/)].filter(Boolean)
  // ID_LIKE lists the closest relative first; rhel beats fedora for "rhel centos fedora".
  for (const i of ids) if (i === 'rhel') return 'rhel'
  for (const i of ids) {
    if ((FAMILIES as readonly string[]).includes(i)) return i === 'fedora' && ids.length > 1 ? 'rhel' : i
    const f = Object.hasOwn(FAMILY_OF, i) ? FAMILY_OF[i] : undefined
    if (f !== undefined) return f
  }
  return ids[0] ?? 'unknown'
}

export interface OsInfo { name: string; prettyName: string | null; version: string | null; versionId: string | null; codename: string | null; id: string; idLike: string[]; family: string }

export async function osInfo(): Promise<OsInfo> {
  let rel: Record<string, string> = {}
  for (const f of FILES.osRelease) {
    const text = await readText(f)
    if (text !== undefined) { rel = parseOsRelease(text); break }
  }
  const id = rel.ID ?? os.type().toLowerCase()
  const idLike = rel.ID_LIKE ?? ''
  const codename = rel.VERSION_CODENAME ?? rel.UBUNTU_CODENAME ?? /\(([^)]+)\)/.exec(rel.VERSION ?? '')?.[1] ?? null
  return {
    name: rel.NAME ?? os.type(), prettyName: rel.PRETTY_NAME ?? null, version: rel.VERSION ?? null, versionId: rel.VERSION_ID ?? null,
    codename, id, idLike: idLike.split(/\s+/).filter(Boolean), family: osFamily(id, idLike),
  }
}

// ── info.users ───────────────────────────────────────────────────────────────

export interface UserInfo { name: string; uid: number; gid: number; gecos: string; home: string; shell: string; kind: 'normal' | 'system' }

const NO_LOGIN = /(^|\/)(nologin|false|sync|shutdown|halt)$/

/** UID_MIN from login.defs (default 1000). */
export function uidMin(loginDefs: string | undefined): number {
  const m = /^\s*UID_MIN\s+(\d+)/m.exec(loginDefs ?? '')
  return m ? Number(m[1]) : 1000
}

/** passwd(5) lines; a normal user has uid ≥ UID_MIN (not nobody's 65534) and a login shell. */
export function parsePasswd(text: string, min: number): UserInfo[] {
  const users: UserInfo[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue
    const [name = '', , uid = '', gid = '', gecos = '', home = '', shell = ''] = line.split(':')
    if (!/^\d+$/.test(uid)) continue
    const u = Number(uid)
    const normal = u >= min && u !== 65534 && shell !== '' && !NO_LOGIN.test(shell)
    users.push({ name, uid: u, gid: Number(gid), gecos, home, shell, kind: normal ? 'normal' : 'system' })
  }
  return users
}

const USERS_USAGE = 'info.users takes -A (all), -u (normal users), -S (system users) or -U NAME (one user)'

export async function usersInfo(args: string[]): Promise<UserInfo[] | UserInfo> {
  let values: { A?: boolean; u?: boolean; S?: boolean; U?: string }
  try {
    values = parseArgs({ args, options: { A: { type: 'boolean', short: 'A' }, u: { type: 'boolean', short: 'u' }, S: { type: 'boolean', short: 'S' }, U: { type: 'string', short: 'U' } }, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new OutpostError('method_args', `${USERS_USAGE}: ${(err as Error).message}`, { cause: err })
  }
  const chosen = [values.A, values.u, values.S, values.U !== undefined].filter(Boolean).length
  if (chosen > 1) throw new OutpostError('method_args', `${USERS_USAGE}; give only one`)
  const passwd = await readText(FILES.passwd)
  if (passwd === undefined) throw new OutpostError('io', `info.users: cannot read ${FILES.passwd}`)
  const users = parsePasswd(passwd, uidMin(await readText(FILES.loginDefs)))
  if (values.U !== undefined) {
    const u = users.find((x) => x.name === values.U)
    if (u === undefined) throw new OutpostError('not_found', `info.users: no user ${JSON.stringify(values.U)} in ${FILES.passwd}`)
    return u
  }
  if (values.u) return users.filter((u) => u.kind === 'normal')
  if (values.S) return users.filter((u) => u.kind === 'system')
  return users
}

// ── info.system ──────────────────────────────────────────────────────────────

/** Pseudo filesystems left out of the disk list. */
const PSEUDO_FS = new Set(['proc', 'sysfs', 'devtmpfs', 'devpts', 'cgroup', 'cgroup2', 'securityfs', 'pstore', 'debugfs', 'tracefs', 'configfs',
  'fusectl', 'mqueue', 'hugetlbfs', 'bpf', 'binfmt_misc', 'autofs', 'rpc_pipefs', 'nsfs', 'efivarfs', 'selinuxfs', 'ramfs'])

export interface DiskInfo { device: string; mount: string; type: string; totalBytes: number; freeBytes: number; availableBytes: number; usedPercent: number }

/** /proc/mounts escapes spaces and the like as \040 (octal). */
const unescapeMount = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))

async function disks(): Promise<DiskInfo[]> {
  const text = (await readText(FILES.mounts)) ?? ''
  const seen = new Set<string>()
  const out: DiskInfo[] = []
  for (const line of text.split('\n')) {
    const [dev, mnt, type] = line.split(' ')
    if (dev === undefined || mnt === undefined || type === undefined || PSEUDO_FS.has(type)) continue
    const mount = unescapeMount(mnt)
    if (seen.has(mount)) continue
    seen.add(mount)
    try {
      const s = await fs.statfs(mount)
      if (s.blocks === 0) continue
      const total = s.blocks * s.bsize
      const used = total - s.bfree * s.bsize
      out.push({ device: unescapeMount(dev), mount, type, totalBytes: total, freeBytes: s.bfree * s.bsize, availableBytes: s.bavail * s.bsize,
        usedPercent: used + s.bavail * s.bsize === 0 ? 0 : Math.round((used / (used + s.bavail * s.bsize)) * 1000) / 10 })
    } catch { /* not readable by this user, or gone meanwhile */ }
  }
  return out
}

/**
 * MHz: os.cpus() reads cpufreq, which VMs and many boards lack (it says 0 there); then the
 * `cpu MHz` (x86) or `clock` (ppc64le, "2900.000000MHz") line of /proc/cpuinfo; else null.
 */
export function cpuSpeed(fromOs: number | undefined, cpuinfo: string): number | null {
  if (fromOs !== undefined && fromOs > 0) return fromOs
  const m = /^(?:cpu MHz|clock)\s*:\s*([\d.]+)/m.exec(cpuinfo)
  const mhz = m ? Math.round(Number(m[1])) : NaN
  return Number.isFinite(mhz) && mhz > 0 ? mhz : null
}

function meminfo(text: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/^(\w+):\s+(\d+)\s*kB$/gm)) out[m[1]!] = Number(m[2]) * 1024
  return out
}

export async function systemInfo(): Promise<Record<string, unknown>> {
  const cpus = os.cpus()
  const cpuinfo = (await readText(FILES.cpuinfo)) ?? ''
  const model = cpus[0]?.model ?? /^(model name|Model|cpu model|cpu)\s*:\s*(.+)$/m.exec(cpuinfo)?.[2] ?? null
  const mem = meminfo((await readText(FILES.meminfo)) ?? '')
  const [l1, l5, l15] = os.loadavg()
  const nets = Object.entries(os.networkInterfaces()).map(([name, addrs]) => ({
    name,
    mac: addrs?.[0]?.mac ?? null,
    addresses: (addrs ?? []).map((a) => ({ family: a.family, address: a.address, cidr: a.cidr, internal: a.internal })),
  }))
  return {
    hostname: os.hostname(),
    arch: process.arch,
    cpu: { model, count: cpus.length || (cpuinfo.match(/^processor\s*:/gm)?.length ?? 0), speedMHz: cpuSpeed(cpus[0]?.speed, cpuinfo) },
    memory: {
      totalBytes: mem.MemTotal ?? os.totalmem(), freeBytes: mem.MemFree ?? os.freemem(), availableBytes: mem.MemAvailable ?? os.freemem(),
      swapTotalBytes: mem.SwapTotal ?? 0, swapFreeBytes: mem.SwapFree ?? 0,
    },
    load: { '1m': l1, '5m': l5, '15m': l15 },
    uptimeSeconds: Math.round(os.uptime()),
    disks: await disks(),
    network: nets,
  }
}

// ── the method objects ───────────────────────────────────────────────────────

function noArgs(name: string, ctx: MethodContext): void {
  if (ctx.args.length > 0) throw new OutpostError('method_args', `${name} takes no arguments, got ${JSON.stringify(ctx.args)}`)
}

export const infoKernel = {
  name: 'info.kernel', aliases: ['getinfo.kernel'], kind: 'unary', summary: 'Kernel name, release, version and machine, as JSON.',
  async run(ctx: MethodContext) { noArgs('info.kernel', ctx); return json(await kernelInfo()) },
} satisfies UnaryMethod

export const infoOs = {
  name: 'info.os', kind: 'unary', summary: 'Distribution name, version, codename, id and family (from /etc/os-release), as JSON.',
  async run(ctx: MethodContext) { noArgs('info.os', ctx); return json(await osInfo()) },
} satisfies UnaryMethod

export const infoUsers = {
  name: 'info.users', aliases: ['getinfo.users'], kind: 'unary', summary: 'Accounts from /etc/passwd as JSON: -A all, -u normal, -S system, -U NAME one.',
  async run(ctx: MethodContext) { return json(await usersInfo(ctx.args)) },
} satisfies UnaryMethod

export const infoSystem = {
  name: 'info.system', kind: 'unary', summary: 'CPU, memory, disks, load, uptime and network interfaces, as JSON.',
  async run(ctx: MethodContext) { noArgs('info.system', ctx); return json(await systemInfo()) },
} satisfies UnaryMethod
