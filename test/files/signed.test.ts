/**
 * File transfer between nodes that require signatures: the messages a transfer is made of are
 * signed with the sending node's api.signingKey, and the parts of a pull come in because the
 * node asked for them itself (its signed file.get). Real hub and agents.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair, publicKeyText, writeKeyFile } from '../../src/keys'
import { Cluster, editYaml, section } from '../fixtures/cluster'
import { cp, errorCode, partials, randomFile, sha256Of } from './helpers'

let c: Cluster

test.before(async () => {
  c = await Cluster.create(['ship1'])
  const pair = generateKeyPair()
  const keyFile = path.join(c.dir, 'ops.key')
  writeKeyFile(keyFile, pair)
  const trusted = [{ name: 'ops', publicKey: publicKeyText(pair.publicKey), methods: ['*'] }]
  for (const n of ['central', 'ship1']) {
    editYaml(c.node(n).config, (doc) => {
      section(doc, 'security').requireSignatures = true
      section(doc, 'security').trustedKeys = trusted
    })
  }
  editYaml(c.node('central').config, (doc) => { section(doc, 'api').signingKey = keyFile })
  await c.startHub()
  await c.start('central')
  await c.start('ship1')
})

test.after(async () => {
  await c.destroy()
})

const filesOf = (n: string): string => path.join(c.node(n).dataDir, 'files')

test('files, signed - a push and a pull between nodes that require signatures arrive whole', async () => {
  const src = path.join(c.dir, 'fw.bin')
  const sum = randomFile(src, 700_000)
  const push = await cp(c, 'central', [src, `ship1:${filesOf('ship1')}/fw.bin`])
  assert.is(push.code, 0, push.stderr + JSON.stringify(push.lines))
  assert.is(sha256Of(path.join(filesOf('ship1'), 'fw.bin')), sum)
  // A pull: ship1 has no key of its own to sign with; central takes its parts as the answer to its own signed file.get.
  const back = path.join(c.dir, 'back.bin')
  const pull = await cp(c, 'central', [`ship1:${filesOf('ship1')}/fw.bin`, back])
  assert.is(pull.code, 0, pull.stderr + JSON.stringify(pull.lines))
  assert.is(sha256Of(back), sum)
})

test('files, signed - a push from a node without a signing key is refused by the receiver and leaves nothing', async () => {
  const src = path.join(c.dir, 'own.bin')
  randomFile(src, 200_000)
  fs.mkdirSync(filesOf('central'), { recursive: true })
  // ship1 pushes to central (asked on ship1's own socket): ship1 signs nothing, central requires it.
  const r = await cp(c, 'ship1', [src, `central:${filesOf('central')}/own.bin`])
  assert.is(errorCode(r), 'signature_required', JSON.stringify(r.lines))
  // The advice fits the command: `outpost cp` takes no --key; ship1's api.signingKey would sign it.
  assert.match(JSON.stringify(r.lines) + r.stderr, /set api\.signingKey on ship1/)
  assert.not.match(JSON.stringify(r.lines) + r.stderr, /--key FILE/)
  assert.is(r.code, 3)
  assert.not.ok(fs.existsSync(path.join(filesOf('central'), 'own.bin')))
  assert.equal(partials(filesOf('central')), [])
})

test.run()
