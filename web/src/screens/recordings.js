// A dojo's recordings: the list (status, mixing progress, length, a link to replay) and the
// replay page (its player, with the editor, is a separate chunk, loaded on demand). The list
// is polled while a recording runs or is being mixed.
import { api } from '../api.js'
import { h, poller, replace, when } from '../dom.js'

const POLL_MS = 1500
const LIVE_MS = 3000 // a replay of a recording still running, or being mixed, refreshed
const STATUS = { recording: 'Recording', processing: 'Being mixed', ready: 'Ready', failed: 'Failed' }

function length(seconds) {
  if (seconds == null) return null
  const whole = Math.round(seconds)
  return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, '0')} s`
}

function recordingRow(sessionId, r) {
  const label = `Recording of ${when(r.startedAt)}`
  const status = `${STATUS[r.status] || r.status}${r.status === 'processing' ? ` (${r.progress}%)` : ''}`
  return h(
    'li',
    { class: 'card', 'data-status': r.status },
    h('h2', null, h('a', { href: `/dojos/${sessionId}/recordings/${r.recordingId}` }, label)),
    h('p', { class: 'meta' }, h('span', { class: 'status' }, status), length(r.duration) ? ` · ${length(r.duration)}` : '', r.participants ? ` · ${r.participants.length} ${r.participants.length === 1 ? 'voice' : 'voices'}` : ''),
    r.error ? h('p', { class: 'error' }, r.error) : null,
    r.status === 'processing' ? h('progress', { max: 100, value: r.progress, 'aria-label': `${label}: mixing` }) : null,
  )
}

export async function recordingsScreen({ params, onLeave }) {
  const { sessionId } = params
  const session = await api('GET', `/v1/dojos/sessions/${sessionId}`)
  const list = h('ul', { class: 'cards recording-list', 'aria-label': 'Recordings' })
  const refresh = poller(onLeave, POLL_MS, async () => {
    const answer = await api('GET', `/v1/dojos/sessions/${sessionId}/recordings`)
    replace(list, answer.recordings.length ? answer.recordings.map((r) => recordingRow(sessionId, r)) : h('li', null, 'No recordings yet. The host records from the dojo room.'))
    return answer.recordings.some((r) => r.status === 'recording' || r.status === 'processing')
  })
  await refresh()
  return h('section', null, h('h1', null, `Recordings of ${session.title}`), h('p', null, h('a', { href: `/dojos/${sessionId}` }, 'Back to the dojo')), list)
}

export async function replayScreen({ params, onLeave }) {
  const { sessionId, recordingId } = params
  const base = `/v1/dojos/sessions/${sessionId}/recordings/${recordingId}`
  const [session, recording, timeline] = await Promise.all([api('GET', `/v1/dojos/sessions/${sessionId}`), api('GET', base), api('GET', `${base}/timeline`)])
  let language = timeline.language || session.language
  if (!language) {
    try {
      language = (await api('GET', `/v1/pocs/${session.pocId}`)).language
    } catch {
      language = ''
    }
  }
  const { mountPlayer } = await import('../replay/player.js')
  const mount = (answer, lines) =>
    mountPlayer({
      session,
      recording: answer,
      timeline: lines,
      language,
      sessionHref: `/dojos/${sessionId}`,
      listHref: `/dojos/${sessionId}/recordings`,
    })
  let player = mount(recording, timeline)
  onLeave(() => player.destroy())
  const page = h('div', { class: 'replay-page' }, player.node)
  // While it records, the code typed since joins the player; once it stops (its audio being
  // mixed, then ready), the player is built again with what the recording has then.
  let status = recording.status
  const follow = poller(onLeave, LIVE_MS, async () => {
    let answer
    let lines
    try {
      ;[answer, lines] = await Promise.all([api('GET', base), api('GET', `${base}/timeline`)])
    } catch {
      return true // try again later
    }
    if (answer.status === 'recording') player.grow(lines)
    else if (answer.status !== status) {
      player.destroy()
      player = mount(answer, lines)
      replace(page, player.node)
    }
    status = answer.status
    return status === 'recording' || status === 'processing'
  })
  if (status === 'recording' || status === 'processing') setTimeout(() => follow().catch(() => {}), LIVE_MS)
  return page
}
