package runtimetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"
)

// Flood sizes for testSlowPeer: 48 MB, far more than what can pile up
// between a client that stopped reading and the application (the peer's
// queue, AppQueueSize; a 4 MiB socket send buffer; the receive buffer the
// raw client pinned; a runtime's own buffers and sockets), so that the
// server must notice the client is not reading. The queue is large enough
// for a reading client that falls behind for a while (256 publications).
const (
	floodCount = 3000
	floodSize  = 16 << 10
)

// testSlowPeer: a client stops reading while a flood of publications goes
// out. Another subscriber gets every one of them, in order, and the server
// ends the slow client's stream (queue overflow or write timeout) instead
// of waiting for it.
func testSlowPeer(t *testing.T, rt Runtime) {
	d := deploy(t, rt, 1, false)
	c := newClient(t)
	slow := openRaw(t, d.urls[0])
	fast := c.open(d.urls[0])
	pub := c.open(d.urls[0])

	c.send(d.urls[0], pub.id, fmt.Sprintf("flood %d %d", floodCount, floodSize))
	for i := range floodCount {
		it := fast.ev.Event(t)
		prefix := fmt.Sprintf("flood %d ", i)
		if it.Type != "message" || len(it.Data) != floodSize || it.Data[:len(prefix)] != prefix {
			t.Fatalf("fast subscriber: event %d is %q %q, want %q…", i, it.Type, short(it.Data), prefix)
		}
	}
	pub.expect(t, "flooded")

	// Now read the slow client's stream: it must end, having missed part of
	// the flood.
	_ = slow.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := io.Copy(io.Discard, slow.resp.Body)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("the slow client's stream did not end (%d bytes read)", n)
	case n >= floodCount*floodSize:
		t.Fatalf("the slow client read %d bytes, the whole flood: the test did not block the server", n)
	}
}

// testCrossInstance: two instances sharing Redis; a stream on one gets, in
// order, the messages POSTed to the other and publications made there.
func testCrossInstance(t *testing.T, rt Runtime) {
	d := deploy(t, rt, 2, true)
	a, b := d.urls[0], d.urls[1]
	c := newClient(t)
	st := c.open(a)
	other := c.open(b)
	for i := range 30 {
		c.send(b, st.id, fmt.Sprintf("echo %d", i))
	}
	for i := range 30 {
		st.expect(t, fmt.Sprintf("echo %d", i))
	}
	c.send(b, other.id, "pub all across")
	st.expect(t, "across")
	other.expect(t, "published all")
	c.send(a, st.id, "pub all back")
	other.expect(t, "back")
	st.expect(t, "published all")
	// A large message crosses too.
	big := string(bytes.Repeat([]byte("€"), (AppMaxMessageSize-8)/3))
	c.send(b, st.id, "echo "+big)
	st.expect(t, "echo "+big)
}
