// Voice in the room: joining and leaving the call, muting, who is in it (muted, speaking),
// the audio itself peer to peer (one RTCPeerConnection per other person in the call, signaled
// over the events socket, with the ICE servers the server gave), and recording: the host's
// start and stop, an indicator for everyone, and, while a recording runs, a second peer
// connection that sends this person's microphone to the server's recorder.
import { h, replace, uid } from '../dom.js'

const RECORDER = 'recorder'
// Voice activity: the microphone's loudness (RMS of the waveform) over this counts as
// speech; speaking ends HANGOVER_MS after the last loud moment, so pauses between words do
// not flicker; the state is reported at most once per REPORT_MS (the server counts voice
// updates against the signals' rate).
const LOUD = 0.02
const SAMPLE_MS = 100
const HANGOVER_MS = 600
const REPORT_MS = 400
const RETRY_MS = 2000
// Errors of the recorder's signaling: shown here, not as refused chat.
const RECORDER_ERRORS = new Set(['not_recording', 'not_in_voice', 'no_audio', 'invalid_sdp', 'no_recorder_peer', 'invalid_signal'])

/** A short local time for an ISO date. */
function clockTime(iso) {
  const date = new Date(iso)
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
}

/** The audio bytes a peer connection received and sent, from its statistics; its ICE URLs. */
async function audioStats(pc) {
  const report = await pc.getStats()
  let bytesReceived = 0
  let bytesSent = 0
  report.forEach((s) => {
    if (s.kind !== 'audio') return
    if (s.type === 'inbound-rtp') bytesReceived += s.bytesReceived || 0
    if (s.type === 'outbound-rtp') bytesSent += s.bytesSent || 0
  })
  const iceUrls = pc.getConfiguration().iceServers.flatMap((server) => server.urls)
  return { connectionState: pc.connectionState, bytesReceived, bytesSent, iceUrls }
}

/**
 * Build the voice section and the recording indicator. Returns `{ node, indicator,
 * handle(message), error(message), disable(), destroy() }`: `handle` takes the events socket's
 * welcome, voice, signal and recording messages; `error` takes an `error` message and answers
 * whether it was voice's to show.
 *
 * @param {object} opts isHost, me, nameOf (userId → name), send (a message to the events
 *   socket; false when it is not open), ice (the join answer's `{ iceServers, ttlSeconds }`),
 *   refreshIce (a function answering the session's ICE servers again), recordingsHref
 */
export function voicePanel({ isHost, me, nameOf, send, ice, refreshIce, recordingsHref }) {
  let iceServers = (ice && ice.iceServers) || []
  let iceTimer = null
  const scheduleIce = (ttlSeconds) => {
    clearTimeout(iceTimer)
    if (!ttlSeconds) return
    // TURN credentials expire: fetch new ones well before, for the connections made later.
    iceTimer = setTimeout(async () => {
      try {
        const fresh = await refreshIce()
        iceServers = fresh.iceServers || []
        scheduleIce(fresh.ttlSeconds)
      } catch {
        scheduleIce(60)
      }
    }, Math.max(30, ttlSeconds * 0.8) * 1000)
  }
  scheduleIce(ice && ice.ttlSeconds)

  // --- the page -------------------------------------------------------------------------
  const headingId = uid('voice-h')
  const state = h('p', { class: 'voice-state', 'aria-live': 'polite' }, 'You are not in the call.')
  const joinButton = h('button', { type: 'button' }, 'Join voice')
  // A toggle: its name stays, `aria-pressed` says whether the microphone is muted.
  const muteButton = h('button', { type: 'button', class: 'secondary toggle', 'aria-pressed': 'false', hidden: true }, 'Mute')
  const list = h('ul', { class: 'voice-list', 'aria-label': 'In the call' })
  const empty = h('p', { class: 'meta' }, 'Nobody is in the call.')
  const problem = h('p', { class: 'error', role: 'alert', hidden: true })
  const audios = h('div', { class: 'voice-audio', hidden: true })
  const indicator = h('p', { class: 'recording-indicator', role: 'status', 'data-state': 'off' }, 'Not recording.')
  const recordingControls = h('div', { class: 'recording-controls' })
  let startRec = null
  let stopRec = null
  if (isHost) {
    startRec = h('button', { type: 'button', class: 'secondary' }, 'Start recording')
    stopRec = h('button', { type: 'button', class: 'danger', hidden: true }, 'Stop recording')
    startRec.addEventListener('click', () => send({ type: 'recording', action: 'start' }))
    stopRec.addEventListener('click', () => send({ type: 'recording', action: 'stop' }))
    recordingControls.append(startRec, stopRec)
  }
  recordingControls.append(h('a', { href: recordingsHref }, 'Recordings of this session'))
  const node = h(
    'section',
    { class: 'voice', 'aria-labelledby': headingId },
    h('h2', { id: headingId }, 'Voice'),
    state,
    h('div', { class: 'voice-controls', role: 'group', 'aria-label': 'Voice controls' }, joinButton, muteButton),
    problem,
    list,
    empty,
    recordingControls,
    audios,
  )

  // --- state ------------------------------------------------------------------------------
  const people = new Map() // userId → { inVoice, muted, speaking, connection }, as the server says
  const links = new Map() // userId → { pc, offerer, pending: [], audio }
  let local = null // { stream, track, context, timer } while in the call
  let joining = false
  let muted = false
  let speaking = false
  let recording = null // the `recording` event while one runs
  let recorder = null // { pc } while sending to the recorder
  let disabled = false
  let lastReport = 0
  let reportTimer = null
  // The events sockets this page has had (their `connection`), and whether this user is in
  // the call from another tab or device, which took it over.
  const connections = new Set()
  let elsewhere = false

  const showProblem = (text) => {
    problem.hidden = !text
    problem.textContent = text || ''
  }

  const paint = () => {
    const inCall = [...people.entries()].filter(([, s]) => s.inVoice)
    const sorted = inCall.sort(([a], [b]) => (nameOf(a) < nameOf(b) ? -1 : 1))
    replace(
      list,
      sorted.map(([userId, s]) =>
        h(
          'li',
          { class: s.speaking && !s.muted ? 'speaking' : null, 'data-user': userId },
          h('span', { class: 'mic', 'aria-hidden': 'true' }),
          h('span', { class: 'name' }, nameOf(userId)),
          userId === me.userId ? ' (you)' : '',
          s.muted ? h('span', { class: 'badge muted' }, 'muted') : null,
          s.speaking && !s.muted ? h('span', { class: 'badge talking' }, 'speaking') : null,
        ),
      ),
    )
    empty.hidden = sorted.length > 0
    const inside = local !== null
    joinButton.textContent = inside ? 'Leave voice' : elsewhere ? 'Join voice here' : 'Join voice'
    joinButton.className = inside ? 'secondary' : ''
    joinButton.disabled = disabled || joining
    muteButton.hidden = !inside
    muteButton.setAttribute('aria-pressed', muted ? 'true' : 'false')
    muteButton.disabled = disabled
    if (joining) state.textContent = 'Joining the call…'
    else if (!inside && elsewhere) state.textContent = 'You are in the call from another tab or device.'
    else if (!inside) state.textContent = 'You are not in the call.'
    else state.textContent = muted ? 'You are in the call, muted.' : 'You are in the call.'
    if (recording) {
      indicator.dataset.state = 'on'
      indicator.textContent = `Recording since ${clockTime(recording.at)}, started by ${nameOf(recording.by)}.`
    } else {
      indicator.dataset.state = 'off'
      indicator.textContent = 'Not recording.'
    }
    if (startRec) {
      startRec.hidden = Boolean(recording)
      stopRec.hidden = !recording
      startRec.disabled = disabled
      stopRec.disabled = disabled
    }
  }

  // --- my voice state, reported (throttled) --------------------------------------------------
  const mine = () => ({ type: 'voice', inVoice: local !== null, muted, speaking: speaking && !muted })
  // `takeOver`: this page joins (again), taking the call from another tab of this user if
  // one has it; without it the server takes a report of a page whose call moved as late.
  const report = (now = false, takeOver = false) => {
    clearTimeout(reportTimer)
    const wait = lastReport + REPORT_MS - Date.now()
    if (!now && wait > 0) {
      reportTimer = setTimeout(() => report(true), wait)
      return
    }
    lastReport = Date.now()
    send(takeOver ? { ...mine(), takeOver: true } : mine())
    const { type, ...s } = mine()
    people.set(me.userId, s)
    paint()
  }

  const detectSpeech = (stream) => {
    const Context = window.AudioContext || window.webkitAudioContext
    if (!Context) return null
    const context = new Context()
    // Made after the click on "Join voice" and the microphone prompt: allowed to run, but
    // it may start suspended (a prompt answered slowly, a background tab); ask again.
    if (context.state === 'suspended') context.resume().catch(() => {})
    const analyser = context.createAnalyser()
    // A window about as long as the sampling period (4096 samples: 85 ms at 48 kHz), so a
    // short sound between two readings is not missed.
    analyser.fftSize = 4096
    context.createMediaStreamSource(stream).connect(analyser)
    const samples = new Float32Array(analyser.fftSize)
    let lastLoud = 0
    const timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples)
      let sum = 0
      for (const v of samples) sum += v * v
      const now = Date.now()
      if (Math.sqrt(sum / samples.length) > LOUD) lastLoud = now
      const next = !muted && now - lastLoud < HANGOVER_MS
      if (next !== speaking) {
        speaking = next
        report()
      }
    }, SAMPLE_MS)
    return { context, timer }
  }

  // --- peer connections ---------------------------------------------------------------------
  const signal = (to, kind, data) => send({ type: 'signal', to, kind, data })

  const close = (userId) => {
    const link = links.get(userId)
    if (!link) return
    links.delete(userId)
    link.pc.close()
    link.audio.srcObject = null
    link.audio.remove()
  }

  const connect = (userId, offerer) => {
    close(userId)
    const pc = new RTCPeerConnection({ iceServers })
    const audio = h('audio', { autoplay: true, 'data-user': userId })
    audios.append(audio)
    const link = { pc, offerer, pending: [], audio }
    links.set(userId, link)
    pc.addTrack(local.track, local.stream)
    pc.addEventListener('icecandidate', (event) => {
      if (event.candidate && event.candidate.candidate) signal(userId, 'candidate', event.candidate.toJSON())
    })
    pc.addEventListener('track', (event) => {
      audio.srcObject = event.streams[0] || new MediaStream([event.track])
      audio.play().catch(() => {})
    })
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState !== 'failed' || links.get(userId) !== link) return
      close(userId)
      // The offerer tries again while both are still in the call.
      if (offerer) setTimeout(ensurePeers, RETRY_MS)
    })
    return link
  }

  const flush = async (link) => {
    for (const candidate of link.pending.splice(0)) {
      try {
        await link.pc.addIceCandidate(candidate)
      } catch {
        // A candidate for a description that was replaced: nothing to add it to.
      }
    }
  }

  const offerTo = async (userId) => {
    const link = connect(userId, true)
    const offer = await link.pc.createOffer()
    await link.pc.setLocalDescription(offer)
    signal(userId, 'offer', { type: 'offer', sdp: offer.sdp })
  }

  // The person with the smaller id offers, so two people never offer to each other at once.
  const ensurePeers = () => {
    if (!local) return
    for (const [userId, s] of people) {
      if (userId === me.userId || !s.inVoice || links.has(userId)) continue
      if (me.userId < userId) offerTo(userId).catch(() => close(userId))
    }
  }

  const onSignal = async (message) => {
    const from = message.from
    if (from === RECORDER) {
      if (recorder && message.kind === 'answer' && recorder.pc.signalingState === 'have-local-offer') {
        await recorder.pc.setRemoteDescription(message.data)
      }
      return
    }
    if (message.kind === 'offer') {
      if (!local) {
        if (!elsewhere) signal(from, 'bye', null) // the call's page answers, not this one
        return
      }
      const link = connect(from, false)
      await link.pc.setRemoteDescription(message.data)
      await flush(link)
      const answer = await link.pc.createAnswer()
      await link.pc.setLocalDescription(answer)
      signal(from, 'answer', { type: 'answer', sdp: answer.sdp })
      return
    }
    const link = links.get(from)
    if (!link) return
    if (message.kind === 'answer') {
      if (link.pc.signalingState !== 'have-local-offer') return
      await link.pc.setRemoteDescription(message.data)
      await flush(link)
    } else if (message.kind === 'candidate') {
      if (link.pc.remoteDescription) {
        await link.pc.addIceCandidate(message.data).catch(() => {})
      } else {
        link.pending.push(message.data)
      }
    } else if (message.kind === 'bye') {
      close(from)
    }
  }

  // --- the recorder peer ----------------------------------------------------------------------
  const stopRecorder = () => {
    if (!recorder) return
    recorder.pc.close()
    recorder = null
  }

  const startRecorder = async () => {
    if (recorder || !recording || !local) return
    const pc = new RTCPeerConnection({ iceServers })
    recorder = { pc }
    pc.addTrack(local.track, local.stream)
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState !== 'failed' || !recorder || recorder.pc !== pc) return
      stopRecorder()
      setTimeout(syncRecorder, RETRY_MS)
    })
    pc.addEventListener('icecandidate', (event) => {
      if (recorder && recorder.pc === pc && event.candidate && event.candidate.candidate) {
        signal(RECORDER, 'candidate', event.candidate.toJSON())
      }
    })
    const offer = await pc.createOffer()
    await pc.setLocalDescription(offer)
    if (recorder && recorder.pc === pc) signal(RECORDER, 'offer', { type: 'offer', sdp: offer.sdp })
  }
  const syncRecorder = () => {
    if (recording && local) startRecorder().catch(() => stopRecorder())
    else stopRecorder()
  }

  // --- joining and leaving ----------------------------------------------------------------------
  const join = async () => {
    if (local || joining || disabled) return
    showProblem(null)
    joining = true
    paint()
    let stream
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true }, video: false })
    } catch (error) {
      joining = false
      showProblem(`The microphone could not be used: ${error.message || error.name}`)
      paint()
      return
    }
    joining = false
    if (disabled) {
      stream.getTracks().forEach((t) => t.stop())
      return
    }
    const [track] = stream.getAudioTracks()
    track.enabled = !muted
    local = { stream, track, ...detectSpeech(stream) }
    elsewhere = false
    showProblem(null)
    report(true, true)
    ensurePeers()
    syncRecorder()
  }

  const leave = ({ tell = true } = {}) => {
    if (!local) return
    for (const userId of [...links.keys()]) close(userId)
    stopRecorder()
    clearInterval(local.timer)
    if (local.context) local.context.close().catch(() => {})
    local.stream.getTracks().forEach((t) => t.stop())
    local = null
    speaking = false
    if (tell) report(true)
    else people.delete(me.userId)
    paint()
  }

  // This user joined the call from another tab or device (`state`, its voice event): the call
  // is that page's now; this one hangs up without telling (that would end the other's call).
  const movedElsewhere = (state) => {
    elsewhere = true
    if (local) {
      leave({ tell: false })
      showProblem('You joined the call from another tab or device; this tab left it.')
    }
    people.set(me.userId, { inVoice: true, muted: state.muted, speaking: state.speaking })
    paint()
  }

  joinButton.addEventListener('click', () => (local ? leave() : join()))
  muteButton.addEventListener('click', () => {
    if (!local) return
    muted = !muted
    local.track.enabled = !muted
    if (muted) speaking = false
    report(true)
  })

  // A hook for tests and diagnostics: the audio bytes of the real peer connections.
  const hook = {
    async stats() {
      const peers = {}
      for (const [userId, link] of links) peers[userId] = await audioStats(link.pc)
      const analysis = local && local.context ? local.context.state : null
      return { inVoice: local !== null, elsewhere, muted, speaking, analysis, peers, recorder: recorder ? await audioStats(recorder.pc) : null }
    },
  }
  window.pocdojoVoice = hook

  paint()

  return {
    node,
    indicator,
    /** Take an events socket message (welcome, voice, signal, recording). */
    handle(message) {
      switch (message.type) {
        case 'welcome': {
          // A new socket: the server forgot this socket's call; tell it again, connect again.
          for (const userId of [...links.keys()]) close(userId)
          stopRecorder()
          people.clear()
          if (message.you && message.you.connection) connections.add(message.you.connection)
          for (const v of message.voice || []) {
            if (v.userId !== me.userId) people.set(v.userId, { inVoice: v.inVoice, muted: v.muted, speaking: v.speaking, connection: v.connection })
            else if (v.connection && !connections.has(v.connection)) movedElsewhere(v) // while this page was away
          }
          recording = message.recording && message.recording.state === 'started' ? message.recording : null
          if (local) report(true, true)
          paint()
          ensurePeers()
          syncRecorder()
          break
        }
        case 'voice':
          if (message.userId === me.userId) {
            if (message.inVoice && message.connection && !connections.has(message.connection)) {
              movedElsewhere(message) // joined from another tab or device
              break
            }
            // This page knows its own state best. But an old socket of this page's, closing
            // late after a reconnect, takes this user out of the call (and hangs up their
            // recorder peer): say again that they are in it.
            if (!message.inVoice && local) {
              report(true, true)
              stopRecorder()
              syncRecorder()
            } else if (!message.inVoice && elsewhere) {
              elsewhere = false // the other tab left the call
              people.delete(me.userId)
              paint()
            }
            break
          }
          if (message.inVoice) {
            const before = people.get(message.userId)
            // In the call from another tab or device now: that page connects afresh.
            if (before && before.connection && before.connection !== message.connection) close(message.userId)
            people.set(message.userId, { inVoice: true, muted: message.muted, speaking: message.speaking, connection: message.connection })
          } else {
            people.delete(message.userId)
            close(message.userId)
          }
          paint()
          ensurePeers()
          break
        case 'signal':
          onSignal(message).catch(() => {
            if (message.from !== RECORDER) close(message.from)
          })
          break
        case 'recording':
          recording = message.state === 'started' ? message : null
          paint()
          syncRecorder()
          break
        default:
          break
      }
    },
    /** Show an `error` message that is voice's; answer whether it was. */
    error(message) {
      if (message.code === 'voice_elsewhere') return true // a late report; the call moved
      if (!RECORDER_ERRORS.has(message.code) && !['recording_running'].includes(message.code)) return false
      if (message.code !== 'not_recording' || !recording) showProblem(`Recording: ${message.message}`)
      if (RECORDER_ERRORS.has(message.code)) stopRecorder()
      return true
    },
    /** A name became known (a participant's presence): repaint. */
    repaint: paint,
    /** The session is over: leave the call, controls off. */
    disable() {
      disabled = true
      leave({ tell: false })
      recording = null
      paint()
    },
    destroy() {
      disabled = true
      leave({ tell: false })
      clearTimeout(iceTimer)
      clearTimeout(reportTimer)
      if (window.pocdojoVoice === hook) delete window.pocdojoVoice
    },
  }
}
