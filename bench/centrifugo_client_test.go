package bench

// A minimal client of Centrifugo's bidirectional SSE transport, enough for
// the benchmarks: it opens GET /connection/sse?cf_connect=<commands>, reads
// the stream's "data:" lines (every reply or push is one event of one data
// line on both servers) and hands replies with an id to the caller, stamped
// with the time they were read; commands go out as POST /emulation.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cfReply is a reply the stream brought, with an id.
type cfReply struct {
	id   uint32
	line []byte    // the JSON reply (a copy)
	at   time.Time // when it was read
}

// cfStream is one open bidirectional connection.
type cfStream struct {
	base          string // http://host:port
	session, node string

	replies chan cfReply
	pushes  chan []byte // push events ({"push":…}), when asked for
	done    chan struct{}
	errMu   sync.Mutex
	err     error

	cancel context.CancelFunc
	body   io.ReadCloser
}

// dialCf opens a stream at base (http://host:port) with cf_connect cmds
// (the first a connect command with id 1) and returns once the connect
// reply arrived. With pushes, push events go to the stream's pushes
// channel (of that capacity); without, they are dropped.
func dialCf(base string, pushes int, cmds ...string) (*cfStream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	target := base + cfSSEPath + "?cf_connect=" + urlQueryEscape(strings.Join(cmds, "\n"))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s: %s", cfSSEPath, resp.Status)
	}
	s := &cfStream{
		base: base, replies: make(chan cfReply, 64), done: make(chan struct{}),
		cancel: cancel, body: resp.Body,
	}
	if pushes > 0 {
		s.pushes = make(chan []byte, pushes)
	}
	go s.read(bufio.NewReaderSize(resp.Body, 16<<10))
	select {
	case r := <-s.replies:
		var cr struct {
			ID      uint32 `json:"id"`
			Connect *struct {
				Session string `json:"session"`
				Node    string `json:"node"`
			} `json:"connect"`
		}
		if err := json.Unmarshal(r.line, &cr); err != nil || cr.ID != 1 || cr.Connect == nil || cr.Connect.Session == "" {
			s.close()
			return nil, fmt.Errorf("first reply %s, want a connect reply with a session (%v)", r.line, err)
		}
		s.session, s.node = cr.Connect.Session, cr.Connect.Node
		return s, nil
	case <-s.done:
		s.close()
		return nil, fmt.Errorf("stream ended before the connect reply: %w", s.failure())
	case <-time.After(10 * time.Second):
		s.close()
		return nil, errors.New("no connect reply within 10 s")
	}
}

var (
	replyPrefix = []byte(`{"id":`)
	pushPrefix  = []byte(`{"push":`)
	errorField  = []byte(`"error":`)
)

// read reads the stream until it ends: replies with an id go to replies,
// pushes to pushes if wanted; pings ({}) and empty lines are skipped.
func (s *cfStream) read(br *bufio.Reader) {
	defer close(s.done)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			s.fail(err)
			return
		}
		at := time.Now()
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue // the first "\r\n", the blank line ending an event
		}
		data = bytes.TrimRight(data, "\r\n")
		switch {
		case bytes.HasPrefix(data, replyPrefix):
			end := bytes.IndexAny(data[len(replyPrefix):], ",}")
			if end < 0 {
				s.fail(fmt.Errorf("bad reply %s", data))
				return
			}
			id, err := strconv.ParseUint(string(data[len(replyPrefix):len(replyPrefix)+end]), 10, 32)
			if err != nil {
				s.fail(fmt.Errorf("bad reply %s", data))
				return
			}
			s.replies <- cfReply{id: uint32(id), line: bytes.Clone(data), at: at}
		case bytes.HasPrefix(data, pushPrefix):
			if s.pushes != nil {
				s.pushes <- bytes.Clone(data)
			}
		}
	}
}

func (s *cfStream) fail(err error) {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.errMu.Unlock()
}

func (s *cfStream) failure() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// reply waits for the next reply; it must have id and no error.
func (s *cfStream) reply(id uint32, timeout time.Duration) (cfReply, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-s.replies:
		if r.id != id || bytes.Contains(r.line, errorField) {
			return r, fmt.Errorf("reply %s, want a reply to command %d", r.line, id)
		}
		return r, nil
	case <-s.done:
		return cfReply{}, fmt.Errorf("stream ended waiting for reply %d: %w", id, s.failure())
	case <-t.C:
		return cfReply{}, fmt.Errorf("no reply %d within %v", id, timeout)
	}
}

// emulationBody returns the body of a POST /emulation carrying cmd for the
// stream's session.
func (s *cfStream) emulationBody(cmd string) []byte {
	data, _ := json.Marshal(cmd)
	b := make([]byte, 0, 128+len(data))
	b = append(b, `{"session":"`...)
	b = append(b, s.session...)
	b = append(b, `","node":"`...)
	b = append(b, s.node...)
	b = append(b, `","data":`...)
	b = append(b, data...)
	return append(b, '}')
}

// post sends body to base's /emulation with client; it must be answered
// 204.
func postEmulation(client *http.Client, base string, body []byte) error {
	resp, err := client.Post(base+cfEmulationPath, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST %s: %s", cfEmulationPath, resp.Status)
	}
	return nil
}

// close ends the stream and waits for its reader.
func (s *cfStream) close() {
	s.cancel()
	s.body.Close()
	for {
		select {
		case <-s.done:
			return
		case <-s.replies: // unblock the reader
		case <-s.pushes:
		}
	}
}
