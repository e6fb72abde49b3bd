package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// The Centrifugo transports of the chat example with curl, the way their
// documentation shows them: curl -N on /connection/uni_sse (GET with
// cf_connect, POST with the ConnectRequest as body), and on
// /connection/sse with its commands POSTed to /emulation.

// requireCurl returns the path of curl.
func requireCurl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		missingTool(t, errors.New("curl not found on PATH: install it, e.g. `apt-get install curl`"))
	}
	return p
}

// curlProc is a running curl whose output the test reads as it comes.
type curlProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when curl exited
}

// startCurl runs curl with args; it is killed when the test ends.
func startCurl(t *testing.T, ctx context.Context, args ...string) *curlProc {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	c := &curlProc{cmd: exec.CommandContext(ctx, requireCurl(t), args...), out: new(syncBuffer), done: make(chan struct{})}
	stderr := new(syncBuffer)
	c.cmd.Stdout, c.cmd.Stderr = c.out, stderr
	if err := c.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		_ = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-c.done
		if t.Failed() && stderr.String() != "" {
			t.Logf("curl %q stderr: %s", args, stderr)
		}
	})
	return c
}

// waitFor waits until curl's output satisfies cond and returns it.
func (c *curlProc) waitFor(ctx context.Context, what string, cond func(out string) bool) (string, error) {
	err := waitUntil(ctx, func() bool { return cond(c.out.String()) })
	if err != nil {
		return c.out.String(), fmt.Errorf("curl: waiting for %s: %w; output %q", what, err, c.out.String())
	}
	return c.out.String(), nil
}

// curlOnce runs curl to the end and returns its output.
func curlOnce(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	c := startCurl(t, ctx, args...)
	select {
	case <-c.done:
	case <-ctx.Done():
		t.Fatalf("curl %q: %v", args, ctx.Err())
	}
	return c.out.String()
}

// splitResponse splits curl -i output into status line, headers and body.
func splitResponse(out string) (status string, header map[string]string, body string, ok bool) {
	head, body, ok := strings.Cut(out, "\r\n\r\n")
	if !ok {
		return "", nil, "", false
	}
	lines := strings.Split(head, "\r\n")
	header = map[string]string{}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		header[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	return lines[0], header, body, true
}

// sseData returns the data of each complete event of a Centrifugo stream
// body, which must start with the blank line "\r\n" and hold only
// "data: <JSON>\n\n" events.
func sseData(t *testing.T, body string) []string {
	t.Helper()
	rest, ok := strings.CutPrefix(body, "\r\n")
	if !ok {
		t.Fatalf("stream body %q: want it to start with \\r\\n", body)
	}
	var out []string
	for {
		ev, after, ok := strings.Cut(rest, "\n\n")
		if !ok {
			break
		}
		data, isData := strings.CutPrefix(ev, "data: ")
		if !isData || strings.Contains(data, "\n") || !json.Valid([]byte(data)) {
			t.Fatalf("stream event %q: want one data line of JSON", ev)
		}
		out = append(out, data)
		rest = after
	}
	return out
}

// centrifugoStreamHeaders are the stream headers Centrifugo sends.
var centrifugoStreamHeaders = map[string]string{
	"content-type":      "text/event-stream; charset=utf-8",
	"cache-control":     "private, no-cache, no-store, must-revalidate, max-age=0",
	"pragma":            "no-cache",
	"expire":            "0",
	"x-accel-buffering": "no",
}

// hasEvents reports whether out (curl -i output) has n complete events.
func hasEvents(n int) func(string) bool {
	return func(out string) bool {
		_, _, body, ok := splitResponse(out)
		return ok && strings.Count(body, "\n\n") >= n
	}
}

// TestCentrifugoCurl: curl on the chat example's Centrifugo endpoints.
// Unidirectional: GET with cf_connect and POST with the ConnectRequest as
// body each answer 200 with Centrifugo's headers, "\r\n", then the connect
// push and nothing else for 300 ms. Bidirectional: GET /connection/sse
// with a connect command gets the connect reply (pong true, session,
// node); a POST to /emulation with subscribe, rpc and publish commands
// gets 204, and their replies and the publication come on the stream; a
// pong ("{}") gets 204 and nothing on the stream. Refusals: 400 without
// cf_connect or with a bad one, 404 for an unknown session, 405 for GET
// /emulation.
func TestCentrifugoCurl(t *testing.T) {
	requireCurl(t)
	ctx := testContext(t)
	base := startChat(t, ctx)

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"GET", []string{uniURL(base, `{"name":"curl","version":"8"}`)}},
		{"POST", []string{"-X", "POST", "-H", "Content-Type: application/json", "--data-binary", `{"name":"curl","data":{"hi":1}}`, base + "/connection/uni_sse"}},
	} {
		c := startCurl(t, ctx, append([]string{"-sS", "-N", "-i"}, tc.args...)...)
		if _, err := c.waitFor(ctx, "the connect push", hasEvents(1)); err != nil {
			t.Fatalf("uni_sse %s: %v", tc.name, err)
		}
		time.Sleep(300 * time.Millisecond)
		status, header, body, _ := splitResponse(c.out.String())
		if status != "HTTP/1.1 200 OK" {
			t.Errorf("uni_sse %s: %q", tc.name, status)
		}
		for k, v := range centrifugoStreamHeaders {
			if header[k] != v {
				t.Errorf("uni_sse %s: header %s: %q, want %q", tc.name, k, header[k], v)
			}
		}
		datas := sseData(t, body)
		if len(datas) != 1 || strings.TrimRight(body, "\n") != "\r\ndata: "+datas[0] {
			t.Errorf("uni_sse %s: body %q: want \\r\\n and one event, the connect push", tc.name, body)
			continue
		}
		checkUniConnect(t, datas[0], 25)
	}

	// Bidirectional.
	connect := `{"connect":{"name":"curl"},"id":1}`
	stream := startCurl(t, ctx, "-sS", "-N", "-i", base+"/connection/sse?name=curly&cf_connect="+url.QueryEscape(connect))
	out, err := stream.waitFor(ctx, "the connect reply", hasEvents(1))
	if err != nil {
		t.Fatal(err)
	}
	status, header, body, _ := splitResponse(out)
	if status != "HTTP/1.1 200 OK" || header["content-type"] != centrifugoStreamHeaders["content-type"] {
		t.Fatalf("GET /connection/sse: %q %v", status, header)
	}
	var reply struct {
		ID      int `json:"id"`
		Connect *struct {
			Client, Version, Session, Node string
			Ping                           int
			Pong                           bool
		}
	}
	if err := json.Unmarshal([]byte(sseData(t, body)[0]), &reply); err != nil || reply.ID != 1 || reply.Connect == nil {
		t.Fatalf("first event %q: want the connect reply with id 1", body)
	}
	cr := reply.Connect
	if !uuidPattern.MatchString(cr.Client) || cr.Version != "ssebridge" || cr.Ping != 25 || !cr.Pong || !peerIDPattern.MatchString(cr.Session) || cr.Node == "" {
		t.Errorf("connect reply %+v: want a UUID client, version ssebridge, ping 25, pong, a session and a node", cr)
	}
	emulate := func(session, node string, cmds ...string) string {
		t.Helper()
		env, _ := json.Marshal(map[string]string{"session": session, "node": node, "data": strings.Join(cmds, "\n")})
		return curlOnce(t, ctx, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
			"-H", "Content-Type: application/json", "--data-binary", string(env), base+"/emulation")
	}
	cmds := []string{
		`{"subscribe":{"channel":"chat"},"id":2}`,
		`{"rpc":{"method":"echo","data":{"a":[1,"ü"]}},"id":3}`,
		`{"publish":{"channel":"chat","data":{"text":"from curl"}},"id":4}`,
		`{"history":{"channel":"nochan"},"id":5}`,
	}
	if code := emulate(cr.Session, cr.Node, cmds...); code != "204" {
		t.Fatalf("POST /emulation: %s, want 204", code)
	}
	// The four replies and the publication of "from curl".
	done := func(out string) bool {
		_, _, body, ok := splitResponse(out)
		return ok && strings.Contains(body, `"id":5`) && strings.Contains(body, `"text":"from curl"`)
	}
	if out, err = stream.waitFor(ctx, "the replies", done); err != nil {
		t.Fatal(err)
	}
	_, _, body, _ = splitResponse(out)
	var replies, chat []string
	var subOffset uint64
	var offsets []uint64
	for _, d := range sseData(t, body)[1:] {
		var r struct {
			ID        int             `json:"id"`
			Subscribe *uniSub         `json:"subscribe"`
			Push      json.RawMessage `json:"push"`
		}
		if err := json.Unmarshal([]byte(d), &r); err != nil {
			t.Fatalf("event %q: %v", d, err)
		}
		switch {
		case d == "{}": // a ping: not within the first 12.5 s
			t.Errorf("ping %q before 12.5 s", d)
		case r.Push != nil:
			var p struct {
				Channel string `json:"channel"`
				Pub     struct {
					Data   chatPub `json:"data"`
					Offset uint64  `json:"offset"`
				} `json:"pub"`
			}
			if json.Unmarshal(r.Push, &p) != nil || p.Channel != "chat" || p.Pub.Offset == 0 {
				t.Errorf("push %q: want a publication in chat with an offset", d)
			}
			offsets = append(offsets, p.Pub.Offset)
			if p.Pub.Data.Type == "message" {
				chat = append(chat, p.Pub.Data.From+": "+p.Pub.Data.Text)
			}
		case r.ID == 2:
			if s := r.Subscribe; s == nil || !s.Positioned || !s.Recoverable || s.Epoch == "" {
				t.Errorf("subscribe reply %q: want positioned and recoverable", d)
			} else {
				subOffset = s.Offset
			}
			replies = append(replies, "subscribe")
		default:
			replies = append(replies, d)
		}
	}
	wantReplies := []string{
		"subscribe",
		`{"id":3,"rpc":{"data":{"a":[1,"ü"]}}}`,
		`{"id":4,"publish":{}}`,
		`{"id":5,"error":{"code":102,"message":"unknown channel"}}`,
	}
	if !slices.Equal(replies, wantReplies) {
		t.Errorf("replies:\n\t%q\nwant\n\t%q", replies, wantReplies)
	}
	if want := []string{"curly: from curl"}; !slices.Equal(chat, want) {
		t.Errorf("chat messages on the stream %q, want %q", chat, want)
	}
	for i, o := range offsets {
		if o != subOffset+1+uint64(i) {
			t.Errorf("publication offsets %v after subscribing at %d: want consecutive", offsets, subOffset)
			break
		}
	}

	// A pong is answered 204, and nothing comes back.
	before := strings.Count(stream.out.String(), "\n\n")
	if code := emulate(cr.Session, cr.Node, "{}"); code != "204" {
		t.Errorf("pong: %s, want 204", code)
	}

	// Refusals.
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"GET /connection/sse without cf_connect", []string{base + "/connection/sse"}, "400"},
		{"GET /connection/sse with a bare ConnectRequest", []string{base + "/connection/sse?cf_connect=" + url.QueryEscape(`{"name":"x"}`)}, "400"},
		{"GET /connection/uni_sse with bad JSON", []string{uniURL(base, `{"name":`)}, "400"},
		{"GET /emulation", []string{base + "/emulation"}, "405"},
		{"POST /emulation, unknown session", []string{"-X", "POST", "--data-binary", `{"session":"` + randomPeerID() + `","node":"x","data":"{}"}`, base + "/emulation"}, "404"},
		{"POST /emulation, data not a string", []string{"-X", "POST", "--data-binary", `{"session":"` + cr.Session + `","node":"x","data":{}}`, base + "/emulation"}, "400"},
	} {
		if code := curlOnce(t, ctx, append([]string{"-sS", "-o", "/dev/null", "-w", "%{http_code}"}, tc.args...)...); code != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, code, tc.want)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if after := stream.out.String(); strings.Count(after, "\n\n") != before {
		t.Errorf("the stream got more after the pong and the refusals: %q", after[strings.LastIndex(after[:len(after)-2], "\n\n"):])
	}
	select {
	case <-stream.done:
		t.Errorf("the stream ended: %q", stream.out.String())
	default:
	}
}
