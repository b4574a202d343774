/**
 * A preload for the nodes of a benchmark (not part of outpost): counts the process's fdatasync
 * and fsync calls (the journal's commits, segment and directory syncs) and writes the counts to
 * `<dir>/counts-<pid>.json` when the process gets SIGUSR2. bench/brokers.ts uses it when
 * BENCH_BROKERS_COUNTS=1 (through OUTPOST_TEST_NODE_ARGS='--require <this file>').
 */
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const dir = process.env.BENCH_COUNTS_DIR || require('node:os').tmpdir()
const counts = { fdatasync: 0, fsync: 0, fdatasyncMs: 0, fsyncMs: 0 }
for (const name of ['fdatasync', 'fsync']) {
  const plain = fs[name]
  const sync = fs[`${name}Sync`]
  fs[name] = function (...args) {
    counts[name]++
    const cb = args[args.length - 1]
    if (typeof cb === 'function') {
      const t = process.hrtime.bigint()
      args[args.length - 1] = function (...r) { counts[`${name}Ms`] += Number(process.hrtime.bigint() - t) / 1e6; return cb.apply(this, r) }
    }
    return plain.apply(this, args)
  }
  fs[`${name}Sync`] = function (...args) { counts[name]++; return sync.apply(this, args) }
}
process.on('SIGUSR2', () => {
  const file = path.join(dir, `counts-${process.pid}.json`)
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(counts))
  fs.renameSync(`${file}.tmp`, file)
})
