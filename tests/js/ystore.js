'use strict'
// Reads a dojo document as stored in PostgreSQL with stock Yjs, as any Yjs program would:
// a fresh Y.Doc, the snapshot applied first, then each logged update in order.
// Driven over stdin/stdout, one JSON object a line (tests/ystore.py):
//
//   in:  {"id": n, "snapshot": base64 | null, "updates": [base64, …]}
//   out: {"id": n, "ok": true, "text": s, "pendingStructs": {clientId: clock} | null,
//         "pendingDs": bool}
//     or {"id": n, "ok": false, "error": s}
//
// "pendingStructs" names, per client, the first clock the doc is waiting for: updates whose
// dependencies are not stored are held back by Yjs and do not show in the text.

const readline = require('readline')
const Y = require('yjs')

function read ({ snapshot, updates }) {
  const doc = new Y.Doc()
  const text = doc.getText('code')
  if (snapshot) Y.applyUpdate(doc, Buffer.from(snapshot, 'base64'))
  for (const update of updates) Y.applyUpdate(doc, Buffer.from(update, 'base64'))
  const pending = doc.store.pendingStructs
  const answer = {
    text: text.toString(),
    pendingStructs: pending === null ? null : Object.fromEntries(pending.missing),
    pendingDs: doc.store.pendingDs !== null
  }
  doc.destroy()
  return answer
}

const input = readline.createInterface({ input: process.stdin })
input.on('line', (line) => {
  if (!line.trim()) return
  let id = null
  try {
    const message = JSON.parse(line)
    id = message.id
    process.stdout.write(JSON.stringify({ id, ok: true, ...read(message) }) + '\n')
  } catch (err) {
    process.stdout.write(JSON.stringify({ id, ok: false, error: String(err && err.stack) }) + '\n')
  }
})
input.on('close', () => process.exit(0))
