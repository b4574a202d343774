/**
 * An agent on NATS stops on SIGTERM while its server is down. The client is reconnecting then,
 * and drain() waits for a server that is not there: the agent logged "SIGTERM: stopping" and
 * never exited (found in an operator's trial, 2026-12-06: a service manager waits for it, then
 * kills it). Real nats-server and agent; the server is killed first.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { Proc, status, tmpDir } from '../fixtures/cluster'
import { NatsServer } from '../fixtures/brokers'

test('nats - an agent whose server is down stops on SIGTERM', async () => {
  const server = await NatsServer.create()
  await server.start()
  const dir = tmpDir()
  const file = path.join(dir, 'a.yaml')
  fs.writeFileSync(file, YAML.stringify({ node: { name: 'a', central: 'a' }, dataDir: path.join(dir, 'a'), transport: { kind: 'nats', servers: [server.url] } }))
  const agent = new Proc(['agent', '--config', file])
  try {
    await agent.waitFor(/api: listening on/)
    const socket = path.join(dir, 'a', 'outpost.sock')
    for (let i = 0; !(await status(socket)).connected; i++) {
      if (i > 200) throw new Error(`never connected:\n${agent.output}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await server.stop('SIGKILL')
    agent.child.kill('SIGTERM')
    // Without the fix it never exits: give it far longer than a stop takes.
    const code = await Promise.race([agent.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 20_000))])
    assert.is(code, 0, agent.output.slice(-2000))
  } finally {
    await agent.stop('SIGKILL')
    await server.destroy()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
