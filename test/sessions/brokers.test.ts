/**
 * `outpost shell` and `outpost tunnel` over a real mosquitto and a real nats-server: the live
 * frames are events on the broker (never stored), both ways, with the exit status carried back;
 * a reverse tunnel (-R) carries a request made on ship1 back to a server here.
 */
import http from 'node:http'
import net from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, Proc, editYaml, freePort, section, type Kind } from '../fixtures/cluster'
import { Term } from './term'

for (const kind of ['mqtt', 'nats'] as const satisfies readonly Kind[]) {
  test(`${kind} - a shell runs typed commands and returns the exit status; a tunnel and a reverse tunnel carry an HTTP request`, async () => {
    const server = http.createServer((req, res) => res.end(`hello over ${kind} ${req.url}`))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const target = (server.address() as net.AddressInfo).port
    const remote = await freePort()
    const c = await Cluster.create(['ship1'], {}, kind)
    let t: Term | undefined
    let tun: Proc | undefined
    let back: Proc | undefined
    try {
      await c.startServer()
      editYaml(c.node('ship1').config, (doc) => { section(doc, 'tunnels').allow = [`127.0.0.1:${target}`]; section(doc, 'tunnels').listen = [remote] })
      await c.start('central')
      await c.start('ship1')
      t = new Term(['shell', 'ship1', '--config', c.node('central').config, '--', 'sh'], { cols: 90, rows: 21 })
      await t.waitFor(/[#$] $/)
      t.write('echo "sum=$((20+22))"; stty size; exit 5\r')
      await t.waitFor(/sum=42\n21 90\n/)
      assert.is(await t.exited, 5)

      tun = new Proc(['tunnel', 'ship1', `0:127.0.0.1:${target}`, '--once', '--json', '--config', c.node('central').config])
      await tun.waitFor(/"listening"/)
      const port = (JSON.parse(tun.output.split('\n').find((l) => l.includes('"listening"'))!) as { listening: { port: number } }).listening.port
      const body = await new Promise<string>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: '/x', agent: false }, (res) => { let b = ''; res.on('data', (d: Buffer) => { b += d }); res.on('end', () => resolve(b)) }).on('error', reject)
      })
      assert.is(body, `hello over ${kind} /x`)
      assert.is(await tun.exited, 0)

      // -R: ship1 listens on its loopback; the request made there is answered by the server here.
      back = new Proc(['tunnel', 'ship1', '-R', `${remote}:127.0.0.1:${target}`, '--once', '--json', '--config', c.node('central').config])
      await back.waitFor(/"listening"/)
      const backBody = await new Promise<string>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: remote, path: '/back', agent: false }, (res) => { let b = ''; res.on('data', (d: Buffer) => { b += d }); res.on('end', () => resolve(b)) }).on('error', reject)
      })
      assert.is(backBody, `hello over ${kind} /back`)
      assert.is(await back.exited, 0)
    } finally {
      t?.kill()
      await tun?.stop('SIGKILL')
      await back?.stop('SIGKILL')
      await c.destroy()
      server.close()
    }
  })
}

test.run()
