'use strict'
// A stock Yjs client (yjs + y-websocket's WebsocketProvider) for the chaos test
// (tests/realtime/test_chaos.py): a writer types unique markers into Y.Text('code'), a listener
// reports the markers it sees appear and disappear. Driven over stdin/stdout, one JSON object a
// line.
//
//   node ychaos.js '{"serverUrl": "ws://…/v1/dojos/sessions/<id>", "room": "doc", "token": "…",
//                    "name": "w0", "rate": 15, "deleteEvery": 10, "report": true}'
//
// A marker is "<name:n>" (n = 0, 1, 2, …). Writers insert each one whole at a marker boundary
// (the start, the end, or right after a ">"), so no insert ever splits a marker and a marker
// is in a text exactly when the text contains its string. Every `deleteEvery`-th edit deletes
// one of the writer's own markers instead (0: never).
//
// Commands (stdin), each may carry an "id" that its answer repeats:
//   {"cmd": "type"}   start typing `rate` edits a second
//   {"cmd": "stop"}   stop typing; the answer carries "typed" (markers typed so far)
//   {"cmd": "get"}    the answer carries the whole text
//   {"cmd": "exit"}
// Events (stdout):
//   {"event": "ready", "clientId": n}
//   {"event": "done", "id", "cmd", "ok", "error"?, "text", "typed", "synced", "status"}
//   {"event": "deleting", "marker": s}     a writer is about to delete one of its markers
//   {"event": "seen", "markers": [s]}      with "report": markers that appeared in the text
//   {"event": "gone", "markers": [s]}      with "report": markers that left the text
//   {"event": "status", "status": "connecting" | "connected" | "disconnected"}
//   {"event": "synced", "synced": bool}
//   {"event": "terminal", "code": n, "reason": s}   the provider gave up reconnecting
//   {"event": "error", "message": s}

const readline = require('readline')
const WebSocket = require('ws')
const Y = require('yjs')
const { WebsocketProvider } = require('y-websocket')

const config = JSON.parse(process.argv[2])
const MARKER = /<[a-z0-9]+:\d+>/g

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
let status = 'disconnected'
provider.on('status', (event) => {
  status = event.status
  emit({ event: 'status', status })
})
provider.on('sync', (synced) => emit({ event: 'synced', synced }))
provider.on('closed', ({ code, reason }) => emit({
  event: 'terminal', code, reason: String(reason || '')
}))

// --- what a listener reports --------------------------------------------------------------

let present = new Set()
if (config.report) {
  code.observe(() => {
    const now = new Set(code.toString().match(MARKER) || [])
    const seen = [...now].filter((m) => !present.has(m))
    const gone = [...present].filter((m) => !now.has(m))
    present = now
    if (seen.length) emit({ event: 'seen', markers: seen })
    if (gone.length) emit({ event: 'gone', markers: gone })
  })
}

// --- what a writer does -------------------------------------------------------------------

let typed = 0
let edits = 0
let timer = null
const mine = [] // this writer's markers not deleted yet

function boundaries (text) {
  const out = [0]
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '>') out.push(i + 1)
  }
  if (out[out.length - 1] !== text.length) out.push(text.length)
  return out
}

function edit () {
  edits++
  const text = code.toString()
  if (config.deleteEvery > 0 && edits % config.deleteEvery === 0 && mine.length > 4) {
    // One of its own markers, not among the newest few (they may still be in flight).
    const [marker] = mine.splice(Math.floor(Math.random() * (mine.length - 4)), 1)
    const index = text.indexOf(marker)
    if (index >= 0) {
      emit({ event: 'deleting', marker })
      code.delete(index, marker.length)
      return
    }
  }
  const marker = `<${config.name}:${typed}>`
  const spots = boundaries(text)
  code.insert(spots[Math.floor(Math.random() * spots.length)], marker)
  mine.push(marker)
  typed++
}

const commands = {
  type () {
    if (timer === null) timer = setInterval(edit, 1000 / config.rate)
  },
  stop () {
    if (timer !== null) clearInterval(timer)
    timer = null
  },
  get () {},
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
  answer.typed = typed
  answer.synced = provider.synced
  answer.status = status
  emit(answer)
})
// The test runner went away: do not linger.
input.on('close', () => {
  provider.destroy()
  process.exit(0)
})

emit({ event: 'ready', clientId: doc.clientID })
provider.connect()
