/**
 * `stop` strings as vLLM applies them: generation ends at the first occurrence of any of them in the output
 * text, which is cut just before it (`include_stop_str_in_output` off), and the choice reports the matched
 * string as its `stop_reason`. While streaming, vLLM's detokenizer holds back the last
 * `longest stop − 1` characters, since they might be the start of a stop string; they go out with the next
 * token or at the end.
 */
export interface StopMatcher {
  /**
   * Take the next token's text; `last` when the sequence ends with it anyway. Returns the text to stream
   * now and, if a stop string matched, which one (the sequence must end here).
   */
  push(text: string, last: boolean): { emit: string; stop: string | null }
}

export function createStopMatcher(stops: readonly string[]): StopMatcher | null {
  const active = stops.filter((s) => s.length > 0)
  if (active.length === 0) return null
  const holdBack = Math.max(...active.map((s) => s.length)) - 1
  let text = ''
  let emitted = 0
  return {
    push(piece, last) {
      // Only the new text and the held-back tail can contain a new match.
      const searchFrom = Math.max(0, emitted - holdBack)
      text += piece
      let at = -1
      let matched: string | null = null
      for (const stop of active) {
        const found = text.indexOf(stop, searchFrom)
        if (found >= 0 && (at < 0 || found < at)) {
          at = found
          matched = stop
        }
      }
      if (matched !== null) {
        const emit = text.slice(emitted, Math.max(emitted, at))
        emitted = text.length
        return { emit, stop: matched }
      }
      const upTo = last ? text.length : Math.max(emitted, text.length - holdBack)
      const emit = text.slice(emitted, upTo)
      emitted = upTo
      return { emit, stop: null }
    },
  }
}
