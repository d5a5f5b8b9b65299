// The dojo room: CodeMirror 6 bound to the session's Yjs document (Y.Text `code`) through the
// stock y-websocket provider, with remote cursors, one's own undo, participants, chat, a
// connection indicator, randori, voice and recording, and the host's controls.
import { defaultKeymap } from '@codemirror/commands'
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from '@codemirror/language'
import { Compartment, EditorState, Prec } from '@codemirror/state'
import { EditorView, drawSelection, highlightActiveLine, highlightActiveLineGutter, keymap, lineNumbers } from '@codemirror/view'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'

import { h, replace, uid, when } from '../dom.js'
import { applyCursorColors, userColor } from './colors.js'
import { closeReason, eventsSocket } from './events.js'
import { highlighted, loadLanguage } from './languages.js'
import { randoriPanel } from './randori.js'
import { editorTheme } from './theme.js'
import { voicePanel } from './voice.js'

const ROLE_NAMES = { host: 'host', participant: 'participant', observer: 'observer' }

function readOnlyExtensions(readOnly) {
  return [EditorState.readOnly.of(readOnly), EditorView.contentAttributes.of({ 'aria-readonly': readOnly ? 'true' : 'false' })]
}

/**
 * Build the room. Returns `{ node, destroy }`.
 *
 * @param {object} opts session (GET answer), joined (join answer), language, me, joinCode,
 *   joinLink, endSession (a function asking the server to end it), earlierChat (a function
 *   answering the chat messages sent before a time, oldest first), refreshIce (a function
 *   answering the session's ICE servers), recordingsHref (the recordings page)
 */
export function mountRoom({ session, joined, language, me, joinCode, joinLink, endSession, earlierChat, refreshIce, recordingsHref }) {
  const sessionId = session.sessionId
  const isHost = session.hostUserId === me.userId
  let role = joined.role
  let over = false

  // --- the page -------------------------------------------------------------------------
  const connection = h('p', { class: 'connection', role: 'status', 'aria-live': 'polite' }, 'Connecting…')
  const readOnlyNote = h('p', { class: 'note', id: uid('ro') }, 'You are observing: the editor is read-only.')
  const endedNote = h('p', { class: 'ended', role: 'alert', hidden: true })
  const editorHost = h('div', { class: 'editor' })
  const participants = h('ul', { class: 'participants', 'aria-label': 'Participants' })
  const chatList = h('ol', { class: 'chat-list' })
  // The welcome brings the last messages; older ones are asked for, a page at a time.
  const earlier = h('button', { type: 'button', class: 'link', hidden: true }, 'Show earlier messages')
  let oldestChat = null
  const chatLog = h('div', { class: 'chat-log', role: 'log', 'aria-label': 'Chat messages', 'aria-live': 'polite', tabindex: '0' }, earlier, chatList)
  const chatInput = h('input', { name: 'message', maxlength: 4000, autocomplete: 'off', required: true })
  const chatForm = h('form', { class: 'chat-form', 'aria-label': 'Send a message' }, h('label', { for: (chatInput.id = uid('chat')) }, 'Message'), chatInput, h('button', { type: 'submit' }, 'Send'))
  const tools = h('div', { class: 'room-tools', role: 'group', 'aria-label': 'Session controls' })
  const linkInput = h('input', { readonly: true, value: joinLink, id: uid('link') })
  const copy = h('button', { type: 'button', class: 'secondary' }, 'Copy join link')
  copy.addEventListener('click', async () => {
    linkInput.select()
    try {
      await navigator.clipboard.writeText(joinLink)
      copy.textContent = 'Copied'
    } catch {
      copy.textContent = 'Select and copy the link'
    }
  })
  const share = h(
    'section',
    { class: 'share', 'aria-labelledby': 'share-h' },
    h('h2', { id: 'share-h' }, 'Invite'),
    h('p', null, 'Join code: ', h('strong', { class: 'code' }, joinCode)),
    h('div', { class: 'field' }, h('label', { for: linkInput.id }, 'Join link'), linkInput),
    copy,
  )
  if (isHost) {
    const end = h('button', { type: 'button', class: 'danger' }, 'End session')
    end.addEventListener('click', async () => {
      end.disabled = true
      try {
        await endSession()
        finish('You ended this session.')
      } catch (error) {
        end.disabled = false
        connection.textContent = `Could not end the session: ${error.message}`
      }
    })
    tools.append(end)
  }

  const node = h(
    'section',
    { class: 'room' },
    h('div', { class: 'title-row' }, h('h1', null, session.title), tools),
    h('p', { class: 'meta' }, `${language || 'Plain text'}${highlighted(language) ? '' : ' (no highlighting)'} · you are ${ROLE_NAMES[role] || role}`),
    endedNote,
    h('div', { class: 'status-row' }, connection),
    h(
      'div',
      { class: 'room-grid' },
      h('section', { class: 'code-pane', 'aria-labelledby': 'code-h' }, h('h2', { id: 'code-h', class: 'visually-hidden' }, 'Code'), readOnlyNote, editorHost),
      h(
        'div',
        { class: 'side' },
        share,
        h('section', { 'aria-labelledby': 'people-h' }, h('h2', { id: 'people-h' }, 'Participants'), participants),
        h('section', { class: 'chat', 'aria-labelledby': 'chat-h' }, h('h2', { id: 'chat-h' }, 'Chat'), chatLog, chatForm),
      ),
    ),
  )

  // --- the document and its editor ----------------------------------------------------------
  const ydoc = new Y.Doc()
  const ytext = ydoc.getText('code')
  const serverUrl = joined.docUrl.replace(/\/doc$/, '')
  const provider = new WebsocketProvider(serverUrl, 'doc', ydoc, { params: { token: joined.participantToken }, disableBc: true })
  const colors = userColor(me.userId)
  provider.awareness.setLocalStateField('user', { name: me.username, userId: me.userId, ...colors })
  const undoManager = new Y.UndoManager(ytext)
  const readOnly = new Compartment()
  const languageConf = new Compartment()
  // The editor lives in a shadow root: there CodeMirror's styles are constructed style sheets,
  // which the page's Content-Security-Policy allows; on the document they would be <style>
  // elements, which it forbids.
  const editorRoot = editorHost.attachShadow({ mode: 'open' })
  const view = new EditorView({
    parent: editorRoot,
    root: editorRoot,
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightActiveLine(),
        drawSelection(),
        indentOnInput(),
        bracketMatching(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        languageConf.of([]),
        yCollab(ytext, provider.awareness, { undoManager }),
        Prec.highest(editorTheme),
        Prec.high(keymap.of(yUndoManagerKeymap)),
        keymap.of(defaultKeymap),
        EditorView.contentAttributes.of({ 'aria-label': `Code of ${session.title}`, 'aria-describedby': readOnlyNote.id }),
        readOnly.of(readOnlyExtensions(role === 'observer')),
      ],
    }),
  })
  const stopColors = applyCursorColors(view.dom)
  let destroyed = false
  loadLanguage(language).then((mode) => {
    if (!destroyed) view.dispatch({ effects: languageConf.reconfigure(mode) })
  })

  // Read-only in place (a reconfiguration, the sockets untouched) when the session is over,
  // for observers, and in randori for everyone but the pilot.
  let randori = null
  function setRole(next) {
    role = next
    const turnLocked = randori !== null && randori.locked()
    const locked = over || role === 'observer' || turnLocked
    view.dispatch({ effects: readOnly.reconfigure(readOnlyExtensions(locked)) })
    readOnlyNote.hidden = !locked
    if (over) readOnlyNote.textContent = 'The session has ended: the editor is read-only.'
    else if (role === 'observer') readOnlyNote.textContent = 'You are observing: the editor is read-only.'
    else if (turnLocked) readOnlyNote.textContent = 'Randori: the pilot types. The editor is read-only until your turn.'
    node.querySelector('.meta').textContent = `${language || 'Plain text'}${highlighted(language) ? '' : ' (no highlighting)'} · you are ${ROLE_NAMES[role] || role}`
  }
  readOnlyNote.hidden = role !== 'observer'

  // --- connection indicator ------------------------------------------------------------------
  let everConnected = false
  let docState = 'connecting'
  const paintConnection = () => {
    if (over) return
    const text = {
      connecting: 'Connecting…',
      syncing: 'Syncing…',
      connected: 'Connected',
      reconnecting: 'Reconnecting…',
      resyncing: 'Resyncing…',
    }[docState]
    if (text) connection.textContent = text
    connection.dataset.state = docState
  }
  provider.on('status', ({ status }) => {
    if (status === 'connected') {
      docState = everConnected ? 'resyncing' : 'syncing'
      everConnected = true
    } else if (status === 'connecting' || status === 'disconnected') {
      docState = everConnected ? 'reconnecting' : 'connecting'
    }
    paintConnection()
  })
  provider.on('sync', (synced) => {
    if (synced && provider.wsconnected) {
      docState = 'connected'
      paintConnection()
    }
  })
  provider.on('connection-close', (event) => {
    if (event && event.code >= 4400 && event.code < 4500) closed(event.code)
  })

  // --- participants, chat and the events socket -----------------------------------------------
  const people = new Map()
  const nameOf = (userId) => (people.get(userId) || {}).username || 'someone who left'
  const paintPeople = () => {
    const sorted = [...people.values()].sort((a, b) => (a.username < b.username ? -1 : 1))
    replace(
      participants,
      sorted.map((p) =>
        h(
          'li',
          { class: p.online ? 'online' : 'offline' },
          h('span', { class: 'dot', 'aria-hidden': 'true' }),
          h('span', { class: 'name' }, p.username),
          ` · ${p.role}${p.userId === me.userId ? ' (you)' : ''} · `,
          h('span', { class: 'state' }, p.online ? 'online' : 'offline'),
        ),
      ),
    )
  }
  for (const p of session.participants || []) people.set(p.userId, { ...p })

  const chatItem = (message) =>
    h(
      'li',
      null,
      h('span', { class: 'author' }, message.username),
      h('time', { datetime: message.sentAt }, when(message.sentAt)),
      h('p', null, message.text),
    )
  const addChat = (message) => {
    const stick = chatLog.scrollTop + chatLog.clientHeight >= chatLog.scrollHeight - 8
    chatList.append(chatItem(message))
    if (stick) chatLog.scrollTop = chatLog.scrollHeight
  }

  const events = eventsSocket(`${serverUrl}/events?token=${encodeURIComponent(joined.participantToken)}`, {
    onState(state, event) {
      if (state === 'closed' && event) closed(event.code)
    },
    onMessage(message) {
      switch (message.type) {
        case 'welcome':
          voice.handle(message)
          for (const p of message.participants) people.set(p.userId, { ...people.get(p.userId), ...p })
          paintPeople()
          replace(chatList, message.chat.map(chatItem))
          oldestChat = message.chat.length ? message.chat[0].sentAt : null
          earlier.hidden = message.chat.length === 0
          chatLog.scrollTop = chatLog.scrollHeight
          if (message.you && message.you.role !== role) setRole(message.you.role)
          randori.apply(message.randori || null)
          break
        case 'randori':
          randori.apply(message)
          break
        case 'voice':
        case 'signal':
        case 'recording':
          voice.handle(message)
          break
        case 'chat':
          addChat(message)
          break
        case 'presence': {
          const known = people.get(message.userId) || { userId: message.userId }
          people.set(message.userId, { ...known, username: message.username, role: message.role, online: message.event === 'joined' })
          paintPeople()
          randori.repaint()
          voice.repaint()
          break
        }
        case 'role': {
          const known = people.get(message.userId)
          if (known) people.set(message.userId, { ...known, role: message.role })
          paintPeople()
          if (message.userId === me.userId) setRole(message.role)
          break
        }
        case 'error':
          if (voice.error(message)) break
          connection.textContent = `Message refused: ${message.message}`
          break
        default:
          break
      }
    },
  })
  paintPeople()

  randori = randoriPanel({
    isHost,
    me,
    nameOf,
    send: (message) => events.send(message),
    onChange: () => setRole(role),
    view,
    awareness: provider.awareness,
    ydoc,
  })
  node.querySelector('.side').prepend(randori.node)

  const voice = voicePanel({
    isHost,
    me,
    nameOf,
    send: (message) => events.send(message),
    ice: joined.ice,
    refreshIce,
    recordingsHref,
  })
  share.after(voice.node)
  connection.after(voice.indicator) // beside the connection's state, for everyone

  earlier.addEventListener('click', async () => {
    if (!oldestChat) return
    earlier.disabled = true
    try {
      const page = await earlierChat(oldestChat)
      chatList.prepend(...page.messages.map(chatItem))
      if (page.messages.length) oldestChat = page.messages[0].sentAt
      earlier.hidden = page.messages.length === 0
    } finally {
      earlier.disabled = false
    }
  })

  chatForm.addEventListener('submit', (event) => {
    event.preventDefault()
    const text = chatInput.value.trim()
    if (!text) return
    if (events.send({ type: 'chat', text })) chatInput.value = ''
  })

  // --- the end -------------------------------------------------------------------------------
  function finish(message) {
    if (over) return
    over = true
    endedNote.hidden = false
    endedNote.textContent = message
    connection.textContent = 'Closed: the session has ended'
    connection.dataset.state = 'closed'
    setRole(role)
    chatInput.disabled = true
    chatForm.querySelector('button').disabled = true
    share.hidden = true
    for (const person of people.values()) person.online = false
    paintPeople()
    for (const button of tools.querySelectorAll('button')) button.disabled = true
    randori.disable()
    voice.disable()
    provider.disconnect()
    events.close()
  }

  function closed(code) {
    if (code === 4410) {
      finish('This session has ended.')
      return
    }
    if (over) return
    over = true
    connection.textContent = `Closed: ${closeReason(code)}`
    connection.dataset.state = 'closed'
    setRole(role)
    voice.disable()
    provider.disconnect()
    events.close()
  }

  return {
    node,
    destroy() {
      destroyed = true
      events.close()
      if (randori) randori.destroy()
      if (voice) voice.destroy()
      stopColors()
      provider.destroy()
      view.destroy()
      ydoc.destroy()
    },
  }
}
