/**
 * `outpost config set|unset` (and the flags `agent` and `hub` write back) keep the lines they do
 * not change exactly as the operator wrote them: the README's hub.yaml with its aligned
 * comments, ship1.yaml with a tight flow list beside a padded flow map.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { editConfig } from '../../src/config'

const HUB = `# hub.yaml: the hub machine (the hub, and the node central inside it)
node: { name: central }
dataDir: ./central                    # /var/lib/outpost on a real machine
hub:
  listen: 127.0.0.1:7430              # 0.0.0.0:7430 to let in nodes from other machines
  # ship1's token, hashed: outpost hub --hash-token ship1-secret
  tokens: { ship1: "sha256:f17b102cbb6c4fed5e4f6c04c6a1fcc67d8946e1eaf45d629aa0e47adf0bd485" }
`

const SHIP1 = `# ship1.yaml
node: { name: ship1, central: central }
dataDir: ./ship1
transport: { kind: tcp, servers: ["tcp://127.0.0.1:7430"], token: ship1-secret }
`

const dirs: string[] = []

function file(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-spacing-'))
  dirs.push(dir)
  const f = path.join(dir, 'outpost.yaml')
  fs.writeFileSync(f, text)
  return f
}

test.after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }) })

test('config edit - lines the edit does not change keep their spacing: aligned comments, a flow list padded unlike the rest', () => {
  const hub = file(HUB)
  editConfig(hub, [{ key: 'log.level', value: 'debug' }])
  const after = fs.readFileSync(hub, 'utf8').split('\n')
  for (const line of HUB.split('\n').filter((l) => l !== '')) assert.ok(after.includes(line), `kept as written: ${JSON.stringify(line)}\n--- file:\n${after.join('\n')}`)
  assert.match(after.join('\n'), /^log:\n {2}level: debug$/m)

  const ship1 = file(SHIP1)
  editConfig(ship1, [{ key: 'delivery.retries', unset: true }]) // not in the file: nothing changes
  assert.is(fs.readFileSync(ship1, 'utf8'), SHIP1)
  editConfig(ship1, [{ key: 'delivery.retries', value: 7 }])
  assert.ok(fs.readFileSync(ship1, 'utf8').startsWith(SHIP1), fs.readFileSync(ship1, 'utf8'))

  // Spacing that is part of a value is never put back over the new value.
  const cmd = file('methods:\n  commands: { hi: "echo  hi", ho: "echo ho" }   # aligned\n')
  assert.is(editConfig(cmd, [{ key: 'methods.commands.hi', value: 'echo hi' }]).methods.commands.hi, 'echo hi')
  assert.not.match(fs.readFileSync(cmd, 'utf8'), 'echo  hi')
})

test('config edit - a value set where a one-line list was stays one line, and the comment after the old value stays', () => {
  const f = file('transport:\n  servers: [ tcp://hub1:7430 ]   # the hubs, in order\ndelivery:\n  retries: 7  # a slow link\n')
  editConfig(f, [{ key: 'transport.servers', value: ['tcp://hub1:7430', 'tcp://hub2:7430'] }, { key: 'delivery.retries', value: 9 }])
  assert.is(fs.readFileSync(f, 'utf8'), 'transport:\n  servers: [ tcp://hub1:7430, tcp://hub2:7430 ] # the hubs, in order\ndelivery:\n  retries: 9 # a slow link\n')
})

test.run()
