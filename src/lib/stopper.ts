/**
 * A job's stop switch. Its AbortSignal is made only when someone asks for it: most methods
 * (heartbeats, reply sinks) never look, and an AbortController per message showed in profiles.
 */
export class Stopper {
  #controller: AbortController | undefined
  #stopped = false
  #reason: unknown
  readonly #listeners = new Set<() => void>()

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#stopped) this.#controller.abort(this.#reason)
    }
    return this.#controller.signal
  }

  get aborted(): boolean {
    return this.#stopped
  }

  get reason(): unknown {
    return this.#reason
  }

  abort(reason: unknown): void {
    if (this.#stopped) return
    this.#stopped = true
    this.#reason = reason
    this.#controller?.abort(reason)
    for (const f of [...this.#listeners]) f()
  }

  /** Call f once stopped; returns the unsubscribe. */
  onAbort(f: () => void): () => void {
    this.#listeners.add(f)
    return () => { this.#listeners.delete(f) }
  }
}

/** A method that ignores its abort signal still gets a bounded time to give up. */
export function untilStopped<T>(work: Promise<T>, stop: Stopper, graceMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let grace: NodeJS.Timeout | undefined
    const onAbort = (): void => {
      grace = setTimeout(() => reject(stop.reason), graceMs)
      grace.unref()
    }
    let off = (): void => {}
    if (stop.aborted) onAbort()
    else off = stop.onAbort(onAbort)
    work.then(resolve, reject).finally(() => {
      off()
      if (grace) clearTimeout(grace)
    })
  })
}
