"""The dojo rooms: the y-websocket document socket and the events socket (chat, presence,
WebRTC signaling), awareness, persistence of live documents, and cross-node fan-out."""
