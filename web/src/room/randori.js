// Randori in the room: the host's control (turn length in minutes or seconds, start, stop),
// everyone's panel (pilot, co-pilot, a countdown to the next turn, the order) and "follow the
// pilot", which keeps the pilot's cursor (their awareness `cursor`) in view. The server
// announces every turn on the events socket; the room makes the editor read-only in place for
// everyone but the pilot.
import { EditorView } from '@codemirror/view'
import * as Y from 'yjs'

import { field, h, replace, uid } from '../dom.js'

const DEFAULT_MINUTES = 5

/** "m:ss" for a number of whole seconds. */
function clock(seconds) {
  const m = Math.floor(seconds / 60)
  const s = seconds % 60
  return `${m}:${String(s).padStart(2, '0')}`
}

/**
 * Build the randori section. Returns `{ node, apply(event), locked(), repaint(), destroy() }`.
 *
 * @param {object} opts isHost, me, nameOf (userId → name), send (a message to the events
 *   socket; false when it is not open), onChange (called when who may type changes), view,
 *   awareness, ydoc
 */
export function randoriPanel({ isHost, me, nameOf, send, onChange, view, awareness, ydoc }) {
  let current = null // the last `randori` event while randori is on

  const headingId = uid('randori-h')
  const state = h('p', { class: 'randori-state', 'aria-live': 'polite' }, 'Randori is off.')
  const pilotName = h('strong', { class: 'pilot' })
  const copilotName = h('strong', { class: 'copilot' })
  const countdown = h('span', { class: 'countdown' })
  const turn = h(
    'div',
    { class: 'randori-turn', hidden: true },
    h('p', null, 'Pilot: ', pilotName),
    h('p', null, 'Co-pilot: ', copilotName),
    h('p', null, 'Next turn in ', countdown),
  )
  const order = h('ol', { class: 'randori-order', 'aria-label': 'Randori order', hidden: true })
  const followBox = h('input', { type: 'checkbox', name: 'follow', id: uid('follow') })
  const follow = h('div', { class: 'field check', hidden: true }, followBox, h('label', { for: followBox.id }, 'Follow the pilot'))
  const node = h('section', { class: 'randori', 'aria-labelledby': headingId }, h('h2', { id: headingId }, 'Randori'), state, turn, order, follow)

  let control = null
  let startButton = null
  let stopButton = null
  if (isHost) {
    const length = h('input', { type: 'number', name: 'turnLength', min: 1, max: 3600, step: 1, value: DEFAULT_MINUTES, required: true })
    const unit = h('select', { name: 'unit' }, h('option', { value: '60' }, 'minutes'), h('option', { value: '1' }, 'seconds'))
    startButton = h('button', { type: 'submit' }, 'Start randori')
    stopButton = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Stop randori')
    control = h('form', { class: 'randori-control', 'aria-label': 'Randori control' }, field('Turn length', length), field('Unit', unit), startButton, stopButton)
    control.addEventListener('submit', (event) => {
      event.preventDefault()
      const periodSeconds = Number(length.value) * Number(unit.value)
      if (!Number.isInteger(periodSeconds) || periodSeconds < 1 || periodSeconds > 3600) {
        length.setCustomValidity('A turn lasts from 1 second to 60 minutes.')
        length.reportValidity()
        length.setCustomValidity('')
        return
      }
      send({ type: 'randori', action: 'start', periodSeconds })
    })
    stopButton.addEventListener('click', () => send({ type: 'randori', action: 'stop' }))
    node.append(control)
  }

  const tick = () => {
    if (!current) return
    const left = Math.max(0, Math.ceil((Date.parse(current.turnEndsAt) - Date.now()) / 1000))
    countdown.textContent = clock(left)
  }
  const timer = setInterval(tick, 250)

  const repaint = () => {
    if (!current) {
      state.textContent = 'Randori is off.'
      turn.hidden = true
      order.hidden = true
      follow.hidden = true
      delete node.dataset.pilot
      delete node.dataset.turn
      delete node.dataset.turnEndsAt
      return
    }
    const mine = current.pilot === me.userId
    state.textContent = mine ? 'You are the pilot: you type.' : 'Randori is on: the pilot types.'
    pilotName.textContent = `${nameOf(current.pilot)}${mine ? ' (you)' : ''}`
    copilotName.textContent = `${nameOf(current.copilot)}${current.copilot === me.userId ? ' (you)' : ''}`
    replace(
      order,
      current.order.map((userId) =>
        h('li', { class: userId === current.pilot ? 'pilot' : null }, nameOf(userId), userId === current.pilot ? ' (pilot)' : userId === current.copilot ? ' (co-pilot)' : ''),
      ),
    )
    turn.hidden = false
    order.hidden = false
    follow.hidden = mine
    node.dataset.pilot = current.pilot
    node.dataset.turn = String(current.turn)
    node.dataset.turnEndsAt = current.turnEndsAt
    tick()
  }

  // --- follow the pilot -------------------------------------------------------------------
  const pilotCursor = () => {
    if (!current || current.pilot === me.userId) return null
    for (const [clientId, s] of awareness.getStates()) {
      if (clientId === awareness.clientID || !s || !s.user || s.user.userId !== current.pilot) continue
      if (!s.cursor || !s.cursor.head) continue
      const at = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(s.cursor.head), ydoc)
      if (at && at.type === ydoc.getText('code')) return at.index
    }
    return null
  }
  const followNow = () => {
    if (!followBox.checked) return
    const index = pilotCursor()
    if (index == null) return
    const pos = Math.min(index, view.state.doc.length)
    // After the editor has applied the update that moved the cursor.
    requestAnimationFrame(() => view.dispatch({ effects: EditorView.scrollIntoView(Math.min(pos, view.state.doc.length), { y: 'center' }) }))
  }
  awareness.on('change', followNow)
  followBox.addEventListener('change', followNow)

  return {
    node,
    /** Take a `randori` event (or the welcome's `randori`, maybe null). */
    apply(event) {
      const wasLocked = this.locked()
      current = event && event.active ? event : null
      if (startButton) {
        startButton.textContent = current ? 'Restart randori' : 'Start randori'
        stopButton.disabled = !current
      }
      repaint()
      if (wasLocked !== this.locked() || event) onChange()
      followNow()
    },
    /** Whether randori keeps this user from typing now. */
    locked() {
      return current !== null && current.pilot !== me.userId
    },
    repaint,
    disable() {
      if (control) for (const el of control.elements) el.disabled = true
    },
    destroy() {
      clearInterval(timer)
      awareness.off('change', followNow)
    },
  }
}
