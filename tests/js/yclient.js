'use strict'
// A stock Yjs client (yjs + y-websocket's WebsocketProvider) driven over stdin/stdout, one JSON
// object per line, by the realtime tests (tests/realtime/jsclient.py).
//
//   node yclient.js '{"serverUrl": "ws://…/v1/dojos/sessions/<id>", "room": "doc", "token": "…"}'
//
// Commands (stdin), each may carry an "id" that its answer repeats:
//   {"cmd": "insert", "index": i, "text": s}   index in UTF-16 code units, as Yjs counts
//   {"cmd": "delete", "index": i, "length": n}
//   {"cmd": "insertLine", "line": k, "text": s} at the start of line k (past the end: append)
//   {"cmd": "deleteText", "text": s, "missingOk"?: bool}  the first occurrence of s
//   {"cmd": "type", "text": s, "index"?: i}    s one character per transaction, in a tight loop
//                                              (as fast as the client can), at i (default: end)
//   {"cmd": "sendRaw", "hex": h} / {"cmd": "sendRaw", "string": s}
//                                              a frame the provider would never send, on
//                                              provider.ws: binary from hex, or a text frame
//   {"cmd": "nest", "key": k, "depth": n}    n Y.Maps, each in the one before, under key k of
//                                              the root map "meta", in one transaction
//   {"cmd": "get"}
//   {"cmd": "awareness", "state": {...} | null}
//   {"cmd": "disconnect"} / {"cmd": "connect"}   provider.disconnect() / provider.connect()
//   {"cmd": "exit"}
// Events (stdout):
//   {"event": "ready", "clientId": n}
//   {"event": "done", "id", "cmd", "ok", "error"?, "text", "clientId"}  the answer to a command
//   {"event": "text", "text": s}                 whenever the shared text changed
//   {"event": "status", "status": "connecting" | "connected" | "disconnected"}
//   {"event": "synced", "synced": bool}
//   {"event": "awareness", "states": {clientId: state}}
//   {"event": "closed", "code": n | null, "reason": s, "local": bool}  a socket closed
//   {"event": "terminal", "code": n, "reason": s}  the provider gave up reconnecting
//   {"event": "error", "message": s}

const readline = require('readline')
const WebSocket = require('ws')
const Y = require('yjs')
const { WebsocketProvider } = require('y-websocket')

const config = JSON.parse(process.argv[2])

function emit (event) {
  process.stdout.write(JSON.stringify(event) + '\n')
}

process.on('uncaughtException', (err) => {
  emit({ event: 'error', message: String(err && err.stack ? err.stack : err) })
  process.exit(1)
})

const doc = new Y.Doc()
const code = doc.getText('code')
const provider = new WebsocketProvider(config.serverUrl, config.room, doc, {
  WebSocketPolyfill: WebSocket,
  disableBc: true,
  params: { token: config.token },
  connect: false
})

function states () {
  const out = {}
  for (const [clientId, state] of provider.awareness.getStates()) {
    out[clientId] = state
  }
  return out
}

code.observe(() => emit({ event: 'text', text: code.toString() }))
provider.on('status', ({ status }) => emit({ event: 'status', status }))
provider.on('sync', (synced) => emit({ event: 'synced', synced }))
provider.awareness.on('change', () => emit({ event: 'awareness', states: states() }))
provider.on('connection-close', (event) => emit({
  event: 'closed',
  code: event ? event.code : null,
  reason: event ? String(event.reason || '') : '',
  local: !event
}))
provider.on('closed', ({ code, reason }) => emit({
  event: 'terminal', code, reason: String(reason || '')
}))
provider.on('connection-error', (event) => emit({
  event: 'error', message: String((event && event.message) || 'connection error')
}))

function lineStart (text, line) {
  let index = 0
  for (let k = 0; k < line; k++) {
    const next = text.indexOf('\n', index)
    if (next < 0) return text.length
    index = next + 1
  }
  return index
}

const commands = {
  insert ({ index, text }) { code.insert(index, text) },
  delete ({ index, length }) { code.delete(index, length) },
  insertLine ({ line, text }) { code.insert(lineStart(code.toString(), line), text) },
  deleteText ({ text, missingOk }) {
    const index = code.toString().indexOf(text)
    if (index < 0 && missingOk) return
    if (index < 0) throw new Error('not found: ' + JSON.stringify(text))
    code.delete(index, text.length)
  },
  type ({ text, index }) {
    let at = index === undefined ? code.length : index
    for (const char of text) { // code points: a surrogate pair is one keystroke
      code.insert(at, char)
      at += char.length
    }
  },
  sendRaw ({ hex, string }) {
    const ws = provider.ws
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new Error('not connected')
    ws.send(string !== undefined ? string : Buffer.from(hex, 'hex'))
  },
  nest ({ key, depth }) {
    doc.transact(() => {
      let parent = doc.getMap('meta')
      let name = key
      for (let level = 0; level < depth; level++) {
        const child = new Y.Map()
        parent.set(name, child) // integrated at once: the next level goes into a live map
        parent = child
        name = 'inner'
      }
    })
  },
  get () {},
  awareness ({ state }) { provider.awareness.setLocalState(state) },
  disconnect () { provider.disconnect() },
  connect () { provider.connect() },
  exit () {
    provider.destroy()
    process.exit(0)
  }
}

const input = readline.createInterface({ input: process.stdin })
input.on('line', (line) => {
  if (!line.trim()) return
  let message
  try {
    message = JSON.parse(line)
  } catch (err) {
    emit({ event: 'error', message: 'bad command: ' + line })
    return
  }
  const answer = { event: 'done', id: message.id, cmd: message.cmd, ok: true }
  try {
    const run = commands[message.cmd]
    if (!run) throw new Error('unknown command ' + message.cmd)
    run(message)
  } catch (err) {
    answer.ok = false
    answer.error = String(err && err.message ? err.message : err)
  }
  answer.text = code.toString()
  answer.clientId = doc.clientID
  emit(answer)
})
// The test runner went away: do not linger.
input.on('close', () => process.exit(0))

emit({ event: 'ready', clientId: doc.clientID })
provider.connect()
