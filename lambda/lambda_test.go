package lambda

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// event returns a function URL event as Lambda builds it (payload 2.0).
func event(method, rawPath, query string, headers map[string]string, body string, b64 bool) *events.LambdaFunctionURLRequest {
	h := map[string]string{"host": "abc.lambda-url.eu-west-1.on.aws", "user-agent": "test"}
	for k, v := range headers {
		h[k] = v
	}
	return &events.LambdaFunctionURLRequest{
		Version:         "2.0",
		RawPath:         rawPath,
		RawQueryString:  query,
		Headers:         h,
		Body:            body,
		IsBase64Encoded: b64,
		RequestContext: events.LambdaFunctionURLRequestContext{
			DomainName: "abc.lambda-url.eu-west-1.on.aws",
			HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{
				Method: method, Path: rawPath, Protocol: "HTTP/1.1", SourceIP: "203.0.113.7", UserAgent: "test",
			},
		},
	}
}

func newHandler(t *testing.T, hooks handler.Hooks) *handler.Handler {
	t.Helper()
	h, err := handler.New(handler.Config{Hooks: hooks, Logger: slog.New(slog.DiscardHandler), WriteTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
	})
	return h
}

// invocation is a context like the runtime's: its deadline is the
// invocation's.
func invocation(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// open invokes f with a stream request and returns the response and a
// reader of its body.
func open(t *testing.T, f Function, ctx context.Context, hdr map[string]string) (*events.LambdaFunctionURLStreamingResponse, *ssetest.Reader) {
	t.Helper()
	h := map[string]string{"accept": "text/event-stream"}
	for k, v := range hdr {
		h[k] = v
	}
	resp, err := f(ctx, event("GET", "/sse", "", h, "", false))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Headers["Content-Type"] != "text/event-stream" {
		t.Fatalf("stream response %d %v", resp.StatusCode, resp.Headers)
	}
	t.Cleanup(func() { _ = resp.Close() })
	return resp, ssetest.NewReader(resp.Body)
}

func TestRequestMapping(t *testing.T) {
	type seen struct {
		method, path, query, host, remote, id, cookie, upper string
		body                                                 string
	}
	got := make(chan seen, 1)
	h := newHandler(t, handler.Hooks{
		Upgrade: func(u *handler.Upgrade) error {
			if u.Kind != handler.UpgradeMessage {
				return nil
			}
			r := u.Request
			c, _ := r.Cookie("session")
			cookies := 0
			for k := range r.Headers() {
				if strings.EqualFold(k, "cookie") {
					cookies++
				}
			}
			got <- seen{r.Method(), r.Path(), r.RawQuery(), r.Host(), r.RemoteAddr(), r.Header("X-Crossws-Id"), c, r.Header("X-UPPER"), strconv.Itoa(cookies)}
			return nil
		},
	})
	f := New(h, Config{})
	_, st := open(t, f, invocation(t, time.Minute), nil)
	id := st.Event(t).Data

	ev := event("POST", "/s%20se", "a=1&b=%20", map[string]string{"x-crossws-id": id, "x-upper": "v1,v2", "cookie": "theme=dark; session=s3cr3t"},
		base64.StdEncoding.EncodeToString([]byte("hello \xff")), true)
	ev.Cookies = []string{"theme=dark", "session=s3cr3t"}
	resp, err := f(invocation(t, time.Minute), ev)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST: %d %s", resp.StatusCode, b)
	}
	s := ssetest.Recv(t, got, "the Upgrade hook")
	want := seen{"POST", "/s se", "a=1&b=%20", "abc.lambda-url.eu-west-1.on.aws", "203.0.113.7", id, "s3cr3t", "v1,v2", "1"}
	if s != want {
		t.Fatalf("request seen as %+v, want %+v", s, want)
	}
}

func TestPostBodyDecoding(t *testing.T) {
	msgs := make(chan []byte, 4)
	h := newHandler(t, handler.Hooks{Message: func(p *handler.Peer, m handler.Message) { msgs <- bytes.Clone(m.Bytes()) }})
	f := New(h, Config{})
	_, st := open(t, f, invocation(t, time.Minute), nil)
	id := st.Event(t).Data
	post := func(body string, b64 bool) *events.LambdaFunctionURLStreamingResponse {
		resp, err := f(invocation(t, time.Minute), event("POST", "/sse", "", map[string]string{"x-crossws-id": id}, body, b64))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := post("plain ü", false); r.StatusCode != 200 {
		t.Fatalf("plain: %d", r.StatusCode)
	}
	if got := ssetest.Recv(t, msgs, "plain"); string(got) != "plain ü" {
		t.Fatalf("got %q", got)
	}
	if r := post(base64.StdEncoding.EncodeToString([]byte{0, 1, 0xff}), true); r.StatusCode != 200 {
		t.Fatalf("base64: %d", r.StatusCode)
	}
	if got := ssetest.Recv(t, msgs, "base64"); !bytes.Equal(got, []byte{0, 1, 0xff}) {
		t.Fatalf("got %q", got)
	}
	r := post("not base64!!", true)
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "base64") {
		t.Fatalf("bad base64: %d %q", r.StatusCode, b)
	}
	r = post(strings.Repeat("x", 70<<10), false)
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("too large: %d", r.StatusCode)
	}
	select {
	case m := <-msgs:
		t.Fatalf("a refused POST delivered %q", m)
	default:
	}
}

func TestNotAFunctionURLEvent(t *testing.T) {
	f := New(newHandler(t, handler.Hooks{}), Config{})
	if _, err := f(context.Background(), &events.LambdaFunctionURLRequest{}); !errors.Is(err, errNotURLEvent) {
		t.Fatalf("empty event: %v", err)
	}
	if _, err := f(context.Background(), nil); !errors.Is(err, errNotURLEvent) {
		t.Fatalf("nil event: %v", err)
	}
}

// TestStreamEndsBeforeDeadline: the stream ends Margin before the
// invocation's deadline, without a close event, and the client resumes
// its peer in the next invocation.
func TestStreamEndsBeforeDeadline(t *testing.T) {
	var mu sync.Mutex
	opens, resumes, closes := 0, 0, 0
	h := newHandler(t, handler.Hooks{
		Open:   func(p *handler.Peer) { mu.Lock(); opens++; mu.Unlock() },
		Resume: func(p *handler.Peer) { mu.Lock(); resumes++; mu.Unlock() },
		Close:  func(p *handler.Peer, d handler.CloseDetails) { mu.Lock(); closes++; mu.Unlock() },
	})
	f := New(h, Config{Margin: 300 * time.Millisecond})
	ctx := invocation(t, 900*time.Millisecond)
	_, st := open(t, f, ctx, nil)
	hello := st.Event(t)
	st.End(t, ssetest.ItemRetry) // comments and nothing else, then EOF
	if ctx.Err() != nil {
		t.Fatal("the stream outlived the invocation's deadline")
	}
	p, ok := h.Peer(hello.Data)
	if !ok || p.Connected() {
		t.Fatalf("after the stream ended the peer is open=%v connected=%v, want open and waiting", ok, ok && p.Connected())
	}
	_, again := open(t, f, invocation(t, time.Minute), map[string]string{"last-event-id": hello.ID})
	if h2 := again.Event(t); h2.Data != hello.Data {
		t.Fatalf("resumed as %s, want %s", h2.Data, hello.Data)
	}
	mu.Lock()
	defer mu.Unlock()
	if opens != 1 || resumes != 1 || closes != 0 {
		t.Fatalf("hooks: open %d resume %d close %d, want 1 1 0", opens, resumes, closes)
	}
}

// TestUnreadStreamTimesOut: a stream whose body nobody reads (the client,
// and so the runtime, stopped taking it) ends after the write timeout.
func TestUnreadStreamTimesOut(t *testing.T) {
	h := newHandler(t, handler.Hooks{})
	f := New(h, Config{})
	resp, err := f(invocation(t, time.Minute), event("GET", "/sse", "", map[string]string{"accept": "text/event-stream"}, "", false))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	// Nobody reads: the hello write blocks, then times out.
	ssetest.Eventually(t, "the peer to lose its stream", func() bool {
		for p := range h.Peers() {
			return !p.Connected()
		}
		return false
	})
	// The runtime then reads the end of the body, not an error: a client
	// that stopped reading is no function failure.
	if b, err := io.ReadAll(resp.Body); err != nil || len(b) != 0 {
		t.Fatalf("reading after the timeout: %q, %v; want the end of the body", b, err)
	}
}

func TestStreamEnd(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		left, margin, want time.Duration
	}{
		{15 * time.Minute, 5 * time.Second, 15*time.Minute - 5*time.Second},
		{10 * time.Second, 5 * time.Second, 5 * time.Second},
		{6 * time.Second, 5 * time.Second, 3 * time.Second},
		{0, 5 * time.Second, 0},
	} {
		if got := streamEnd(now, now.Add(tc.left), tc.margin).Sub(now); got != tc.want {
			t.Errorf("left %v margin %v: ends after %v, want %v", tc.left, tc.margin, got, tc.want)
		}
	}
}

func TestWarnsWithMemoryBackend(t *testing.T) {
	var buf bytes.Buffer
	warnLocal(newHandler(t, handler.Hooks{}), slog.New(slog.NewTextHandler(&buf, nil)))
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "backends/redis") {
		t.Fatalf("no warning: %q", buf.String())
	}
}

func TestOtherPaths(t *testing.T) {
	h := newHandler(t, handler.Hooks{})
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<p>page at "+r.URL.Path+"</p>")
	})
	f := New(h, Config{Path: "/sse", Other: page})
	resp, err := f(invocation(t, time.Minute), event("GET", "/", "", nil, "", false))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "<p>page at /</p>" || resp.Headers["Content-Type"] != "text/html" {
		t.Fatalf("page: %d %v %q", resp.StatusCode, resp.Headers, b)
	}
	_, st := open(t, f, invocation(t, time.Minute), nil) // /sse is the endpoint
	if hello := st.Event(t); hello.Type != "crossws-id" {
		t.Fatalf("endpoint: %+v", hello)
	}
	resp, err = New(h, Config{Path: "/sse"})(invocation(t, time.Minute), event("GET", "/x", "", nil, "", false))
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("no Other: %v %v", resp, err)
	}
}
