/**
 * Tunnels (and shells: the same session.open path) to a node that requires signatures: the
 * opening request is signed with the submitting node's api.signingKey and runs; from a node
 * without a key it is refused (signature_required) before anything connects. Real hub and agents.
 */
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair, publicKeyText, writeKeyFile } from '../../src/keys'
import { Cluster, Proc, editYaml, section } from '../fixtures/cluster'

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve(body))
    }).on('error', (err: NodeJS.ErrnoException) => reject(err))
  })
}

test('sessions, signed - a tunnel opened with api.signingKey runs on a node requiring signatures; unsigned is refused', async () => {
  const server = http.createServer((_req, res) => res.end('behind ship1'))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const target = (server.address() as net.AddressInfo).port
  const c = await Cluster.create(['ship1'])
  const procs: Proc[] = []
  try {
    const pair = generateKeyPair()
    const keyFile = path.join(c.dir, 'ops.key')
    writeKeyFile(keyFile, pair)
    editYaml(c.node('ship1').config, (doc) => {
      section(doc, 'security').requireSignatures = true
      section(doc, 'security').trustedKeys = [{ name: 'ops', publicKey: publicKeyText(pair.publicKey), methods: ['*'] }]
      section(doc, 'tunnels').allow = [`127.0.0.1:${target}`]
    })
    editYaml(c.node('central').config, (doc) => { section(doc, 'api').signingKey = keyFile })
    await c.startHub()
    await c.start('central')
    await c.start('ship1')

    const t = new Proc(['tunnel', 'ship1', `0:127.0.0.1:${target}`, '--once', '--config', c.node('central').config])
    procs.push(t)
    await t.waitFor(/listening on 127\.0\.0\.1:(\d+)/)
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(t.output)![1])
    assert.is(await get(port), 'behind ship1')
    assert.is(await t.exited, 0, t.output)

    // From ship1's own socket: ship1 has no signing key, and requires a signature of itself too.
    const u = new Proc(['tunnel', 'ship1', `0:127.0.0.1:${target}`, '--once', '--config', c.node('ship1').config])
    procs.push(u)
    await u.waitFor(/listening on 127\.0\.0\.1:(\d+)/)
    const uport = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(u.output)![1])
    const refused = await get(uport).then(() => 'answered', (err: NodeJS.ErrnoException) => err.code)
    assert.is(refused, 'ECONNRESET')
    assert.is(await u.exited, 3, u.output)
    assert.match(u.output, /signature_required/)
    // The advice fits the command: `outpost tunnel` takes no --key; ship1's api.signingKey would sign it.
    assert.match(u.output, /set api\.signingKey on ship1/)
    assert.not.match(u.output, /--key FILE/)
  } finally {
    for (const p of procs) await p.stop('SIGKILL')
    await c.destroy()
    server.close()
  }
})

test.run()
