// A recording's code over time, from its timeline (GET …/recordings/{id}/timeline): the
// document at second 0 (`base`, a Yjs update) and timed steps (`steps`: `{ t, u, a }`, sorted
// by t). The code at a second is the base and every step up to it applied to a fresh Y.Doc.
// Going forward applies the steps in between; going back starts again from the nearest
// checkpoint (a state kept every CHECKPOINT_EVERY steps on the way), so scrubbing anywhere
// costs at most that many updates.
import * as Y from 'yjs'

const CHECKPOINT_EVERY = 64

/** Bytes from base64. */
export function fromBase64(text) {
  const raw = atob(text || '')
  const bytes = new Uint8Array(raw.length)
  for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i)
  return bytes
}

export class CodeTimeline {
  /** @param {object} timeline the timeline endpoint's answer */
  constructor(timeline) {
    this.authors = timeline.authors || []
    this.steps = (timeline.steps || []).map((s) => ({ t: Number(s.t), update: fromBase64(s.u), author: s.a }))
    this.steps.sort((a, b) => a.t - b.t)
    this.checkpoints = new Map([[0, fromBase64(timeline.base)]])
    this.doc = null
    this.applied = 0
    this.restart(0)
  }

  /** The last second anything happened (0 without steps). */
  get end() {
    return this.steps.length ? this.steps[this.steps.length - 1].t : 0
  }

  /** How many steps happened at or before `seconds`. */
  countAt(seconds) {
    let lo = 0
    let hi = this.steps.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.steps[mid].t <= seconds) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  restart(count) {
    let from = 0
    for (const at of this.checkpoints.keys()) if (at <= count && at > from) from = at
    if (this.doc) this.doc.destroy()
    this.doc = new Y.Doc()
    Y.applyUpdate(this.doc, this.checkpoints.get(from))
    this.applied = from
  }

  /** Move the document to `count` steps applied. */
  seekCount(count) {
    if (count < this.applied) this.restart(count)
    while (this.applied < count) {
      Y.applyUpdate(this.doc, this.steps[this.applied].update)
      this.applied += 1
      if (this.applied % CHECKPOINT_EVERY === 0 && !this.checkpoints.has(this.applied)) {
        this.checkpoints.set(this.applied, Y.encodeStateAsUpdate(this.doc))
      }
    }
  }

  /** The code at `seconds`, with the last step by then (or null). */
  at(seconds) {
    const count = this.countAt(seconds)
    this.seekCount(count)
    const last = count ? this.steps[count - 1] : null
    const author = last && last.author != null ? this.authors[last.author] || null : null
    return { count, code: this.doc.getText('code').toString(), last, author }
  }

  destroy() {
    if (this.doc) this.doc.destroy()
  }
}
