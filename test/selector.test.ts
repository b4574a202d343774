/** The selector grammar (src/selector.ts): parsing, its errors, and matching nodes of central's list. */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { matches, parseSelector, type Selectable } from '../src/selector'
import { throwsCode } from './helpers'
import { BIN, Cluster, editYaml, section, sendVia, status } from './fixtures/cluster'
import { spawnSync } from 'node:child_process'

const FLEET: Selectable[] = [
  { name: 'ship1', labels: { site: 'oslo', role: 'db' }, facts: { os: 'linux', arch: 'arm64' } },
  { name: 'ship2', labels: { site: 'bergen', role: 'web' }, facts: { os: 'linux', arch: 'x64' } },
  { name: 'ship3', labels: { site: 'oslo', role: 'test', decommissioned: 'yes' }, facts: { os: 'linux', arch: 'arm64' } },
  { name: 'boat1', labels: {}, facts: { os: 'darwin', arch: 'arm64' } },
  // Heard of (presence, or an older node's hello) but its labels and facts are unknown.
  { name: 'ship9' },
]

const hits = (text: string): string[] => FLEET.filter((n) => matches(parseSelector(text), n)).map((n) => n.name)

test('selector - terms joined by commas must all hold', () => {
  assert.equal(hits('role=db'), ['ship1'])
  assert.equal(hits('site=oslo,arch=arm64'), ['ship1', 'ship3'])
  assert.equal(hits('site = oslo , role==db'), ['ship1'])
  assert.equal(hits('os=darwin'), ['boat1'])
})

test('selector - in, notin, != and presence', () => {
  assert.equal(hits('site in (oslo,bergen)'), ['ship1', 'ship2', 'ship3'])
  assert.equal(hits('site in ( bergen )'), ['ship2'])
  assert.equal(hits('site notin (oslo)'), ['ship2', 'boat1'])
  assert.equal(hits('role!=test'), ['ship1', 'ship2', 'boat1'])
  assert.equal(hits('decommissioned'), ['ship3'])
  assert.equal(hits('!decommissioned'), ['ship1', 'ship2', 'boat1'])
  assert.equal(hits('!decommissioned,site in (oslo,bergen),arch=arm64'), ['ship1'])
})

test('selector - name globs match by name alone', () => {
  assert.equal(hits('ship*'), ['ship1', 'ship2', 'ship3', 'ship9'])
  assert.equal(hits('*'), FLEET.map((n) => n.name))
  assert.equal(hits('s?ip1'), ['ship1'])
  assert.equal(hits('ship*,role=db'), ['ship1'])
  assert.equal(hits('*1'), ['ship1', 'boat1'])
  assert.equal(hits('s*p*'), ['ship1', 'ship2', 'ship3', 'ship9'])
  assert.equal(hits('ship?9'), [])
  // A pattern that would make a regular expression backtrack for ages answers at once.
  assert.not.ok(matches(parseSelector(`${'*a'.repeat(30)}*b`), { name: 'a'.repeat(63) }))
  assert.ok(matches(parseSelector(`${'*a'.repeat(30)}*`), { name: 'a'.repeat(63) }))
})

test('selector - a node whose labels are unknown matches no label or fact term, not even a negated one', () => {
  const unknown: Selectable = { name: 'ship9' }
  for (const s of ['role=db', 'role!=db', '!decommissioned', 'site notin (oslo)', 'decommissioned', 'arch=arm64', '!os']) {
    assert.not.ok(matches(parseSelector(s), unknown), s)
  }
  // Labels known, facts not: label terms work, fact terms do not.
  const noFacts: Selectable = { name: 'x', labels: { role: 'db' } }
  assert.ok(matches(parseSelector('role=db'), noFacts))
  assert.not.ok(matches(parseSelector('arch!=x64'), noFacts))
  // Names from the wire are looked up as own keys only.
  assert.not.ok(matches(parseSelector('constructor'), { name: 'y', labels: {} }))
})

test('selector - refuses what does not parse with selector_invalid, naming the wrong part', () => {
  throwsCode(() => parseSelector(''), 'selector_invalid', 'is empty')
  throwsCode(() => parseSelector('role=db,,site=oslo'), 'selector_invalid', 'empty term')
  throwsCode(() => parseSelector('site in (oslo,bergen'), 'selector_invalid', 'without its )')
  throwsCode(() => parseSelector('site in oslo)'), 'selector_invalid', 'without its (')
  throwsCode(() => parseSelector('role='), 'selector_invalid', 'an empty value')
  throwsCode(() => parseSelector('role=db server'), 'selector_invalid', '"db server"')
  throwsCode(() => parseSelector('9role=db'), 'selector_invalid', '"9role"', 'label name')
  throwsCode(() => parseSelector('!'), 'selector_invalid', '""')
  throwsCode(() => parseSelector('ship.*'), 'selector_invalid', 'name pattern')
  throwsCode(() => parseSelector('site in (oslo,)'), 'selector_invalid', 'an empty value')
  throwsCode(() => parseSelector(`role in (${'a,'.repeat(3000)}b)`), 'selector_invalid', '6011 characters long', 'at most 4096')
})

test('selector - central resolves --to SELECTOR against its node list; a node with unknown labels is not hit', async () => {
  const c = await Cluster.create(['ship1', 'ship2', 'ship3', 'old'])
  try {
    const labels: Record<string, Record<string, string>> = { ship1: { site: 'oslo', role: 'db' }, ship2: { site: 'bergen', role: 'web' }, ship3: { site: 'oslo', decommissioned: 'yes' } }
    for (const [n, l] of Object.entries(labels)) editYaml(c.node(n).config, (d) => { section(d, 'node').labels = l })
    // An older node, as far as central can tell: connected, but no heartbeat with labels.
    editYaml(c.node('old').config, (d) => { section(d, 'hello').interval = 0 })
    await c.startHub()
    for (const n of ['central', 'ship1', 'ship2', 'ship3', 'old']) await c.start(n)
    const central = c.node('central')
    for (const end = Date.now() + 15_000; ;) {
      const r = spawnSync(process.execPath, [BIN, 'nodes', '--json', '--config', central.config], { encoding: 'utf8' })
      const list = JSON.parse(r.stdout) as Selectable[]
      if (['ship1', 'ship2', 'ship3'].every((n) => list.find((x) => x.name === n)?.labels !== undefined) && list.some((x) => x.name === 'old')) break
      if (Date.now() > end) throw new Error(`central never listed the labels: ${r.stdout}`)
      await new Promise((r) => setTimeout(r, 100))
    }

    const to = async (sel: string): Promise<string[]> => {
      const r = await sendVia(central.socket, [{ toNodes: [sel], method: 'node.ping' }], { ms: 15_000 })
      assert.is(r.replies.length, r.accepted.length, JSON.stringify(r))
      return r.accepted.map((a) => a.toNode).sort()
    }
    assert.equal(await to('site in (oslo,bergen),!decommissioned'), ['ship1', 'ship2'])
    assert.equal(await to('!decommissioned'), ['central', 'ship1', 'ship2'])
    assert.equal(await to('ship*'), ['ship1', 'ship2', 'ship3'])

    // The command line: the selector's nodes answer, each line prefixed by its name.
    const cli = spawnSync(process.execPath, [BIN, 'send', '--config', central.config, '--to', 'role=db', 'node.ping'], { encoding: 'utf8' })
    assert.is(cli.status, 0, cli.stderr)
    assert.match(cli.stdout, /pong ship1/)
    assert.not.match(cli.stdout, /ship2|ship3|old/)
    const none = spawnSync(process.execPath, [BIN, 'send', '--config', central.config, '--to', 'role=mail', 'node.ping'], { encoding: 'utf8' })
    assert.is(none.status, 2, none.stderr)
    assert.match(none.stderr, /no node central knows matches the selector "role=mail".*\[selector_no_match\]/)
    const wrong = spawnSync(process.execPath, [BIN, 'send', '--config', central.config, '--to', 'site in (oslo', 'node.ping'], { encoding: 'utf8' })
    assert.is(wrong.status, 2, wrong.stderr)
    assert.match(wrong.stderr, /without its \).*\[selector_invalid\]/)
    // Another node keeps no list: it refuses rather than guess.
    const away = spawnSync(process.execPath, [BIN, 'send', '--config', c.node('ship2').config, '--to', 'role=db', 'node.ping'], { encoding: 'utf8' })
    assert.is(away.status, 2, away.stderr)
    assert.match(away.stderr, /ship2 keeps no list of the fleet.*\[selector_no_match\]/)
    assert.is((await status(c.node('ship2').socket)).outbox.count, 0)
  } finally {
    await c.destroy()
  }
})

test.run()
