import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { crc32, crc32Js } from '../../src/store/crc32'
import { decodeOp, encodeOp, OP_ENQUEUE_ROUTED, OP_REMOVE, OP_REPLY, OP_SEEN, type Op } from '../../src/store/outbox-ops'

test('outbox ops - records of short ASCII, longer and non-ASCII strings read back as written, byte for byte what Buffer writes', () => {
  const names = ['', 'a', '01JAAAAAAAAAAAAAAAAAAAAAAA', 'x'.repeat(48), 'x'.repeat(49), 'y'.repeat(200), 'é', 'nœud-☃', `a${'b'.repeat(46)}é`, '\u007f\u0000']
  for (const s of names) {
    const ops: Op[] = [
      [OP_REMOVE, s],
      [OP_SEEN, `!${s}`, 1765000000000],
      [OP_ENQUEUE_ROUTED, s, 'nodeB', 7, 1765000000000, 1765003600000, 30, Number.NaN, s, 'reply.result', 1765007200000, new Uint8Array([1, 2, 3])],
      [OP_REPLY, s, s, 8, 1, 2, new Uint8Array([9]), s],
    ]
    for (const op of ops) {
      const rec = encodeOp(op)
      const back = decodeOp(rec)
      assert.equal(back.map((f) => (f instanceof Uint8Array ? [...f] : f)), op.map((f) => (f instanceof Uint8Array ? [...f] : f)), JSON.stringify(s))
      // The string fields as Buffer writes them: length byte, then UTF-8.
      const utf8 = Buffer.from(op[1] as string, 'utf8')
      assert.equal([...rec.subarray(1, 2 + utf8.length)], [utf8.length, ...utf8], JSON.stringify(s))
    }
  }
})

test('outbox ops - crc32 is zlib\'s CRC-32 at every length, small records (by table) and large', () => {
  const data = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 131 + 7) & 0xff))
  for (let n = 0; n <= 300; n++) assert.is(crc32(data.subarray(0, n)), crc32Js(data.subarray(0, n)), `length ${n}`)
  assert.is(crc32(Buffer.from('123456789')), 0xcbf43926)
})

test.run()
