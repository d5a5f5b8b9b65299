// The replay player: a recording's audio, a scrubber, and the code as it stood at that second
// in a read-only editor. Moving either the audio or the scrubber shows the code of that
// second; playing advances the code with the audio (read every frame while it plays).
import { defaultHighlightStyle, syntaxHighlighting } from '@codemirror/language'
import { Compartment, EditorState, Prec } from '@codemirror/state'
import { EditorView, lineNumbers } from '@codemirror/view'

import { h, uid, when } from '../dom.js'
import { loadLanguage } from '../room/languages.js'
import { editorTheme } from '../room/theme.js'
import { CodeTimeline } from './timeline.js'

/** "m:ss" for seconds. */
export function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds || 0))
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`
}

const STATUS = {
  recording: 'This recording is still running: the code so far can be replayed, the audio comes once it stops.',
  processing: 'The audio is being mixed; the code can be replayed already.',
  failed: 'The audio could not be made',
}

/**
 * Build the player. Returns `{ node, grow, destroy }`: `grow(timeline)` takes a newer timeline
 * answer of a recording still running (the code typed since; the view stays where it is, or
 * keeps to the end if it was there).
 *
 * @param {object} opts session (GET answer), recording (GET recording answer), timeline (the
 *   timeline answer), language, sessionHref, listHref
 */
export function mountPlayer({ session, recording, timeline, language, sessionHref, listHref }) {
  let code = new CodeTimeline(timeline)
  let duration = Math.max(Number(timeline.duration || recording.duration || 0), code.end)
  const audioUrl = (timeline.audio && (timeline.audio.ogg || timeline.audio.m4a)) || recording.oggUrl || recording.m4aUrl

  const position = h('input', { type: 'range', min: 0, max: duration.toFixed(1), step: 0.1, value: 0, id: uid('position') })
  const shown = h('output', { for: position.id, 'aria-live': 'off' }, `${clock(0)} / ${clock(duration)}`)
  const last = h('p', { class: 'meta last-change' })
  const editorHost = h('div', { class: 'editor replay-code' })
  const audio = audioUrl
    ? h(
        'audio',
        { controls: true, preload: 'auto', 'aria-label': 'Recorded voice' },
        timeline.audio && timeline.audio.ogg ? h('source', { src: timeline.audio.ogg, type: 'audio/ogg' }) : null,
        timeline.audio && timeline.audio.m4a ? h('source', { src: timeline.audio.m4a, type: 'audio/mp4' }) : null,
      )
    : null
  if (audio && !audio.querySelector('source')) audio.src = audioUrl
  const note = STATUS[recording.status]
  const running = recording.status === 'recording'
  const length = h('span', { class: 'length' })
  const paintLength = () => {
    length.textContent = `${clock(duration)} ${running ? 'so far' : 'long'}`
  }
  paintLength()
  const node = h(
    'section',
    { class: 'replay' },
    h('h1', null, `Replay of ${session.title}`),
    h('p', { class: 'meta' }, `Recorded ${when(recording.startedAt)} · `, length, ' · ', h('a', { href: listHref }, 'All recordings'), ' · ', h('a', { href: sessionHref }, 'The dojo')),
    note ? h('p', { class: 'note', role: 'status' }, recording.status === 'failed' && recording.error ? `${note}: ${recording.error}` : note) : null,
    h(
      'div',
      { class: 'player' },
      audio || h('p', { class: 'meta' }, 'No audio for this recording.'),
      h('div', { class: 'scrubber' }, h('label', { for: position.id }, 'Position'), position, shown),
      last,
      h('section', { 'aria-labelledby': 'replay-code-h' }, h('h2', { id: 'replay-code-h' }, 'Code at this moment'), editorHost),
    ),
  )

  // In a shadow root, as in the room: CodeMirror's styles are then constructed style sheets,
  // which the page's Content-Security-Policy allows.
  const root = editorHost.attachShadow({ mode: 'open' })
  const languageConf = new Compartment()
  const view = new EditorView({
    parent: root,
    root,
    state: EditorState.create({
      doc: '',
      extensions: [
        lineNumbers(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        languageConf.of([]),
        Prec.highest(editorTheme),
        EditorState.readOnly.of(true),
        EditorView.contentAttributes.of({ 'aria-label': `Code of ${session.title} at the chosen moment`, 'aria-readonly': 'true' }),
      ],
    }),
  })
  let destroyed = false
  loadLanguage(language).then((mode) => {
    if (!destroyed) view.dispatch({ effects: languageConf.reconfigure(mode) })
  })

  // Show the code at `seconds`: only what changed is replaced, so the view keeps its place.
  let shownCount = -1
  const show = (seconds, { fromScrubber = false } = {}) => {
    const t = Math.min(Math.max(0, seconds), duration || seconds)
    if (!fromScrubber) position.value = t.toFixed(1)
    shown.textContent = `${clock(t)} / ${clock(duration)}`
    position.setAttribute('aria-valuetext', `${clock(t)} of ${clock(duration)}`)
    node.dataset.position = t.toFixed(1)
    const found = code.at(t)
    if (found.count === shownCount) return
    shownCount = found.count
    const before = view.state.doc.toString()
    const after = found.code
    let start = 0
    while (start < before.length && start < after.length && before[start] === after[start]) start += 1
    let endBefore = before.length
    let endAfter = after.length
    while (endBefore > start && endAfter > start && before[endBefore - 1] === after[endAfter - 1]) {
      endBefore -= 1
      endAfter -= 1
    }
    if (start !== endBefore || start !== endAfter) {
      view.dispatch({ changes: { from: start, to: endBefore, insert: after.slice(start, endAfter) } })
    }
    last.textContent = found.last ? `Last change at ${clock(found.last.t)}${found.author ? ` by ${found.author.username}` : ''}.` : 'No change yet.'
  }

  position.addEventListener('input', () => {
    const t = Number(position.value)
    if (audio && audio.readyState > 0) audio.currentTime = t
    show(t, { fromScrubber: true })
  })

  let frame = 0
  const follow = () => {
    show(audio.currentTime)
    frame = requestAnimationFrame(follow)
  }
  if (audio) {
    audio.addEventListener('play', () => {
      cancelAnimationFrame(frame)
      frame = requestAnimationFrame(follow)
    })
    for (const name of ['pause', 'ended']) {
      audio.addEventListener(name, () => {
        cancelAnimationFrame(frame)
        show(audio.currentTime)
      })
    }
    for (const name of ['seeked', 'timeupdate']) audio.addEventListener(name, () => show(audio.currentTime))
  }
  show(0)

  return {
    node,
    grow(newer) {
      if (destroyed) return
      const atEnd = Number(position.value) >= Number(position.max) - 0.05
      code.destroy()
      code = new CodeTimeline(newer)
      duration = Math.max(Number(newer.duration || 0), code.end, duration)
      position.max = duration.toFixed(1)
      paintLength()
      shownCount = -1
      show(atEnd ? duration : Number(position.value), { fromScrubber: !atEnd })
    },
    destroy() {
      destroyed = true
      cancelAnimationFrame(frame)
      if (audio) audio.pause()
      view.destroy()
      code.destroy()
    },
  }
}
