// Hocuspocus 3.4 for bench/realtime, in memory, on 127.0.0.1 only.
//
//   PORT=1235 node hocuspocus_server.mjs
//
// Server.listen() in 3.4 ignores the address and binds every interface, so the server is
// created without listening and its HTTP server is bound to the loopback address here. No
// extension and no auth hook: documents live in memory, any token is accepted.
import { Server } from '@hocuspocus/server'

const port = parseInt(process.env.PORT || '1235', 10)
const server = new Server({ port, address: '127.0.0.1', quiet: true, stopOnSignals: false })

server.httpServer.listen({ port, host: '127.0.0.1' }, () => {
  console.log(`hocuspocus listening on 127.0.0.1:${port}`)
})

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  const timer = setTimeout(() => process.exit(0), 5000)
  timer.unref()
  try {
    await server.destroy()
  } finally {
    process.exit(0)
  }
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
