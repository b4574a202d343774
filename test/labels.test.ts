/**
 * Labels and facts: node.labels in the config, the facts a node finds out, both carried by
 * node.hello to central's node list and shown by `outpost nodes --labels` / `--json`.
 */
import { spawn } from 'node:child_process'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parseConfig } from '../src/config'
import { defaultsContext } from '../src/config/schema'
import { facts, wireLabels } from '../src/labels'
import { BIN, Cluster, editYaml, section, sendVia } from './fixtures/cluster'
import { throwsCode } from './helpers'

interface Listed { name: string; online: boolean; labels?: Record<string, string>; facts?: Record<string, string> }

function outpost(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

async function listed(c: Cluster): Promise<Listed[]> {
  const r = await outpost(['nodes', '--json', '--config', c.node('central').config])
  assert.is(r.code, 0, r.stderr)
  return JSON.parse(r.stdout) as Listed[]
}

/** Poll central's list until `ok` holds for the entry of `name`. */
async function until(c: Cluster, name: string, what: string, ok: (n: Listed) => boolean): Promise<Listed> {
  let last: Listed[] = []
  for (const end = Date.now() + 15_000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
    last = await listed(c)
    const n = last.find((x) => x.name === name)
    if (n !== undefined && ok(n)) return n
  }
  throw new Error(`timed out waiting for ${what}; central lists ${JSON.stringify(last)}`)
}

test('labels - the config refuses a bad label name or value, naming the key and its line', () => {
  const ctx = defaultsContext()
  const ok = parseConfig('node:\n  name: a\n  labels:\n    site: oslo\n    role: db\n', 'x.yaml', ctx)
  assert.equal(ok.node.labels, { site: 'oslo', role: 'db' })
  throwsCode(() => parseConfig('node:\n  name: a\n  labels:\n    site: oslo\n    "bad key": x\n', 'x.yaml', ctx), 'config_invalid', 'node.labels.bad key', 'not a label name', '(line 5)')
  throwsCode(() => parseConfig('node:\n  labels:\n    role: "db server"\n', 'x.yaml', ctx), 'config_invalid', 'node.labels.role', '"db server"', '(line 3)')
  throwsCode(() => parseConfig('node:\n  labels:\n    role: ""\n', 'x.yaml', ctx), 'config_invalid', 'node.labels.role', '(line 3)')
  throwsCode(() => parseConfig('node:\n  labels:\n    arch: arm\n', 'x.yaml', ctx), 'config_invalid', 'node.labels.arch', 'built-in fact', '(line 3)')
  throwsCode(() => parseConfig('node:\n  labels:\n    rack: 3\n', 'x.yaml', ctx), 'config_invalid', 'node.labels.rack', 'must be a string (quote it: "3")', '(line 3)')
  const many = Array.from({ length: 65 }, (_, i) => `    l${i}: v\n`).join('')
  throwsCode(() => parseConfig(`node:\n  labels:\n${many}`, 'x.yaml', ctx), 'config_invalid', 'node.labels has 65 labels', 'at most 64', '(line 3)')
})

test('labels - facts a node cannot determine are absent, never empty', () => {
  const f = facts({ platform: 'linux', arch: 'arm64', hostname: () => '', release: () => { throw new Error('no') }, osRelease: () => 'NAME="Debian"\nVERSION_ID="12"\n' })
  assert.equal(Object.keys(f).sort(), ['arch', 'os', 'osVersion', 'version'])
  assert.is(f.osVersion, '12')
  const g = facts({ platform: 'darwin', arch: 'x64', hostname: () => 'mac.local', release: () => '23.5.0', osRelease: () => 'VERSION_ID=1' })
  assert.not.ok(Object.hasOwn(g, 'osVersion'))
  assert.is(g.kernel, '23.5.0')
  assert.is(g.hostname, 'mac.local')
})

test('labels - from the wire only well-formed string pairs are kept; constructor is a name like any other', () => {
  assert.is(wireLabels(undefined), undefined)
  assert.is(wireLabels('site=oslo'), undefined)
  const l = wireLabels(JSON.parse('{"site":"oslo","n":3,"bad key":"x","role":"a b","__proto__":"x","constructor":"c"}'))!
  assert.equal(Object.keys(l).sort(), ['constructor', 'site'])
  assert.is(l.constructor as unknown, 'c')
  assert.is(Object.getPrototypeOf(l), Object.prototype)
})

test('labels - central lists the labels and facts of two nodes, a live change, and an older node without labels', async () => {
  const c = await Cluster.create(['ship1', 'ship2', 'old'])
  try {
    editYaml(c.node('ship1').config, (d) => {
      section(d, 'node').labels = { site: 'oslo', role: 'db' }
      // Heartbeats an hour apart: only the hello at connect and the one a change sends arrive.
      section(d, 'hello').interval = 3600
    })
    editYaml(c.node('ship2').config, (d) => { section(d, 'node').labels = { site: 'bergen', role: 'web', decommissioned: 'yes' } })
    // An older node sends no heartbeats of its own here; it sends the raw hello below.
    editYaml(c.node('old').config, (d) => { section(d, 'hello').interval = 0 })
    await c.startHub()
    for (const n of ['central', 'ship1', 'ship2', 'old']) await c.start(n)

    const s1 = await until(c, 'ship1', 'ship1 with labels', (n) => n.labels !== undefined)
    const s2 = await until(c, 'ship2', 'ship2 with labels', (n) => n.labels !== undefined)
    assert.equal(s1.labels, { site: 'oslo', role: 'db' })
    assert.equal(s2.labels, { site: 'bergen', role: 'web', decommissioned: 'yes' })
    for (const n of [s1, s2]) {
      assert.is(n.facts?.os, process.platform)
      assert.is(n.facts?.arch, process.arch)
      assert.ok(/^\d+\.\d+/.test(n.facts?.version ?? ''), JSON.stringify(n.facts))
      for (const v of Object.values(n.facts ?? {})) assert.ok(v !== '', JSON.stringify(n.facts))
    }

    // The table: labels sorted name=value, ? for a node whose hello had none.
    const table = await outpost(['nodes', '--labels', '--config', c.node('central').config])
    assert.is(table.code, 0, table.stderr)
    assert.match(table.stdout, /LABELS\s+FACTS/)
    assert.match(table.stdout, /ship1 .* role=db,site=oslo\s+arch=/)
    assert.match(table.stdout, /ship2 .* decommissioned=yes,role=web,site=bergen\s+arch=/)

    // A label set at run time reaches central at once (ship1's next heartbeat is an hour away).
    const set = await outpost(['config', 'set', 'node.labels.role', 'web', '--config', c.node('ship1').config])
    assert.is(set.code, 0, set.stderr)
    assert.match(set.stdout, /applied at once: node\.labels/)
    const changed = await until(c, 'ship1', 'ship1 relabelled', (n) => n.labels?.role === 'web')
    assert.equal(changed.labels, { site: 'oslo', role: 'web' })
    const bad = await outpost(['config', 'set', 'node.labels.role', 'no way', '--config', c.node('ship1').config])
    assert.is(bad.code, 2)
    assert.match(bad.stderr, /node\.labels\.role .*not a label value.*\(the value given; .* is unchanged\)/)
    assert.match(bad.stderr, /\[config_invalid\]/)

    // An older node's hello: no labels, no facts. Accepted and listed, its labels unknown.
    await sendVia(c.node('old').socket, [{ toNode: 'central', method: 'node.hello', data: JSON.stringify({ version: '0.0.9', apiVersion: 1, os: 'Linux 5.10', arch: 'arm', uptime: 5 }) }], { wait: false })
    const old = await until(c, 'old', "the older node's hello", (n) => (n as Listed & { version?: string }).version === '0.0.9')
    assert.not.ok(Object.hasOwn(old, 'labels'), JSON.stringify(old))
    assert.not.ok(Object.hasOwn(old, 'facts'), JSON.stringify(old))
    const again = await outpost(['nodes', '--labels', '--config', c.node('central').config])
    assert.match(again.stdout, /\nold .*\?\s+\?\n/)
  } finally {
    await c.destroy()
  }
})

test.run()
