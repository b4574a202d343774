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

let collect: (() => void) | null | undefined

/** Wait before the second collection: V8 measures the allocation rate over the last ~5 s. */
const SETTLED_MS = 6000
let settled: NodeJS.Timeout | undefined

/**
 * Run one compacting full garbage collection now, and one more once the allocation rate has
 * been low for a while: only a collection that sees a low rate shrinks the young generation,
 * which a burst grows to 32 MB (two 16 MB semi-spaces), back to 2 MB.
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
      const exposed = (globalThis as { gc?: () => void }).gc
      if (exposed) {
        collect = exposed
      } else {
        v8.setFlagsFromString('--expose-gc')
        collect = vm.runInNewContext('gc') as () => void
      }
    } catch {
      collect = null
    }
  }
  if (!collect) return
  v8.setFlagsFromString('--compact-on-every-full-gc')
  try {
    collect()
  } finally {
    v8.setFlagsFromString('--no-compact-on-every-full-gc')
  }
}
