import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { fingerprint, generateKeyPair, publicKeyText } from '../src/keys'
import { NodeList } from '../src/node-list'
import type { Envelope } from '../src/wire/envelope'
import { eventually } from './helpers'
import { tmpDir } from './fixtures/ports'

type Line = { level: string; message: string; code: unknown }

function list(dir: string, nodeKeys: Record<string, string> = {}) {
  const lines: Line[] = []
  const nodes = new NodeList(dir, { now: Date.now, log: (level, message, fields) => lines.push({ level, message, code: fields?.code }), nodeKeys: () => nodeKeys })
  return { nodes, lines }
}

let seq = 0
function hello(from: string, data: Record<string, unknown>): Envelope {
  return { id: `01HELLO${seq++}`, toNode: 'central', fromNode: from, method: 'node.hello', createdAt: Date.now(), data: JSON.stringify(data) }
}

const key = (): string => publicKeyText(generateKeyPair().publicKey)
const entry = (nodes: NodeList, name: string) => nodes.list('central', 30).find((n) => n.name === name)

test('node list - pins the key of a node\'s first hello and lists it with its fingerprint', () => {
  const { nodes, lines } = list(tmpDir())
  const k = key()
  assert.ok(nodes.record(hello('ship1', { version: '1', publicKey: k })))
  assert.ok(nodes.record(hello('ship1', { version: '2', publicKey: k })))
  const e = entry(nodes, 'ship1')!
  assert.is(e.publicKey, k)
  assert.is(e.keyFingerprint, fingerprint(k))
  assert.is(e.version, '2')
  assert.equal(lines, [])
})

test('node list - a hello with another key, or none, is refused, logged once, and the pinned key stays', () => {
  const { nodes, lines } = list(tmpDir())
  const k = key()
  const other = key()
  nodes.record(hello('ship1', { version: '1', publicKey: k }))
  assert.not.ok(nodes.record(hello('ship1', { version: 'evil', publicKey: other })))
  assert.not.ok(nodes.record(hello('ship1', { version: 'evil', publicKey: other })))
  assert.not.ok(nodes.record(hello('ship1', { version: 'evil' })))
  const e = entry(nodes, 'ship1')!
  assert.is(e.publicKey, k)
  assert.is(e.version, '1')
  assert.is(lines.length, 1, JSON.stringify(lines))
  assert.is(lines[0]!.code, 'key_changed')
  assert.is(lines[0]!.level, 'warn')
  for (const f of ['ship1', fingerprint(other), fingerprint(k), 'first seen']) assert.ok(lines[0]!.message.includes(f), lines[0]!.message)
  // The right key again, then a forgery again: logged again.
  assert.ok(nodes.record(hello('ship1', { publicKey: k })))
  assert.not.ok(nodes.record(hello('ship1', { publicKey: other })))
  assert.is(lines.length, 2)
  // Another node's key is its own business.
  assert.ok(nodes.record(hello('ship2', { publicKey: other })))
})

test('node list - the hello cannot set the fingerprint itself', () => {
  const { nodes } = list(tmpDir())
  const k = key()
  nodes.record(hello('ship1', { publicKey: k, keyFingerprint: 'SHA256:0000000000000000' }))
  assert.is(entry(nodes, 'ship1')!.keyFingerprint, fingerprint(k))
})

test('node list - a key in security.nodeKeys is pinned before any hello; a hello with another is refused', () => {
  const k = key()
  const { nodes, lines } = list(tmpDir(), { ship1: k })
  assert.not.ok(nodes.record(hello('ship1', { publicKey: key() })))
  assert.is(entry(nodes, 'ship1'), undefined)
  assert.is(lines[0]!.code, 'key_changed')
  assert.ok(lines[0]!.message.includes('security.nodeKeys'), lines[0]!.message)
  assert.ok(nodes.record(hello('ship1', { publicKey: k })))
  assert.is(entry(nodes, 'ship1')!.keyFingerprint, fingerprint(k))
})

test('node list - a hello whose publicKey is not an ed25519 key is refused (key_invalid)', () => {
  const { nodes, lines } = list(tmpDir())
  assert.not.ok(nodes.record(hello('ship1', { publicKey: 'ed25519:short' })))
  assert.is(entry(nodes, 'ship1'), undefined)
  assert.is(lines[0]!.code, 'key_invalid')
})

test('node list - pinned keys survive a restart in nodes.json', async () => {
  const dir = tmpDir()
  const k = key()
  list(dir).nodes.record(hello('ship1', { publicKey: k }))
  const file = path.join(dir, 'nodes.json')
  await eventually('ship1 in nodes.json', () => {
    try { return (JSON.parse(fs.readFileSync(file, 'utf8')) as { name: string }[]).some((n) => n.name === 'ship1') ? true : undefined } catch { return undefined }
  })
  const after = list(dir)
  assert.not.ok(after.nodes.record(hello('ship1', { publicKey: key() })))
  assert.is(entry(after.nodes, 'ship1')!.publicKey, k)
  assert.is(after.lines[0]!.code, 'key_changed')
})

test('node list - replies must be signed once a node\'s hello said it signs them; a later hello cannot take that back', () => {
  const { nodes } = list(tmpDir())
  const k = key()
  assert.is(nodes.replyKey('ship1'), undefined)
  assert.ok(nodes.record(hello('ship1', { publicKey: k })))
  assert.equal(nodes.replyKey('ship1'), { publicKey: k, strict: false })
  assert.ok(nodes.record(hello('ship1', { publicKey: k, signsReplies: true })))
  assert.equal(nodes.replyKey('ship1'), { publicKey: k, strict: true })
  assert.ok(nodes.record(hello('ship1', { publicKey: k })))
  assert.equal(nodes.replyKey('ship1'), { publicKey: k, strict: true })
  assert.is(entry(nodes, 'ship1')!.signsReplies, true)
})

test.run()
