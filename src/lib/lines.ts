/**
 * A text stream cut into lines (the local API's JSON lines, both ends): push chunks, take the
 * complete lines, trimmed, blank ones skipped.
 */
export class Lines {
  private buf = ''

  /** What came after the last newline. */
  get rest(): string {
    return this.buf
  }

  /** Add a chunk; returns the lines it completed. */
  push(chunk: string): string[] {
    this.buf += chunk
    // Scan only when the chunk ends a line: a long line is not searched again and again.
    if (!chunk.includes('\n')) return []
    const parts = this.buf.split('\n')
    this.buf = parts.pop()!
    return parts.map((l) => l.trim()).filter((l) => l !== '')
  }

  /** Add a chunk without looking for lines (a request read whole at the end). */
  append(chunk: string): void {
    this.buf += chunk
  }

  /** What is left, and start empty. */
  take(): string {
    const rest = this.buf
    this.buf = ''
    return rest
  }
}
