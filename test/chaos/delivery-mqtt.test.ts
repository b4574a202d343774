/** Reliability under faults over mqtt (see harness.ts): receiver, hub or broker, and sender SIGKILLed mid-stream. */
import { test } from 'uvu'
import { chaos } from './harness'

for (const fault of ['receiver', 'server', 'sender'] as const) {
  test(`mqtt - with the ${fault} SIGKILLed and restarted mid-stream, every accepted command has exactly one outcome and ran at most once`, async () => {
    await chaos('mqtt', fault)
  })
}

test.run()
