/**
 * Hostile input at chaos scale: FUZZ_CASES (default 100,000) frames to the hub and as many socket
 * API lines, FUZZ_HTTP_CASES (default 50,000) requests to the HTTP API; every Object.prototype name
 * on every surface, the CLI included, then FUZZ_NAME_CASES (default 2,000) random mixes of them.
 */
import { test } from 'uvu'
import { hostile } from './hostile'

hostile(Number(process.env.FUZZ_CASES ?? 100_000), Number(process.env.FUZZ_HTTP_CASES ?? 50_000), undefined, { rounds: Number(process.env.FUZZ_NAME_CASES ?? 2000), cli: true })

test.run()
