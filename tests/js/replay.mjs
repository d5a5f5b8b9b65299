// A stock Yjs client (yjs + y-websocket's WebsocketProvider) replaying or awaiting an editing
// trace, for tests/realtime/test_trace_replay.py.
//
//   node replay.mjs write  '{"serverUrl": "ws://…/v1/dojos/sessions/<id>", "room": "doc",
//                            "token": "…", "trace": "<path of a .json.gz trace>"}'
//   node replay.mjs listen '<the same>'
//
// The writer applies the trace to Y.Text 'code' after "go" on stdin: one transaction per trace
// transaction (so one update message each), as fast as it can, yielding to the event loop every
// 1,000 so its socket can send. A listener waits until its text is the trace's endContent.
//
// Events (stdout, one JSON object a line):
//   {"event": "ready"}                                 first synced with the server
//   {"event": "applied", "ok": bool, "updates": n}     writer: every transaction applied
//   {"event": "flushed"}                               writer: its socket's send buffer is empty
//   {"event": "done", "updates": n}                    listener: text === endContent
//   {"event": "closed", "code": n | null, "reason": s, "local": bool}   a socket closed
//   {"event": "terminal", "code": n, "reason": s}      the provider gave up reconnecting
//   {"event": "error", "message": s}
// stdin "exit" (or its end) stops the client.
//
// An ES module on purpose (as bench/realtime/replay_client.mjs): `require('yjs')` loads the
// CommonJS build, whose every lib0 call goes through a namespace getter; it replays this trace
// 3-4 times slower than the ES build that `import` loads.

import fs from 'node:fs'
import readline from 'node:readline'
import zlib from 'node:zlib'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const YIELD_EVERY = 1000

function emit (event) {
  process.stdout.write(JSON.stringify(event) + '\n')
}

process.on('uncaughtException', (err) => {
  emit({ event: 'error', message: String(err && err.stack ? err.stack : err) })
  process.exit(1)
})

const mode = process.argv[2]
const config = JSON.parse(process.argv[3])
const trace = JSON.parse(zlib.gunzipSync(fs.readFileSync(config.trace)).toString('utf8'))
const end = trace.endContent

const doc = new Y.Doc()
const text = doc.getText('code')
const provider = new WebsocketProvider(config.serverUrl, config.room, doc, {
  WebSocketPolyfill: WebSocket,
  disableBc: true,
  params: { token: config.token }
})
provider.on('connection-close', (event) => emit({
  event: 'closed',
  code: event ? event.code : null,
  reason: event ? String(event.reason || '') : '',
  local: !event
}))
provider.on('closed', ({ code, reason }) => emit({
  event: 'terminal', code, reason: String(reason || '')
}))
let ready = false
provider.on('sync', (synced) => {
  if (synced && !ready) {
    ready = true
    emit({ event: 'ready' })
  }
})

let updates = 0
doc.on('update', () => { updates++ })

if (mode === 'listen') {
  let done = false
  text.observe(() => {
    if (!done && text.length === end.length && text.toString() === end) {
      done = true
      emit({ event: 'done', updates })
    }
  })
}

async function write () {
  const txns = trace.txns
  for (let i = 0; i < txns.length; i++) {
    doc.transact(() => {
      // Positions count code points; the trace is ASCII, where they are UTF-16 units too.
      for (const [pos, del, ins] of txns[i].patches) {
        if (del > 0) text.delete(pos, del)
        if (ins) text.insert(pos, ins)
      }
    })
    if (i % YIELD_EVERY === YIELD_EVERY - 1) await new Promise(setImmediate)
  }
  emit({ event: 'applied', ok: text.toString() === end, updates })
  while (provider.ws && provider.ws.readyState === WebSocket.OPEN && provider.ws.bufferedAmount) {
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  emit({ event: 'flushed' })
}

function stop () {
  provider.destroy()
  process.exit(0)
}

const lines = readline.createInterface({ input: process.stdin })
lines.on('line', (line) => {
  const command = line.trim()
  if (command === 'go' && mode === 'write') {
    write().catch((err) => emit({ event: 'error', message: String(err && err.stack) }))
  } else if (command === 'exit') {
    stop()
  }
})
lines.on('close', stop)
