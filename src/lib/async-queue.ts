/**
 * A single-consumer async queue: producers push, one `for await` loop consumes. Used for a
 * transport's inbound messages and events, so plugins hand over values, never callbacks.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private items: T[] = []
  private head = 0
  private waiting: ((r: IteratorResult<T>) => void) | undefined
  private ended = false

  push(item: T): void {
    if (this.ended) return
    if (this.waiting) {
      const w = this.waiting
      this.waiting = undefined
      w({ value: item, done: false })
      return
    }
    this.items.push(item)
  }

  /** No more items: the consumer's loop ends once it has taken what is queued. */
  end(): void {
    this.ended = true
    if (this.waiting) {
      const w = this.waiting
      this.waiting = undefined
      w({ value: undefined, done: true })
    }
  }

  get size(): number {
    return this.items.length - this.head
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.head < this.items.length) {
          const value = this.items[this.head++] as T
          if (this.head > 1024 && this.head * 2 > this.items.length) {
            this.items = this.items.slice(this.head)
            this.head = 0
          }
          return Promise.resolve({ value, done: false })
        }
        if (this.ended) return Promise.resolve({ value: undefined, done: true })
        return new Promise((resolve) => { this.waiting = resolve })
      },
      return: () => {
        this.end()
        return Promise.resolve({ value: undefined, done: true })
      },
    }
  }
}
