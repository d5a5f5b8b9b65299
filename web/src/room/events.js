// The events socket (JSON): welcome, chat, presence, role, signal, recording, error. It
// reconnects with backoff after any close but the 4400-4499 ones, which no retry can fix.

const MAX_BACKOFF_MS = 5000

/**
 * Connect to `url`; `onMessage(message)` gets every parsed message, `onState(state, event)`
 * gets 'connecting' | 'open' | 'reconnecting' | 'closed' (with the CloseEvent).
 */
export function eventsSocket(url, { onMessage, onState }) {
  let socket = null
  let attempts = 0
  let stopped = false
  let timer = null

  const connect = () => {
    onState(attempts ? 'reconnecting' : 'connecting')
    socket = new WebSocket(url)
    socket.addEventListener('open', () => {
      attempts = 0
      onState('open')
    })
    socket.addEventListener('message', (event) => {
      if (typeof event.data !== 'string') return
      let message
      try {
        message = JSON.parse(event.data)
      } catch {
        return
      }
      onMessage(message)
    })
    socket.addEventListener('close', (event) => {
      socket = null
      if (stopped) return
      if (event.code >= 4400 && event.code < 4500) {
        stopped = true
        onState('closed', event)
        return
      }
      attempts += 1
      onState('reconnecting', event)
      timer = setTimeout(connect, Math.min(MAX_BACKOFF_MS, 250 * 2 ** attempts))
    })
  }
  connect()

  return {
    send(message) {
      if (!socket || socket.readyState !== WebSocket.OPEN) return false
      socket.send(JSON.stringify(message))
      return true
    },
    close() {
      stopped = true
      clearTimeout(timer)
      if (socket) socket.close(1000)
    },
  }
}

/** What a dojo close code means, for people. */
export function closeReason(code) {
  switch (code) {
    case 4410:
      return 'the session has ended'
    case 4401:
      return 'your sign-in ended; log in again'
    case 4403:
      return 'you are no longer a participant'
    case 4404:
      return 'no such session'
    case 4400:
      return 'the server refused a malformed message'
    case 4413:
      return 'a message or the document grew too large'
    default:
      return `closed (${code})`
  }
}
