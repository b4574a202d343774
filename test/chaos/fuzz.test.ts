/** Hostile input at chaos scale: FUZZ_CASES (default 100,000) frames to the hub and as many socket API lines. */
import { test } from 'uvu'
import { hostile } from './hostile'

hostile(Number(process.env.FUZZ_CASES ?? 100_000))

test.run()
