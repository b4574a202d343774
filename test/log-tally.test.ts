/** Warnings a peer can cause by the thousand: the first few of an interval one by one, the rest summed up per peer and kind. */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { LogTally, SHOWN } from '../src/log-tally'

test('log tally - the first few warnings from a peer are logged, the rest counted in one summary line per peer', () => {
  const lines: string[] = []
  const now = 1_000_000
  const tally = new LogTally((_level, message) => { lines.push(message) }, 'dispatch: ', () => now)
  for (let i = 0; i < 2000; i++) tally.note('ship2', 'refused node.ping (denied)', `dispatch: refused node.ping from ship2 (${i})`)
  tally.note('ship2', 'not envelopes', 'dispatch: dropped a message from ship2')
  tally.note('ship3', 'refused x (denied)', 'dispatch: refused x from ship3')
  assert.is(lines.length, SHOWN + 1)
  tally.sum()
  assert.is(lines.length, SHOWN + 2)
  assert.is(lines.at(-1), 'dispatch: 1,998 more like these from ship2 in the last 1 s, not logged one by one: 1,997 refused node.ping (denied); 1 not envelopes')
  // A new interval: shown one by one again; a quiet one stops the timer.
  tally.note('ship2', 'refused node.ping (denied)', 'again')
  assert.is(lines.at(-1), 'again')
  tally.stop()
})

test.run()
