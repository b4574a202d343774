/**
 * Giving back the heap a burst grew. V8 keeps the old generation it grew while a burst was in
 * memory (100k messages arriving grow it to ~80 MB for ~15 MB live) and shrinks it only when
 * its memory reducer notices the process has been idle for many seconds, or never if it is not
 * quite idle. One compacting full collection once the burst has ended returns most of it
 * (about 40 MB of RSS on `npm run bench -- agent`), for a pause of a few tens of ms.
 *
 * Node offers no API for this. The known way: `--expose-gc` set at run time and `gc` taken from
 * a fresh context, with `--compact-on-every-full-gc` switched on around the call (a plain full
 * GC leaves the half-empty pages where they are). If the runtime refuses, this is a no-op.
 */
import v8 from 'node:v8'
import vm from 'node:vm'

/** V8's gc() options: a synchronous full collection; `last-resort` (Node 22's V8) also frees the pages V8 pools for reuse. */
type Collect = (options?: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void
let collect: Collect | null | undefined
const LAST_RESORT = Number(process.versions.node.split('.')[0]) >= 22

/** Wait before the second collection: V8 measures the allocation rate over the last ~5 s. */
const SETTLED_MS = 6000
let settled: NodeJS.Timeout | undefined

/**
 * Run one compacting full garbage collection now, and one more once the allocation rate has
 * been low for a while: on Node 20 only a collection that sees a low rate shrinks the young
 * generation, which a burst grows to 32 MB (two 16 MB semi-spaces), back to 2 MB.
 */
export function releaseHeap(): void {
  collectCompacting()
  if (settled !== undefined) settled.refresh()
  else {
    settled = setTimeout(() => {
      settled = undefined
      collectCompacting()
    }, SETTLED_MS)
    settled.unref()
  }
}

function collectCompacting(): void {
  if (collect === undefined) {
    try {
      const exposed = (globalThis as { gc?: Collect }).gc
      if (exposed) {
        collect = exposed
      } else {
        v8.setFlagsFromString('--expose-gc')
        collect = vm.runInNewContext('gc') as Collect
      }
    } catch {
      collect = null
    }
  }
  if (!collect) return
  v8.setFlagsFromString('--compact-on-every-full-gc')
  try {
    // On Node 22 a plain full collection keeps the freed 256 KB heap pages in V8's pool, still
    // resident (70+ MB after a 100k burst); `last-resort` (every collection V8 can do, then the
    // pool released) returns them. On Node 20 the plain one does better (measured: ~30 MB).
    if (LAST_RESORT) collect({ type: 'major', execution: 'sync', flavor: 'last-resort' })
    else collect()
  } finally {
    v8.setFlagsFromString('--no-compact-on-every-full-gc')
  }
}
