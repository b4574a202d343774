/** Hostile input, quick: a few hundred fuzz cases (the chaos run, `npm run test:chaos`, runs 100k). */
import { test } from 'uvu'
import { hostile } from './chaos/hostile'

hostile(Number(process.env.FUZZ_CASES ?? 400))

test.run()
