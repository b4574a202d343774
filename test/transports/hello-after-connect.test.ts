/**
 * A node that connects to a broker before central has subscribed (both started together on a
 * fresh mosquitto): its first node.hello, an event, is gone, and it is never resent. Central's
 * node list must still hear of it within seconds, not a hello.interval later.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster } from '../fixtures/cluster'
import { runCli } from '../fixtures/run-cli'

test('heartbeat - a node that said hello before central subscribed is in central\'s list within seconds', async () => {
  const c = await Cluster.create(['ship1'], { hello: { interval: 60 } }, 'mqtt')
  try {
    await c.startServer()
    await c.start('ship1')
    await c.start('central')
    let nodes: { name: string; version?: string }[] = []
    const end = Date.now() + 15_000
    while (Date.now() < end) {
      const r = await runCli(['nodes', '--json', '--config', c.node('central').config], c.dir)
      assert.is(r.code, 0, r.stderr)
      nodes = JSON.parse(r.stdout) as typeof nodes
      if (nodes.some((n) => n.name === 'ship1' && n.version !== undefined)) break
      await new Promise((r) => setTimeout(r, 200))
    }
    assert.ok(nodes.some((n) => n.name === 'ship1' && n.version !== undefined), `central's list after 15 s: ${JSON.stringify(nodes)}`)
  } finally {
    await c.destroy()
  }
})

test.run()
