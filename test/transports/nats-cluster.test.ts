/**
 * Scale-out on NATS: a 3-server cluster on loopback, nodes attached to different servers,
 * commands across the cluster, then one server is SIGKILLed mid-stream: the nodes on it fail
 * over to the others and nothing is lost or run twice. Also auth by token, nkey seed and TLS.
 */
import fs from 'node:fs'
import path from 'node:path'
import { nkeys } from 'nats'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Mosquitto, NatsServer } from '../fixtures/brokers'
import { Cluster, editYaml, section, sendVia, status } from '../fixtures/cluster'
import { runsOf, untilRuns } from '../contract/suite'

const cmd = (to: string, file: string, tag: string): Record<string, unknown> =>
  ({ toNode: to, method: 'cli.run', methodArgs: [`echo ${tag} >> ${file}; sleep 0.05; echo done ${tag}`] })

test('nats cluster - nodes on different servers exchange commands, and a killed server loses nothing', async () => {
  const servers = await NatsServer.cluster(3)
  const c = await Cluster.create(['ship1', 'ship2'], { delivery: { ackTimeout: 2, retries: 20, ttl: 120 } }, 'nats')
  try {
    await Promise.all(servers.map((s) => s.start()))
    const [a, b, cc] = servers.map((s) => s.url) as [string, string, string]
    // Each node starts on a different server, the others behind it in its list.
    const lists: Record<string, string[]> = { central: [a, b, cc], ship1: [b, cc, a], ship2: [cc, a, b] }
    for (const [name, list] of Object.entries(lists)) editYaml(c.node(name).config, (doc) => { section(doc, 'transport').servers = list; delete section(doc, 'transport').nats })
    for (const name of Object.keys(lists)) await c.start(name)
    const runs = path.join(c.dir, 'runs.log')
    // Across the cluster, both ways.
    const first = await sendVia(c.node('central').socket, [cmd('ship1', runs, 's1-0'), cmd('ship2', runs, 's2-0')])
    assert.equal(first.replies.map((r) => r.data).sort(), ['done s1-0\n', 'done s2-0\n'])
    const back = await sendVia(c.node('ship2').socket, [{ toNode: 'central', method: 'node.ping' }])
    // central's default ACL refuses ship2: the refusal still crosses the cluster both ways.
    assert.is(back.replies.length, 1)
    assert.is((back.replies[0]!.error as { code: string }).code, 'denied', JSON.stringify(back.replies[0]))

    // A stream to both ships; ship1's server dies in the middle of it.
    const N = 50
    const msgs = Array.from({ length: N }, (_, i) => cmd(i % 2 === 0 ? 'ship1' : 'ship2', runs, `m${i}`))
    const waiting = sendVia(c.node('central').socket, msgs, { ms: 90_000 })
    await untilRuns(runs, 12)
    await servers[1]!.stop('SIGKILL')
    const mid = runsOf(runs).size - 2
    const r = await waiting
    const ids = new Set(r.replies.map((x) => String(x.inReplyTo)))
    assert.is(ids.size, N, `${ids.size} of ${N} messages have an outcome`)
    assert.is(r.replies.length, N, 'one outcome each')
    for (const rep of r.replies) assert.is(rep.error, undefined, JSON.stringify(rep))
    const counts = runsOf(runs)
    for (const [tag, n] of counts) assert.is(n, 1, `${tag} ran ${n} times`)
    assert.is(counts.size, N + 2)
    // ship1 is connected again, to a server that is still up.
    const s = await status(c.node('ship1').socket)
    assert.ok(s.connected, 'ship1 failed over')
    console.log(`  nats cluster: ${mid} of ${N} had run when ship1's server was killed`)
  } finally {
    await c.destroy()
    await Promise.all(servers.map((s) => s.destroy()))
  }
})

test('nats - auth by token and by nkey seed file', async () => {
  const token = 'tok-' + Math.random().toString(36).slice(2)
  const server = await NatsServer.create({ token })
  const c = await Cluster.create(['ship1'], {}, 'nats')
  try {
    await server.start()
    // central with a token; ship1 with a wrong one first.
    for (const [name, tok] of [['central', token], ['ship1', 'wrong']] as const) {
      editYaml(c.node(name).config, (doc) => { const t = section(doc, 'transport'); t.servers = [server.url]; t.nats = { token: tok } })
    }
    await c.start('central')
    const ship1 = await c.start('ship1', false)
    await ship1.waitFor(/auth_failed/, 15_000)
    await ship1.stop()
    editYaml(c.node('ship1').config, (doc) => { section(section(doc, 'transport'), 'nats').token = token })
    await c.start('ship1')
    const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo via-token'] }])
    assert.is(r.replies[0]?.data, 'via-token\n')
  } finally {
    await c.destroy()
    await server.destroy()
  }

  // nkeys: the server knows the public key, the node holds the seed in a file.
  const kp = nkeys.createUser()
  const seed = new TextDecoder().decode(kp.getSeed())
  const nk = await NatsServer.create({ config: `authorization { users: [ { nkey: ${kp.getPublicKey()} } ] }\n` })
  const c2 = await Cluster.create(['ship1'], {}, 'nats')
  try {
    await nk.start()
    const seedFile = path.join(c2.dir, 'node.nk')
    fs.writeFileSync(seedFile, seed + '\n', { mode: 0o600 })
    for (const name of ['central', 'ship1']) {
      editYaml(c2.node(name).config, (doc) => { const t = section(doc, 'transport'); t.servers = [nk.url]; t.nats = { nkeySeed: seedFile } })
    }
    await c2.start('central')
    await c2.start('ship1')
    const r = await sendVia(c2.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo via-nkey'] }])
    assert.is(r.replies[0]?.data, 'via-nkey\n')
  } finally {
    await c2.destroy()
    await nk.destroy()
  }
})

test('nats and mqtt - TLS with the CA in the node config', async () => {
  const TLS = path.join(__dirname, '..', 'fixtures', 'tls')
  for (const kind of ['nats', 'mqtt'] as const) {
    const c = await Cluster.create(['ship1'], {}, kind)
    try {
      c.broker!.tls = { cert: path.join(TLS, 'server.pem'), key: path.join(TLS, 'server.key') }
      await c.startServer()
      const url = kind === 'nats' ? `tls://localhost:${(c.broker as NatsServer).port}` : `mqtts://localhost:${(c.broker as Mosquitto).port}`
      for (const name of ['central', 'ship1']) {
        editYaml(c.node(name).config, (doc) => { const t = section(doc, 'transport'); t.servers = [url]; t.tls = { ca: path.join(TLS, 'ca.pem') } })
      }
      await c.start('central')
      await c.start('ship1')
      const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: [`echo over-${kind}-tls`] }])
      assert.is(r.replies[0]?.data, `over-${kind}-tls\n`)
    } finally {
      await c.destroy()
    }
  }
})

test.run()
