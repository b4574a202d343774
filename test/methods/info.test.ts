import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { cpuSpeed, FILES, infoKernel, infoOs, infoSystem, infoUsers, osFamily, parseOsRelease, parsePasswd, uidMin } from '../../methods/info'
import { defaultConfig } from '../../src/config'
import type { MethodContext } from '../../src/method'
import { BIN } from '../fixtures/cluster'
import { rejectsCode } from '../helpers'

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-info-'))
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }))

function ctx(args: string[] = []): MethodContext {
  const config = defaultConfig()
  config.dataDir = tmp
  return { node: 'ship1', env: { id: '01J0000000000000000000000A', toNode: 'ship1', fromNode: 'central', method: 'info.users', methodArgs: args, createdAt: Date.now() }, args, config, dataDir: tmp, signal: new AbortController().signal, log: () => {} }
}

const data = async (p: Promise<{ data?: Uint8Array | string }>): Promise<any> => JSON.parse(String((await p).data)) // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON under test

const PASSWD = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
svc:x:1001:1001::/srv:/usr/sbin/nologin
bob:x:1500:1500::/home/bob:/bin/zsh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`

test('info - os-release families: debian, ubuntu, rhel clones, alpine, suse, arch', () => {
  assert.is(osFamily('debian', ''), 'debian')
  assert.is(osFamily('ubuntu', 'debian'), 'debian')
  assert.is(osFamily('rocky', 'rhel centos fedora'), 'rhel')
  assert.is(osFamily('centos', 'rhel fedora'), 'rhel')
  assert.is(osFamily('fedora', ''), 'fedora')
  assert.is(osFamily('alpine', ''), 'alpine')
  assert.is(osFamily('opensuse-leap', 'suse opensuse'), 'suse')
  assert.is(osFamily('manjaro', 'arch'), 'arch')
  assert.equal(parseOsRelease('NAME="Ubuntu"\nVERSION_CODENAME=jammy\n# c\nID=ubuntu\n'), { NAME: 'Ubuntu', VERSION_CODENAME: 'jammy', ID: 'ubuntu' })
})

test('info.users - -u keeps uid >= UID_MIN with a login shell; -S the rest; UID_MIN from login.defs', () => {
  const users = parsePasswd(PASSWD, uidMin('# x\nUID_MIN\t\t\t 1000\n'))
  assert.equal(users.filter((u) => u.kind === 'normal').map((u) => u.name), ['alice', 'bob'])
  assert.equal(users.filter((u) => u.kind === 'system').map((u) => u.name), ['root', 'daemon', 'svc', 'nobody'])
  assert.is(uidMin(undefined), 1000)
  assert.equal(parsePasswd(PASSWD, uidMin('UID_MIN 1200')).filter((u) => u.kind === 'normal').map((u) => u.name), ['bob'])
})

test('info.users - reads the real /etc/passwd: -A, -S, -U root, and refuses unknown flags and users with codes', async () => {
  const all = await data(infoUsers.run(ctx(['-A'])))
  assert.ok(all.some((u: { name: string }) => u.name === 'root'))
  const sys = await data(infoUsers.run(ctx(['-S'])))
  assert.ok(sys.every((u: { kind: string }) => u.kind === 'system'))
  assert.equal((await data(infoUsers.run(ctx(['-U', 'root'])))).uid, 0)
  assert.equal(await data(infoUsers.run(ctx([]))), all)
  await rejectsCode(infoUsers.run(ctx(['-X'])), 'method_args', '-A')
  await rejectsCode(infoUsers.run(ctx(['-u', '-S'])), 'method_args', 'only one')
  await rejectsCode(infoUsers.run(ctx(['-U', 'no-such-user-here'])), 'not_found', 'no-such-user-here')
})

test('info.users - a passwd file given by the FILES table is read (fixture)', async () => {
  const file = path.join(tmp, 'passwd')
  fs.writeFileSync(file, PASSWD)
  const old = FILES.passwd
  FILES.passwd = file
  try {
    assert.equal((await data(infoUsers.run(ctx(['-u'])))).map((u: { name: string }) => u.name), ['alice', 'bob'])
  } finally {
    FILES.passwd = old
  }
})

test('info.system - cpu speed from /proc/cpuinfo where cpufreq is absent (x86 `cpu MHz`, ppc64le `clock`)', () => {
  assert.is(cpuSpeed(1800, 'cpu MHz\t\t: 2596.138\n'), 1800)
  assert.is(cpuSpeed(0, 'processor\t: 0\ncpu MHz\t\t: 2596.138\n'), 2596)
  assert.is(cpuSpeed(undefined, 'processor\t: 0\ncpu\t\t: POWER9\nclock\t\t: 2900.000000MHz\n'), 2900)
  assert.is(cpuSpeed(0, 'processor\t: 0\nBogoMIPS\t: 108.00\n'), null)
})

test('info.kernel, info.os, info.system - structured facts of this host', async () => {
  const k = await data(infoKernel.run(ctx()))
  assert.is(k.release, os.release())
  assert.is(k.name, 'Linux')
  const o = await data(infoOs.run(ctx()))
  assert.type(o.name, 'string')
  assert.type(o.family, 'string')
  assert.ok(o.id.length > 0)
  const s = await data(infoSystem.run(ctx()))
  assert.is(s.cpu.count, os.cpus().length)
  // This host's speed, from cpufreq or /proc/cpuinfo; a VM without cpufreq says 0 through os.cpus().
  if (/^cpu MHz\s*:\s*[1-9]/m.test(fs.readFileSync('/proc/cpuinfo', 'utf8'))) assert.ok(s.cpu.speedMHz > 0, JSON.stringify(s.cpu))
  assert.ok(s.memory.totalBytes > 0)
  assert.ok(s.disks.some((d: { mount: string; totalBytes: number }) => d.mount === '/' && d.totalBytes > 0), JSON.stringify(s.disks))
  assert.ok(s.network.some((n: { name: string }) => n.name === 'lo'))
  assert.type(s.load['1m'], 'number')
  assert.ok(s.uptimeSeconds > 0)
  await rejectsCode(infoSystem.run(ctx(['x'])), 'method_args')
})

test('info - `outpost call info.users -- -S` prints the JSON locally; aliases work; a bad flag exits 1 with the code', () => {
  const config = path.join(tmp, 'c.yaml')
  fs.writeFileSync(config, `node: { name: here }\ndataDir: ${tmp}/data\n`)
  const r = spawnSync(process.execPath, [BIN, 'call', '--config', config, 'info.users', '--', '-S'], { encoding: 'utf8' })
  assert.is(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { data: { name: string; kind: string }[] }
  assert.ok(out.data.some((u) => u.name === 'root'))
  assert.ok(out.data.every((u) => u.kind === 'system'))
  const alias = spawnSync(process.execPath, [BIN, 'call', '--config', config, 'getinfo.kernel'], { encoding: 'utf8' })
  assert.is(alias.status, 0, alias.stderr)
  assert.is((JSON.parse(alias.stdout) as { data: { release: string } }).data.release, os.release())
  const bad = spawnSync(process.execPath, [BIN, 'call', '--config', config, 'info.users', '--', '-X'], { encoding: 'utf8' })
  assert.is(bad.status, 1)
  assert.match(bad.stderr, /method_args/)
})

test.run()
