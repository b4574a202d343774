/**
 * Hostile input at chaos scale: FUZZ_CASES (default 100,000) frames to the hub and as many socket
 * API lines, FUZZ_HTTP_CASES (default 50,000) requests to the HTTP API.
 */
import { test } from 'uvu'
import { hostile } from './hostile'

hostile(Number(process.env.FUZZ_CASES ?? 100_000), Number(process.env.FUZZ_HTTP_CASES ?? 50_000))

test.run()
