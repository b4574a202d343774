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

/** Run one compacting full garbage collection now, if the runtime lets us. */
export function releaseHeap(): void {
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
