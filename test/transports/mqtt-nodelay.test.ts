/**
 * The MQTT transport's connection to a real mosquitto has Nagle's algorithm off, on its first
 * connection and on each one after the broker came back. With it on (MQTT.js's default), a small
 * publish (an ACK of many ids, a deflated batch) written while the last small one waits for the
 * broker's TCP ACK waits too, up to 40 ms when the broker has nothing to send back
 * (docs/performance.md, "the broker paths' stalls").
 */
import net from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { parseConfig } from '../../src/config'
import type { Transport, TransportOptions } from '../../src/transport'
import { TRANSPORTS } from '../../transports/index'
import { Mosquitto } from '../fixtures/brokers'
import { until } from '../fixtures/inprocess'

/** Every setNoDelay call on a socket of this process: the socket's remote port and the value. */
const calls: { port: number | undefined; on: boolean }[] = []
const original = net.Socket.prototype.setNoDelay
net.Socket.prototype.setNoDelay = function (this: net.Socket, on?: boolean) {
  calls.push({ port: this.remotePort, on: on !== false })
  return original.call(this, on)
}
test.after(() => { net.Socket.prototype.setNoDelay = original })

function make(node: string, url: string): Transport {
  const config = parseConfig(YAML.stringify({ node: { name: node }, dataDir: '/nonexistent', transport: { kind: 'mqtt', servers: [url] } }), `${node}.yaml`)
  const options: TransportOptions = { node, servers: config.transport.servers, token: null, tls: config.transport.tls, version: '0.0.0', section: config.transport.mqtt, log: () => {} }
  return TRANSPORTS.get('mqtt')!.create(options as TransportOptions<never>)
}

test('mqtt - turns Nagle off on its connection to the broker, and again after the broker came back', async () => {
  const broker = await (await Mosquitto.create()).start()
  const a = make('a', broker.url)
  try {
    a.start()
    await until(() => a.connected, 10_000, 'connected')
    const toBroker = (): number => calls.filter((c) => c.port === broker.port && c.on).length
    assert.is(toBroker(), 1, 'setNoDelay(true) on the connection to the broker')
    await broker.stop('SIGKILL')
    await until(() => !a.connected, 10_000, 'disconnected')
    await broker.start()
    await until(() => a.connected, 20_000, 'connected again')
    assert.is(toBroker(), 2, 'and on the new connection')
  } finally {
    await a.close()
    await broker.destroy()
  }
})

test.run()
