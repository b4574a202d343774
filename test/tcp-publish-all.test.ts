/**
 * The tcp transport's publishAll (many messages at once, from delivery's pump) against a
 * recording stand-in for the hub that welcomes with a given apiVersion: batch frames at once
 * (first message included) for a hub of 2 or later, one msg frame per envelope for an old one,
 * one write callback after all of them, order kept with what publish queued in the same tick.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { isOutpostError } from '../src/errors'
import type { Outbound } from '../src/transport'
import type { Frame } from '../src/wire/framing'
import { freePort } from './fixtures/ports'
import { connected, make, standInHub, waitFor } from './fixtures/wire-peers'

const out = (i: number): Outbound => ({ id: `p${i}`, to: 'b', method: 'x', event: false, bytes: new Uint8Array(200).fill(i) })
const carried = (frames: Frame[]): string[] => frames.flatMap((f) => (f.t === 'batch' ? f.ids : f.t === 'msg' ? [f.id] : []))

test('tcp publishAll: not connected, every message gets its not_connected', async () => {
  const a = make('a', await freePort())
  const r = await a.publishAll!([out(0), out(1)])
  assert.is(r?.length, 2)
  assert.ok(r!.every((e) => isOutpostError(e) && e.code === 'not_connected'))
  await a.close()
})

test('tcp publishAll: a hub of apiVersion 2+ gets them at once in one batch frame, one write callback after them all', async () => {
  const h = await standInHub(4)
  const a = make('a', h.port)
  try {
    await connected(a)
    let written = 0
    const r = await a.publishAll!(Array.from({ length: 8 }, (_, i) => out(i)), () => written++)
    assert.is(r, undefined)
    await waitFor(() => assert.is(written, 1))
    await waitFor(() => assert.is(carried(h.frames).length, 8))
    assert.equal(h.frames.map((f) => f.t), ['batch'])
    assert.equal(carried(h.frames), ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'])
  } finally {
    await a.close(); h.close()
  }
})

test('tcp publishAll: an old hub (apiVersion 1) gets one msg frame per envelope', async () => {
  const h = await standInHub(1)
  const a = make('a', h.port)
  try {
    await connected(a)
    await a.publishAll!(Array.from({ length: 5 }, (_, i) => out(i)))
    await waitFor(() => assert.is(carried(h.frames).length, 5))
    assert.equal(h.frames.map((f) => f.t), Array(5).fill('msg'))
    assert.equal(carried(h.frames), ['p0', 'p1', 'p2', 'p3', 'p4'])
  } finally {
    await a.close(); h.close()
  }
})

test('tcp publishAll: what publish queued earlier in the tick goes first (order per receiver)', async () => {
  const h = await standInHub(4)
  const a = make('a', h.port)
  try {
    await connected(a)
    const first = a.publish(out(0)) // written at once
    const second = a.publish(out(1)) // queued for the end of the tick
    const all = a.publishAll!([out(2), out(3)])
    await Promise.all([first, second, all])
    await waitFor(() => assert.is(carried(h.frames).length, 4))
    assert.equal(carried(h.frames), ['p0', 'p1', 'p2', 'p3'])
  } finally {
    await a.close(); h.close()
  }
})

test.run()
