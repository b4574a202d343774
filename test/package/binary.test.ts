/**
 * The x64 single binary, copied alone into a temporary folder (no node_modules anywhere):
 * version, a method, the embedded sql.js and pty addon, and an outbox that survives kill -9.
 */
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { hashToken } from '../../src/hub'
import { BinProc, VERSION, binary, isolated, run, tmpDir, until } from './helpers'

const bin = isolated(binary('x64'))
const cwd = path.dirname(bin)

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

function files(dir: string): string[] {
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]))
}

test('binary - runs alone and prints its version, as text and JSON', () => {
  assert.not.ok(fs.existsSync(path.join(cwd, 'node_modules')))
  const t = run(bin, ['version'], { cwd })
  assert.is(t.code, 0, t.stderr)
  assert.match(t.stdout, `outpost ${VERSION}`)
  const j = JSON.parse(run(bin, ['version', '--json'], { cwd }).stdout) as { version: string; platform: string }
  assert.is(j.version, VERSION)
  assert.is(j.platform, 'linux-x64')
})

test('binary - the embedded sql.js wasm and pty addon work (a command runs in a real pty)', () => {
  const r = run(bin, ['self-check'], { cwd })
  assert.is(r.code, 0, r.stderr)
  const c = JSON.parse(r.stdout) as { packaged: boolean; sqljs: string; pty: string }
  assert.ok(c.packaged)
  assert.match(c.sqljs, /^ok /)
  assert.is(c.pty, 'ok')
})

test('binary - call runs a method here (info.kernel)', () => {
  const r = run(bin, ['call', 'info.kernel'], { cwd })
  assert.is(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { data?: { name?: string; release?: string } }
  assert.is(out.data?.name, 'Linux', r.stdout)
  assert.type(out.data?.release, 'string')
})

test('binary - cli.stream runs through the embedded pty', () => {
  const r = run(bin, ['call', 'cli.stream', '--', 'sh', '-c', 'tty >/dev/null && echo stream-pty-ok'], { cwd, timeout: 30_000 })
  assert.is(r.code, 0, r.stderr)
  assert.match(r.stdout, 'stream-pty-ok')
})

test('binary - serves the fleet console from memory: the page, its script, a sign-in', async () => {
  const dir = tmpDir()
  const port = await freePort()
  const file = path.join(dir, 'a.yaml')
  fs.writeFileSync(file, `node: { name: a, central: a }\ndataDir: ${JSON.stringify(path.join(dir, 'a'))}\ntransport: { kind: tcp, servers: ["tcp://127.0.0.1:${await freePort()}"], token: tok-a }\napi: { http: "127.0.0.1:${port}", token: console-tok }\n`)
  const agent = new BinProc(bin, ['agent', '--config', file], { cwd: dir })
  try {
    await until(() => /HTTP API listening/.test(agent.output), 15_000, `the HTTP API\n${agent.output.slice(-1500)}`)
    const page = await fetch(`http://127.0.0.1:${port}/`)
    assert.is(page.status, 200)
    assert.match(await page.text(), /<script defer src="\/console\/app.js"><\/script>/)
    const js = await fetch(`http://127.0.0.1:${port}/console/app.js`)
    assert.is(js.status, 200)
    assert.ok((await js.text()).length > 5000)
    const signIn = await fetch(`http://127.0.0.1:${port}/console/session`, { method: 'POST', body: JSON.stringify({ token: 'console-tok' }) })
    assert.is(signIn.status, 200)
    assert.match(signIn.headers.get('set-cookie') ?? '', /^outpost_session=/)
  } finally {
    await agent.stop()
  }
})

test('binary - a message sent while the hub is down survives kill -9 and is delivered after restart', async () => {
  const dir = tmpDir()
  const port = await freePort()
  const server = `tcp://127.0.0.1:${port}`
  const cfg = (name: string): string => {
    const file = path.join(dir, `${name}.yaml`)
    fs.writeFileSync(file, `node: { name: ${name}, central: a }\ndataDir: ${JSON.stringify(path.join(dir, name))}\ntransport: { kind: tcp, servers: ["${server}"], token: tok-${name} }\nlog: { level: debug }\n`)
    return file
  }
  const a = cfg('a')
  const b = cfg('b')
  const hubCfg = path.join(dir, 'hub.yaml')
  fs.writeFileSync(hubCfg, `dataDir: ${JSON.stringify(path.join(dir, 'hub'))}\nhub: { listen: "127.0.0.1:${port}", tokens: { a: "${hashToken('tok-a')}", b: "${hashToken('tok-b')}" } }\n`)
  const procs: BinProc[] = []
  try {
    let agentA = new BinProc(bin, ['agent', '--config', a], { cwd: dir })
    procs.push(agentA)
    await until(() => fs.existsSync(path.join(dir, 'a', 'outpost.sock')), 15_000, 'agent a to listen')
    // b has never connected (nor has the hub run): a, central, has not heard of it.
    const sent = run(bin, ['send', '--config', a, '--to', 'b', '--allow-unknown', '--no-wait', 'node.ping'], { cwd: dir })
    assert.is(sent.code, 0, sent.stderr + sent.stdout)
    await agentA.stop('SIGKILL')
    agentA = new BinProc(bin, ['agent', '--config', a], { cwd: dir })
    procs.push(agentA)
    procs.push(new BinProc(bin, ['hub', '--config', hubCfg], { cwd: dir }))
    procs.push(new BinProc(bin, ['agent', '--config', b], { cwd: dir }))
    const replied = (): boolean => files(path.join(dir, 'a')).some((f) => f.endsWith('.log') && fs.readFileSync(f, 'utf8').includes('pong b'))
    await until(replied, 30_000, `the reply from b in a's data dir\n${procs.map((p) => p.output.slice(-1500)).join('\n---\n')}`)
  } finally {
    for (const p of procs.reverse()) await p.stop()
  }
})

test.run()
