/**
 * The socket API's accepted line (acceptedLine), written by hand: the same bytes as
 * JSON.stringify writes. (The audit log's own lines are checked in test/logs-audit.test.ts.)
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { acceptedLine } from '../../src/api/socket'


test('api - the accepted line is what JSON.stringify writes, for plain names and for any other', () => {
  const plain = [{ id: '01JABCDEFGHJKMNPQRSTVWXYZ0', toNode: 'ship-1' }, { id: '01JABCDEFGHJKMNPQRSTVWXYZ1', toNode: 'db_2.x' }]
  assert.is(acceptedLine(plain), JSON.stringify({ accepted: plain }) + '\n')
  const odd = [...plain, { id: 'x"y', toNode: 'ü' }]
  assert.is(acceptedLine(odd), JSON.stringify({ accepted: odd }) + '\n')
  assert.is(acceptedLine([]), JSON.stringify({ accepted: [] }) + '\n')
})

test.run()
