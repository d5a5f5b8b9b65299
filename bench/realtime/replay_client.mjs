// Stock Yjs clients for bench/realtime/replay.py: the automerge-paper trace through a server.
//
//   node replay_client.mjs local <trace.json.gz>
//       apply the trace to a local Y.Doc, one transaction per trace transaction; prints
//       {"event": "local", "seconds": s, "ok": bool, "length": n}
//   node replay_client.mjs listen '<config>'
//   node replay_client.mjs write '<config>'
//       config: {"serverUrl", "room", "token"?, "trace"}; a stock y-websocket WebsocketProvider
//       (ws polyfill, no BroadcastChannel) on Y.Text 'code'.
//
// Events (stdout, one JSON object a line; times "t" are process.hrtime.bigint() nanoseconds,
// CLOCK_MONOTONIC, comparable with Python's time.monotonic_ns()):
//   {"event": "ready", "t"}                      synced with the server
//   listener: {"event": "done", "t", "ok": true, "updates": n}
//                                               its text equals the trace's endContent
//   writer, after "go" on stdin:
//     {"event": "start", "t"}
//     {"event": "applied", "t", "ok", "updates", "updateBytes", "stateBytes"}
//                                               every transaction applied (and handed to ws)
//     {"event": "flushed", "t"}                  the socket's send buffer is empty
//   {"event": "closed", "code", "reason"} / {"event": "error", "message"}
// stdin "exit" (or its end) stops the client.
//
// An ES module on purpose: `require('yjs')` loads the CommonJS build, whose every lib0 call
// goes through a namespace getter; it replays this trace about 3-4 times slower than the ES
// build that `import` loads (and that the JS servers use).

import fs from 'node:fs'
import readline from 'node:readline'
import zlib from 'node:zlib'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const YIELD_EVERY = 1000 // transactions between two turns of the event loop (writer)

function emit (event) {
  process.stdout.write(JSON.stringify(event) + '\n')
}

function now () {
  return process.hrtime.bigint().toString()
}

function loadTrace (path) {
  return JSON.parse(zlib.gunzipSync(fs.readFileSync(path)).toString('utf8'))
}

function applyTxn (doc, text, txn) {
  doc.transact(() => {
    for (const [pos, del, ins] of txn.patches) {
      if (del > 0) text.delete(pos, del)
      if (ins) text.insert(pos, ins)
    }
  })
}

process.on('uncaughtException', (err) => {
  emit({ event: 'error', message: String(err && err.stack ? err.stack : err) })
  process.exit(1)
})

const mode = process.argv[2]

if (mode === 'local') {
  const trace = loadTrace(process.argv[3])
  const doc = new Y.Doc()
  const text = doc.getText('code')
  if (trace.startContent) text.insert(0, trace.startContent)
  const t0 = process.hrtime.bigint()
  for (const txn of trace.txns) applyTxn(doc, text, txn)
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const out = text.toString()
  emit({ event: 'local', seconds, ok: out === trace.endContent, length: out.length })
  process.exit(0)
} else if (mode === 'listen' || mode === 'write') {
  const config = JSON.parse(process.argv[3])
  const trace = loadTrace(config.trace)
  const end = trace.endContent
  const doc = new Y.Doc()
  const text = doc.getText('code')
  const provider = new WebsocketProvider(config.serverUrl, config.room, doc, {
    WebSocketPolyfill: WebSocket,
    disableBc: true,
    params: config.token ? { token: config.token } : {},
    maxBackoffTime: 1000
  })
  provider.on('connection-close', (event) => emit({
    event: 'closed', code: event ? event.code : null, reason: event ? String(event.reason || '') : ''
  }))
  let ready = false
  provider.on('sync', (synced) => {
    if (synced && !ready) {
      ready = true
      emit({ event: 'ready', t: now(), length: text.length })
    }
  })

  if (mode === 'listen') {
    let updates = 0
    let done = false
    doc.on('update', () => { updates++ })
    text.observe(() => {
      if (!done && text.length === end.length && text.toString() === end) {
        done = true
        emit({ event: 'done', t: now(), ok: true, updates })
      }
    })
  }

  const write = async () => {
    let updates = 0
    let updateBytes = 0
    doc.on('update', (update, origin) => {
      if (origin !== provider) {
        updates++
        updateBytes += update.length
      }
    })
    emit({ event: 'start', t: now() })
    const txns = trace.txns
    for (let i = 0; i < txns.length; i++) {
      applyTxn(doc, text, txns[i])
      if (i % YIELD_EVERY === YIELD_EVERY - 1) await new Promise(setImmediate)
    }
    emit({
      event: 'applied',
      t: now(),
      ok: text.toString() === end,
      updates,
      updateBytes,
      stateBytes: Y.encodeStateAsUpdate(doc).length
    })
    const ws = provider.ws
    while (ws && ws.readyState === WebSocket.OPEN && ws.bufferedAmount > 0) {
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    emit({ event: 'flushed', t: now() })
  }

  const lines = readline.createInterface({ input: process.stdin })
  lines.on('line', (line) => {
    const command = line.trim()
    if (command === 'go' && mode === 'write') {
      write().catch((err) => emit({ event: 'error', message: String(err && err.stack) }))
    } else if (command === 'exit') {
      provider.destroy()
      process.exit(0)
    }
  })
  lines.on('close', () => {
    provider.destroy()
    process.exit(0)
  })
} else {
  console.error('usage: node replay_client.mjs local <trace> | listen <config> | write <config>')
  process.exit(2)
}
