/**
 * `outpost tunnel` end to end over the hub: a local HTTP server reached through ship1 (the
 * target is ship1's loopback, as an application behind NAT would be), 100 requests at once with
 * bodies larger than the flow-control window in both directions; a target tunnels.allow does
 * not list is refused (tunnel_denied, exit 3 with --once).
 */
import { createHash } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, Proc, freePort } from '../fixtures/cluster'
import { hashingServer, request } from '../fixtures/http-target'

test('tunnel - 100 parallel HTTP requests through ship1 all get their own answers; a target not in tunnels.allow is refused', async () => {
  // The target: answers each path with a body of its own, 300 KiB, and echoes a POST's hash.
  const { server, port: target } = await hashingServer(300 * 1024)
  const denied = await freePort()
  const c = await Cluster.create(['ship1'])
  const procs: Proc[] = []
  try {
    await c.startHub()
    await c.start('central')
    const { editYaml, section } = await import('../fixtures/cluster')
    editYaml(c.node('ship1').config, (doc) => { section(doc, 'tunnels').allow = [`127.0.0.1:${target}`] })
    await c.start('ship1')
    const t = new Proc(['tunnel', 'ship1', `0:127.0.0.1:${target}`, '--json', '--config', c.node('central').config])
    procs.push(t)
    await t.waitFor(/"listening"/)
    const port = (JSON.parse(t.output.split('\n').find((l) => l.includes('"listening"'))!) as { listening: { port: number } }).listening.port

    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => request(port, `/r${i}-`)))
    for (const [i, r] of results.entries()) {
      assert.is(r.status, 200)
      assert.is(r.body.length, 300 * 1024)
      assert.ok(r.body.equals(Buffer.alloc(300 * 1024, `/r${i}-`)), `request ${i} got its own body`)
    }
    // Upstream too: a 2 MiB upload arrives whole.
    const upload = Buffer.alloc(2 * 1024 * 1024, 'upload')
    const posted = (await request(port, '/p', upload)).sha
    assert.is(posted, createHash('sha256').update(upload).digest('hex'))

    // Not listed: refused on ship1, the connection reset, the code said; --once exits 3.
    const d = new Proc(['tunnel', 'ship1', `0:127.0.0.1:${denied}`, '--once', '--config', c.node('central').config])
    procs.push(d)
    await d.waitFor(/listening on 127\.0\.0\.1:(\d+)/)
    const dport = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(d.output)![1])
    const refused = await request(dport, '/x').then(() => 'answered', (err: NodeJS.ErrnoException) => err.code)
    assert.is(refused, 'ECONNRESET')
    assert.is(await d.exited, 3)
    assert.match(d.output, /tunnel_denied/)
    assert.match(d.output, new RegExp(`may not connect to 127\\.0\\.0\\.1:${denied}`))

    // A node central has never heard of: refused before anything listens (exit 2), as a send is.
    const u = new Proc(['tunnel', 'nowhere', '0:127.0.0.1:80', '--config', c.node('central').config])
    procs.push(u)
    const code = await Promise.race([u.exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running after 15 s'), 15_000))])
    assert.is(code, 2, u.output)
    assert.match(u.output, /nowhere is not a node .*\[node_unknown\]/)
    assert.not.match(u.output, /listening/)
  } finally {
    for (const p of procs) await p.stop('SIGKILL')
    await c.destroy()
    server.close()
  }
})

test.run()
