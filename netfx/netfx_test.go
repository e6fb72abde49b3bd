package netfx_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

func TestExchange(t *testing.T) {
	t.Parallel()
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, pr, handler.Config{Hooks: handler.Hooks{
				Message: func(p *handler.Peer, m handler.Message) { _ = p.SendText("echo: " + m.Text()) },
			}}, nil)
			st := s.open()
			if st.resp.ProtoMajor != pr.major {
				t.Fatalf("client got HTTP/%d, want %d", st.resp.ProtoMajor, pr.major)
			}
			for name, want := range map[string]string{
				"Content-Type":      "text/event-stream",
				"Cache-Control":     "no-cache",
				"X-Accel-Buffering": "no",
			} {
				if got := st.resp.Header.Get(name); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			if _, ok := st.resp.Header["Connection"]; ok && pr.major == 2 {
				t.Errorf("HTTP/2 response has Connection %q", st.resp.Header["Connection"])
			}
			for i, m := range []string{"hi", "two\nlines", "ünïcode 😀", ""} {
				if code, body := s.post(st.id, m); code != http.StatusOK || body != "" {
					t.Fatalf("POST %q: %d %q", m, code, body)
				}
				st.ev.Expect(t, "message", "echo: "+m, st.id+"."+string(rune('1'+i)))
			}
			s.checkProto(pr.major)
		})
	}
}

func TestStreamedUpload(t *testing.T) {
	t.Parallel()
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			t.Parallel()
			msgs := make(chan string, 16)
			s := newServer(t, pr, handler.Config{Hooks: handler.Hooks{
				Message: func(p *handler.Peer, m handler.Message) { msgs <- m.Text() },
			}}, nil)
			st := s.open()

			pr2, pw := io.Pipe()
			t.Cleanup(func() { _ = pw.CloseWithError(io.ErrClosedPipe) })
			req := s.request(s.ctx, http.MethodPost, pr2, "X-Crossws-Id", st.id, "Content-Type", "application/octet-stream")
			type result struct {
				status, major int
				body          string
				err           error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := s.client.Do(req)
				if err != nil {
					done <- result{err: err}
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				done <- result{resp.StatusCode, resp.ProtoMajor, string(b), err}
			}()
			for _, w := range []struct{ write, want string }{
				{"first", "first"},
				{"second", "second"},
				{"x\xF0\x9F", "x"},
				{"\x98\x80y", "😀y"},
			} {
				if _, err := io.WriteString(pw, w.write); err != nil {
					t.Fatal(err)
				}
				if got := ssetest.Recv(t, msgs, "message "+w.want); got != w.want {
					t.Fatalf("message %q, want %q", got, w.want)
				}
			}
			if err := pw.Close(); err != nil {
				t.Fatal(err)
			}
			r := ssetest.Recv(t, done, "upload response")
			if r.err != nil || r.status != http.StatusOK || r.body != "" || r.major != pr.major {
				t.Fatalf("upload response %+v, want 200 over HTTP/%d", r, pr.major)
			}
			s.checkProto(pr.major)
		})
	}
}

func TestClientDisconnectDetachesThenCloses(t *testing.T) {
	t.Parallel()
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			t.Parallel()
			closes := make(chan handler.CloseDetails, 1)
			s := newServer(t, pr, handler.Config{
				ReconnectGrace: 100 * time.Millisecond,
				Hooks: handler.Hooks{
					Close: func(p *handler.Peer, d handler.CloseDetails) { closes <- d },
				},
			}, nil)
			st := s.open()
			p := s.peer(st.id)
			if !p.Connected() {
				t.Fatal("peer not connected")
			}
			st.cancel()
			ssetest.Eventually(t, "the peer to detach", func() bool { return !p.Connected() })
			if p.Closed() {
				t.Fatal("peer closed at once despite the grace period")
			}
			if d := ssetest.Recv(t, closes, "Close hook"); d.Code != handler.CloseAbnormal {
				t.Fatalf("Close hook %+v, want 1006", d)
			}
			if _, ok := s.h.Peer(st.id); ok {
				t.Fatal("peer still open")
			}
		})
	}
}

// An idle stream must survive its per-write deadline: on HTTP/2 a deadline
// left set resets the stream when it fires, even with nothing to write.
func TestIdleStreamOutlivesWriteTimeout(t *testing.T) {
	t.Parallel()
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, pr, handler.Config{WriteTimeout: 50 * time.Millisecond, Heartbeat: -1}, nil)
			st := s.open()
			p := s.peer(st.id)
			_ = p.SendText("early")
			st.ev.Expect(t, "message", "early", st.id+".1")
			time.Sleep(300 * time.Millisecond) // idle for six write timeouts
			if st.ev.Ended() || !p.Connected() {
				t.Fatalf("idle stream ended (%v)", st.ev.Err())
			}
			_ = p.SendText("late")
			st.ev.Expect(t, "message", "late", st.id+".2")
		})
	}
}

// netfx documents that an http.Server ReadTimeout is fine: neither streams
// nor streamed uploads may end when it passes.
func TestServerReadTimeout(t *testing.T) {
	t.Parallel()
	const readTimeout = 100 * time.Millisecond
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			t.Parallel()
			msgs := make(chan string, 16)
			s := newServer(t, pr, handler.Config{Heartbeat: -1, Hooks: handler.Hooks{
				Message: func(p *handler.Peer, m handler.Message) { msgs <- m.Text() },
			}}, func(hs *http.Server) { hs.ReadTimeout = readTimeout })
			st := s.open()
			p := s.peer(st.id)

			pr2, pw := io.Pipe()
			t.Cleanup(func() { _ = pw.CloseWithError(io.ErrClosedPipe) })
			req := s.request(s.ctx, http.MethodPost, pr2, "X-Crossws-Id", st.id, "Content-Type", "application/octet-stream")
			done := make(chan int, 1)
			go func() {
				resp, err := s.client.Do(req)
				if err != nil {
					done <- -1
					return
				}
				resp.Body.Close()
				done <- resp.StatusCode
			}()
			_, _ = io.WriteString(pw, "a")
			if got := ssetest.Recv(t, msgs, "first upload message"); got != "a" {
				t.Fatalf("message %q", got)
			}

			time.Sleep(4 * readTimeout) // idle well past the read timeout
			if st.ev.Ended() || !p.Connected() {
				t.Fatalf("stream ended after the server's ReadTimeout (%v)", st.ev.Err())
			}
			_ = p.SendText("late")
			st.ev.Expect(t, "message", "late", st.id+".1")
			if _, err := io.WriteString(pw, "b"); err != nil {
				t.Fatalf("upload ended after the server's ReadTimeout: %v", err)
			}
			if got := ssetest.Recv(t, msgs, "second upload message"); got != "b" {
				t.Fatalf("message %q", got)
			}
			_ = pw.Close()
			if code := ssetest.Recv(t, done, "upload response"); code != http.StatusOK {
				t.Fatalf("upload response %d", code)
			}
		})
	}
}

// Connection is forbidden in HTTP/2 responses, including the short streams
// of a closed peer and of a shutting-down server.
func TestNoConnectionHeaderOverHTTP2(t *testing.T) {
	t.Parallel()
	for _, pr := range protos {
		if pr.major != 2 {
			continue
		}
		t.Run(pr.name, func(t *testing.T) {
			t.Parallel()
			closes := make(chan string, 1)
			s := newServer(t, pr, handler.Config{Hooks: handler.Hooks{
				Close: func(p *handler.Peer, d handler.CloseDetails) { closes <- p.ID() },
			}}, nil)
			check := func(what string, resp *http.Response) {
				t.Helper()
				if resp.ProtoMajor != 2 {
					t.Fatalf("%s: HTTP/%d", what, resp.ProtoMajor)
				}
				if v, ok := resp.Header["Connection"]; ok {
					t.Errorf("%s: Connection %q", what, v)
				}
				if v, ok := resp.Header["Keep-Alive"]; ok {
					t.Errorf("%s: Keep-Alive %q", what, v)
				}
			}
			get := func(what string, hdr ...string) *ssetest.Reader {
				t.Helper()
				resp, err := s.client.Do(s.request(s.ctx, http.MethodGet, nil, append([]string{"Accept", "text/event-stream"}, hdr...)...))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { resp.Body.Close() })
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d", what, resp.StatusCode)
				}
				check(what, resp)
				return ssetest.NewReader(resp.Body)
			}

			st := s.open()
			check("stream", st.resp)
			p := s.peer(st.id)
			st.cancel()
			ssetest.Eventually(t, "detach", func() bool { return !p.Connected() })
			_ = p.Close(4000, "done")
			if id := ssetest.Recv(t, closes, "Close hook"); id != st.id {
				t.Fatalf("Close hook for %s", id)
			}
			tomb := get("tombstone", "Last-Event-ID", st.id+".0")
			tomb.Expect(t, "close", `{"code":4000,"reason":"done"}`, st.id+".closed")
			tomb.End(t)

			if err := s.h.Shutdown(s.ctx); err != nil {
				t.Fatal(err)
			}
			get("retry later").End(t, ssetest.ItemRetry)
		})
	}
}

// unwrapper is middleware's usual ResponseWriter wrapper, which hides
// http.Flusher and friends but has Unwrap.
type unwrapper struct{ http.ResponseWriter }

func (u unwrapper) Unwrap() http.ResponseWriter { return u.ResponseWriter }

func TestThroughWrappingMiddleware(t *testing.T) {
	t.Parallel()
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, pr, handler.Config{Heartbeat: -1}, func(hs *http.Server) {
				inner := hs.Handler
				hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					inner.ServeHTTP(unwrapper{w}, r)
				})
			})
			// The stream must flush each event through the wrapper.
			st := s.open()
			p := s.peer(st.id)
			_ = p.SendText("through")
			st.ev.Expect(t, "message", "through", st.id+".1")
			if !p.Connected() {
				t.Fatal("peer detached")
			}
		})
	}
}

func TestManyConcurrentPeers(t *testing.T) {
	t.Parallel()
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			t.Parallel()
			const n = 8
			subscribed := make(chan error, n)
			s := newServer(t, pr, handler.Config{Hooks: handler.Hooks{
				Open:    func(p *handler.Peer) { subscribed <- p.Subscribe("all") },
				Message: func(p *handler.Peer, m handler.Message) { _ = p.Publish("all", p.ID()+":"+m.Text()) },
			}}, nil)
			streams := make([]*stream, n)
			for i := range streams {
				streams[i] = s.open()
				// The hello is written before Open runs: wait for the
				// subscription before anyone publishes.
				if err := ssetest.Recv(t, subscribed, "Open"); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(s.ctx, waitTimeout)
			defer cancel()
			errs := make(chan string, n)
			for _, st := range streams {
				go func() {
					req := s.request(ctx, http.MethodPost, strings.NewReader("hello"), "X-Crossws-Id", st.id)
					resp, err := s.client.Do(req)
					if err != nil {
						errs <- err.Error()
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						errs <- resp.Status
						return
					}
					errs <- ""
				}()
			}
			for range n {
				if e := ssetest.Recv(t, errs, "POST"); e != "" {
					t.Fatalf("POST: %s", e)
				}
			}
			// Every peer gets every other peer's publication once.
			for _, st := range streams {
				got := map[string]bool{}
				for range n - 1 {
					e := st.ev.Event(t)
					if got[e.Data] || !strings.HasSuffix(e.Data, ":hello") || strings.HasPrefix(e.Data, st.id) {
						t.Fatalf("peer %s got %q (already: %v)", st.id, e.Data, got)
					}
					got[e.Data] = true
				}
			}
			s.checkProto(pr.major)
		})
	}
}
