/** Hostile input, quick: a few hundred fuzz cases per surface, and every Object.prototype name once on every surface (the chaos run, `npm run test:chaos`, runs 100k, 50k over HTTP, and random mixes of the names). */
import { test } from 'uvu'
import { hostile } from './chaos/hostile'

hostile(Number(process.env.FUZZ_CASES ?? 400), Number(process.env.FUZZ_HTTP_CASES ?? 400))

test.run()
