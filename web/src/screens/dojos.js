// Dojos: the list, creating one from a POC, joining with a code or a join link, and the
// room itself (its editor and sockets live in the room chunk, loaded on demand).
import { ApiError, api, me, query as qs } from '../api.js'
import { errorBox, field, formData, h, onSubmit, select, showError, when } from '../dom.js'
import { navigate } from '../router.js'

const CODE_KEY = 'pocdojo.joinCode.'

/** The join link of a session: opening it (signed in) joins the session. */
export function joinLink(sessionId, code) {
  return `${location.origin}/dojos/${sessionId}${qs({ code })}`
}

/** Parse what someone pasted: a join link, or a bare session id. */
function parseJoin(text) {
  const trimmed = text.trim()
  try {
    const url = new URL(trimmed)
    const found = /^\/dojos\/([0-9a-f-]{36})\/?$/i.exec(url.pathname)
    if (found) return { sessionId: found[1], code: url.searchParams.get('code') || '' }
  } catch {
    // not a URL: a session id
  }
  return /^[0-9a-f-]{36}$/i.test(trimmed) ? { sessionId: trimmed, code: '' } : null
}

function joinForm() {
  const error = errorBox()
  const form = h(
    'form',
    { class: 'card', 'aria-label': 'Join a dojo' },
    field('Join link or session id', h('input', { name: 'link', required: true })),
    field('Join code', h('input', { name: 'code', autocomplete: 'off' }), 'Not needed when the link has it.'),
    field('Join as', select({ name: 'role' }, [['participant', 'Participant (can type)'], ['observer', 'Observer (read-only)']], 'participant')),
    error,
    h('button', { type: 'submit' }, 'Join'),
  )
  onSubmit(form, error, async (data) => {
    const parsed = parseJoin(data.link)
    const code = data.code || (parsed && parsed.code)
    if (!parsed || !code) {
      showError(error, new Error('Paste a join link, or a session id and its join code.'))
      return
    }
    navigate(`/dojos/${parsed.sessionId}${qs({ code, role: data.role === 'observer' ? 'observer' : null })}`)
  })
  return form
}

export async function dojoListScreen({ query }) {
  const page = Number(query.get('page') || 1)
  const answer = await api('GET', `/v1/dojos/sessions${qs({ page, limit: 20 })}`)
  const rows = answer.sessions.map((s) =>
    h(
      'li',
      { class: 'card' },
      h('h3', null, h('a', { href: `/dojos/${s.sessionId}` }, s.title)),
      h('p', { class: 'meta' }, `${s.status}${s.startedAt ? ` · started ${when(s.startedAt)}` : ''} · up to ${s.maxParticipants} people${s.hostUserId === me().userId ? ' · you host' : ''}`),
    ),
  )
  return h(
    'section',
    null,
    h('h1', null, 'Dojos'),
    h('p', null, 'Start a dojo from a POC\u2019s page, or join one with its link.'),
    h('section', { 'aria-labelledby': 'join-h' }, h('h2', { id: 'join-h' }, 'Join a dojo'), joinForm()),
    h('section', { 'aria-labelledby': 'list-h' }, h('h2', { id: 'list-h' }, 'Your tenant\u2019s dojos'), rows.length ? h('ul', { class: 'cards' }, rows) : h('p', null, 'No dojos yet.')),
    answer.totalPages > 1
      ? h('nav', { class: 'pages', 'aria-label': 'Pages' }, page > 1 ? h('a', { href: `/dojos?page=${page - 1}` }, 'Previous page') : null, page < answer.totalPages ? h('a', { href: `/dojos?page=${page + 1}` }, 'Next page') : null)
      : null,
  )
}

export async function dojoNewScreen({ query }) {
  const pocId = query.get('poc')
  if (!pocId) {
    return h('section', null, h('h1', null, 'New dojo'), h('p', null, 'A dojo belongs to a POC: ', h('a', { href: '/pocs' }, 'pick one'), ' and choose \u201cStart a dojo\u201d.'))
  }
  const poc = await api('GET', `/v1/pocs/${pocId}`)
  const error = errorBox()
  const form = h(
    'form',
    { class: 'card' },
    field('Title', h('input', { name: 'title', required: true, maxlength: 200, value: `${poc.title} kata` })),
    field('Description', h('textarea', { name: 'description', rows: 2 })),
    field('Starting code', h('textarea', { name: 'initialCode', rows: 8, class: 'mono', spellcheck: 'false' })),
    field('Most participants', h('input', { name: 'maxParticipants', type: 'number', min: 2, max: 50, value: 10 })),
    error,
    h('button', { type: 'submit' }, 'Create dojo'),
  )
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    showError(error, null)
    const data = formData(form)
    const created = await api('POST', '/v1/dojos/sessions', {
      title: data.title,
      pocId,
      description: data.description || null,
      language: poc.language,
      initialCode: form.elements.initialCode.value || null,
      maxParticipants: Number(data.maxParticipants),
    })
    sessionStorage.setItem(CODE_KEY + created.sessionId, created.joinCode)
    navigate(`/dojos/${created.sessionId}`)
  })
  return h('section', null, h('h1', null, 'New dojo'), h('p', null, 'For ', h('a', { href: `/pocs/${poc.pocId}` }, poc.title), ` (${poc.language}).`), form)
}

function ended(title, message) {
  return h('section', null, h('h1', null, title), h('p', { role: 'status' }, message), h('p', null, h('a', { href: '/dojos' }, 'Back to the dojos')))
}

export async function dojoRoomScreen({ params, query, onLeave }) {
  const { sessionId } = params
  if (query.get('code')) {
    // A join link: keep its code for this tab, and take it out of the address bar.
    sessionStorage.setItem(CODE_KEY + sessionId, query.get('code'))
    const role = query.get('role')
    history.replaceState(null, '', `/dojos/${sessionId}`)
    if (role === 'observer') sessionStorage.setItem(`${CODE_KEY + sessionId}.role`, role)
  }
  const code = sessionStorage.getItem(CODE_KEY + sessionId)
  if (!code) return askForCode(sessionId, null)
  let joined
  try {
    joined = await api('POST', `/v1/dojos/sessions/${sessionId}/join`, {
      joinCode: code,
      role: sessionStorage.getItem(`${CODE_KEY + sessionId}.role`) || 'participant',
    })
  } catch (failure) {
    if (failure instanceof ApiError && failure.code === 'session_ended') return ended('This dojo has ended', 'The host ended this session.')
    if (!(failure instanceof ApiError) || failure.code !== 'invalid_join_code') throw failure
    sessionStorage.removeItem(CODE_KEY + sessionId)
    return askForCode(sessionId, failure)
  }
  const session = await api('GET', `/v1/dojos/sessions/${sessionId}`)
  let language = session.language
  if (!language) {
    try {
      language = (await api('GET', `/v1/pocs/${session.pocId}`)).language
    } catch {
      language = ''
    }
  }
  const { mountRoom } = await import('../room/room.js')
  const room = mountRoom({
    session,
    joined,
    language,
    me: me(),
    joinCode: code,
    joinLink: joinLink(sessionId, code),
    endSession: () => api('POST', `/v1/dojos/sessions/${sessionId}/end`),
    earlierChat: (before) => api('GET', `/v1/dojos/sessions/${sessionId}/chat${qs({ before, limit: 50 })}`),
    refreshIce: () => api('GET', `/v1/dojos/sessions/${sessionId}/ice`),
    recordingsHref: `/dojos/${sessionId}/recordings`,
  })
  onLeave(room.destroy)
  return room.node
}

function askForCode(sessionId, failure) {
  return h('section', null, h('h1', null, 'Join this dojo'), h('p', null, 'Enter the join code the host shared.'), joinFormFor(sessionId, failure))
}

function joinFormFor(sessionId, failure) {
  const error = errorBox()
  showError(error, failure)
  const form = h(
    'form',
    { class: 'card narrow', 'aria-label': 'Join this dojo' },
    field('Join code', h('input', { name: 'code', required: true, autocomplete: 'off' })),
    field('Join as', select({ name: 'role' }, [['participant', 'Participant (can type)'], ['observer', 'Observer (read-only)']], 'participant')),
    error,
    h('button', { type: 'submit' }, 'Join'),
  )
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const data = formData(form)
    navigate(`/dojos/${sessionId}${qs({ code: data.code, role: data.role === 'observer' ? 'observer' : null })}`)
  })
  return form
}
