/**
 * The README's fleet: `outpost hub` with node.name runs central in its own process, and a node
 * connects over TCP. A file pulled from that node to central arrives in part frames that the
 * hub reads into the one buffer it reads every socket into (src/hub-read.ts) and hands to the
 * in-process central: the parts must be copied before the next read overwrites them, or every
 * chunk arrives as junk (`not MessagePack`), is dropped, and the pull never ends (found in an
 * operator's trial, 2026-12-06); so does a command's output past 64 KiB, whose `send` never
 * ends, and a tunnel's answer past it. Real hub and agent, real `outpost cp`, `send`, `tunnel`.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { hashToken } from '../../src/hub'
import { BIN, freePort, Proc, tmpDir } from '../fixtures/cluster'
import { hashingServer, request } from '../fixtures/http-target'
import { randomFile, sha256Of } from './helpers'

/** The CLI, killed after `ms` (code null then). */
function run(args: string[], ms: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { out += d.toString() })
    const t = setTimeout(() => child.kill('SIGKILL'), ms)
    child.on('close', (code) => { clearTimeout(t); resolve({ code, out }) })
  })
}

test('files - a pull from a node into the central that runs inside `outpost hub` arrives whole', async () => {
  const dir = tmpDir()
  const port = await freePort()
  const hubFile = path.join(dir, 'hub.yaml')
  const shipFile = path.join(dir, 'ship1.yaml')
  fs.writeFileSync(hubFile, YAML.stringify({ node: { name: 'central' }, dataDir: path.join(dir, 'central'), hub: { listen: `127.0.0.1:${port}`, tokens: { ship1: hashToken('s1') } }, hello: { interval: 1 } }))
  fs.writeFileSync(shipFile, YAML.stringify({ node: { name: 'ship1', central: 'central' }, dataDir: path.join(dir, 'ship1'), transport: { servers: [`tcp://127.0.0.1:${port}`], token: 's1' }, hello: { interval: 1 } }))
  const hub = new Proc(['hub', '--config', hubFile])
  const ship = new Proc(['agent', '--config', shipFile])
  try {
    await hub.waitFor(/api: listening on .*central/)
    await hub.waitFor(/ship1 connected/)
    const files = path.join(dir, 'ship1', 'files')
    fs.mkdirSync(files, { recursive: true })
    // Several chunks of 256 KiB, each cut into part frames.
    const sum = randomFile(path.join(files, 'big.bin'), 3 * 1024 * 1024 + 12345)
    const target = path.join(dir, 'pulled.bin')
    // Without the copy the pull never ends: cut it off (a few seconds do on a quiet machine).
    const r = await run(['cp', '--config', hubFile, `ship1:${path.join(files, 'big.bin')}`, target], 60_000)
    assert.is(r.code, 0, `${r.out}\n${hub.output.slice(-2000)}`)
    assert.is(sha256Of(target), sum)
    // A reply past one read of the hub (64 KiB) comes in parts the same way: a command's output.
    const big = await run(['send', '--config', hubFile, '--to', 'ship1', 'cli.run', '--', 'head -c 300000 /dev/zero | tr "\\0" x'], 60_000)
    assert.is(big.code, 0, big.out.slice(-2000))
    assert.ok(big.out.includes('x'.repeat(300000)), `the whole output: ${big.out.length} characters`)
    // And a tunnel's bytes from ship1's side (live frames past one read): a 2 MiB answer through
    // `outpost tunnel` on central (on main's build the tunnel closed with session_closed).
    const { server, port: web } = await hashingServer(2 * 1024 * 1024)
    try {
      const set = await run(['config', 'set', '--config', shipFile, 'tunnels.allow', `[127.0.0.1:${web}]`], 20_000) // applied at once
      assert.is(set.code, 0, set.out)
      const local = await freePort()
      const t = new Proc(['tunnel', 'ship1', `${local}:127.0.0.1:${web}`, '--once', '--config', hubFile])
      try {
        await t.waitFor(/tunnel listening on/)
        const got = await request(local, '/through')
        assert.ok(got.body.equals(Buffer.alloc(2 * 1024 * 1024, '/through')), `the whole answer: ${got.body.length} bytes\n${t.output}`)
      } finally {
        await t.stop('SIGKILL')
      }
    } finally {
      server.close()
    }
    assert.not.match(hub.output, /not MessagePack/)
  } finally {
    await ship.stop('SIGKILL')
    await hub.stop('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
