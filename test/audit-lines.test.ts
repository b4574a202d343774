/**
 * The audit log's batch text (linesText) and the socket API's accepted line (acceptedLine): the
 * same bytes as a JSON.stringify per line, built with one serialisation for many messages.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { linesText } from '../src/audit'
import { acceptedLine } from '../src/api/socket'

const time = '2026-12-06T03:00:00.000Z'
const env = (id: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ method: 'node.pong', data: 'x'.repeat(20), id, toNode: 'nodeB', fromNode: 'nodeA', createdAt: 1, ackTimeout: 30, ...extra })
const perLine = (lines: Record<string, unknown>[]): string => lines.map((l) => JSON.stringify(l)).join('\n') + '\n'

test('audit - a batch of lines is the text of each line\'s JSON, one a line', () => {
  const lines = [
    { time, event: 'accepted', id: 'A1', fromNode: 'nodeA', toNode: 'nodeB', method: 'node.pong', env: env('A1', { data: 'quote " and },{"time":" in text\n' }) },
    { time, event: 'delivered', id: 'A1', toNode: 'nodeB', method: 'node.pong' },
    { time, event: 'run', id: 'A2', fromNode: 'nodeA', method: 'cli.run', ms: 3, exitCode: undefined, error: { code: 'denied', message: 'no' } },
  ]
  assert.is(linesText(lines), perLine(lines))
  assert.is(linesText([lines[1]!]), perLine([lines[1]!]))
})

test('audit - a line whose opArg holds objects keyed "time" still comes out line by line', () => {
  // Unescaped `},{"time":"` inside one line's own text: the batch text cannot be cut at it.
  const op = { opCmd: 'ps', opArg: [{ time: 'a' }, { time: 'b' }] }
  const lines = [
    { time, event: 'accepted', id: 'B1', fromNode: 'nodeA', toNode: 'nodeB', method: 'op', env: env('B1', { operation: op }) },
    { time, event: 'delivered', id: 'B1', toNode: 'nodeB', method: 'op' },
  ]
  const text = linesText(lines)
  assert.is(text, perLine(lines))
  assert.is(text.split('\n').length, 3)
})

test('api - the accepted line is what JSON.stringify writes, for plain names and for any other', () => {
  const plain = [{ id: '01JABCDEFGHJKMNPQRSTVWXYZ0', toNode: 'ship-1' }, { id: '01JABCDEFGHJKMNPQRSTVWXYZ1', toNode: 'db_2.x' }]
  assert.is(acceptedLine(plain), JSON.stringify({ accepted: plain }) + '\n')
  const odd = [...plain, { id: 'x"y', toNode: 'ü' }]
  assert.is(acceptedLine(odd), JSON.stringify({ accepted: odd }) + '\n')
  assert.is(acceptedLine([]), JSON.stringify({ accepted: [] }) + '\n')
})

test.run()
