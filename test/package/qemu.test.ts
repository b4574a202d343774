/**
 * The arm64 and ppc64le binaries under qemu user emulation (Debian's qemu-user-static with the
 * cross C libraries; binfmt is not mounted here, so qemu is called directly).
 */
import fs from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { VERSION, binary, isolated, run } from './helpers'

const EMU = [
  { arch: 'arm64', qemu: 'qemu-aarch64-static', sysroot: '/usr/aarch64-linux-gnu', platform: 'linux-arm64' },
  { arch: 'ppc64le', qemu: 'qemu-ppc64le-static', sysroot: '/usr/powerpc64le-linux-gnu', platform: 'linux-ppc64' },
]

for (const e of EMU) {
  test(`qemu - the ${e.arch} binary runs: version, a method, embedded sql.js and pty addon`, () => {
    if (run(e.qemu, ['--version']).code !== 0 || !fs.existsSync(e.sysroot)) {
      throw new Error(`${e.qemu} or ${e.sysroot} is missing: apt-get install qemu-user-static libc6-${e.arch === 'arm64' ? 'arm64' : 'ppc64el'}-cross (see .ci/run)`)
    }
    const bin = isolated(binary(e.arch))
    const q = (args: string[]): ReturnType<typeof run> => run(e.qemu, ['-L', e.sysroot, bin, ...args], { timeout: 120_000 })
    const v = q(['version', '--json'])
    assert.is(v.code, 0, v.stderr)
    const j = JSON.parse(v.stdout) as { version: string; platform: string }
    assert.is(j.version, VERSION)
    assert.is(j.platform, e.platform)
    const m = q(['call', 'info.os'])
    assert.is(m.code, 0, m.stderr)
    const os = (JSON.parse(m.stdout) as { data?: { id?: string; family?: string } }).data
    assert.ok(os && typeof os.id === 'string' && typeof os.family === 'string', m.stdout)
    const c = q(['self-check'])
    assert.is(c.code, 0, c.stderr)
    const check = JSON.parse(c.stdout) as { sqljs: string; pty: string }
    assert.match(check.sqljs, /^ok /)
    // ppc64le carries the addon when it could be cross-built; otherwise the fallback is named.
    if (e.arch === 'arm64') assert.is(check.pty, 'ok')
    else assert.ok(check.pty === 'ok' || check.pty.startsWith('unavailable (detached process group fallback)'), check.pty)
  })
}

test.run()
