import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Subjects } from '../../transports/subjects'

test('subjects - NATS subjects and MQTT topics, command or event', () => {
  const nats = new Subjects('nats', 'outpost')
  const mqtt = new Subjects('mqtt', 'fleet')
  assert.is(nats.message('ship1', 'cli.run', false), 'outpost.ship1.cli.run.CommandACK')
  assert.is(nats.message('ship1', 'node.hello', true), 'outpost.ship1.node.hello.EventNACK')
  assert.is(nats.message('central', 'ack', true), 'outpost.central.ack.EventNACK')
  assert.is(new Subjects('mqtt', 'outpost').message('ship1', 'cli.run', false), 'outpost/ship1/cli.run/CommandACK')
  assert.is(mqtt.message('ship1', 'node.hello', true), 'fleet/ship1/node.hello/EventNACK')
})

test('subjects - a node subscribes to everything addressed to it, and to every presence notice', () => {
  const nats = new Subjects('nats', 'outpost')
  const mqtt = new Subjects('mqtt', 'outpost')
  assert.is(nats.inbox('ship1'), 'outpost.ship1.>')
  assert.is(mqtt.inbox('ship1'), 'outpost/ship1/#')
  assert.ok(nats.message('ship1', 'cli.run', false).startsWith(nats.nodePrefix('ship1')))
  assert.ok(!nats.message('ship10', 'cli.run', false).startsWith(nats.nodePrefix('ship1')))
  assert.is(nats.presence('ship1'), 'outpost._presence.ship1')
  assert.is(nats.presenceAll(), 'outpost._presence.*')
  assert.is(mqtt.presence('ship1'), 'outpost/_presence/ship1')
  assert.is(mqtt.presenceAll(), 'outpost/_presence/+')
})

test('subjects - NATS no-responder replies name the receiver and the message', () => {
  const nats = new Subjects('nats', 'outpost')
  const nr = nats.noResponders('central', 'ship1', '01J00000000000000000000000')
  assert.is(nr, 'outpost.central._nr.ship1.01J00000000000000000000000')
  assert.ok(nr.startsWith(nats.noRespondersPrefix('central')))
  assert.ok(nr.startsWith(nats.nodePrefix('central')), 'it arrives through the node\'s own inbox subscription')
})

test.run()
