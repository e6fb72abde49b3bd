package lambdalocal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdaurl"
)

// fixture returns aws-lambda-go's recorded function URL event
// (lambdaurl/testdata/function-url-request-with-headers-and-cookies-and-text-body.json).
func fixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(lambdaGoDir, "lambdaurl", "testdata", "function-url-request-with-headers-and-cookies-and-text-body.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustUnmarshal(t testing.TB, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("unmarshal %q: %v", s, err)
	}
}

// shape returns the JSON shape of v: object keys (recursively) and value
// kinds, with map values of headers and query parameters left out.
func shape(v any, path string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			p := path + "." + k
			out = append(out, p+":"+kind(x))
			switch k {
			case "headers", "queryStringParameters":
				continue
			}
			out = append(out, shape(x, p)...)
		}
	}
	sort.Strings(out)
	return out
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return "null"
}

func TestEventMapping(t *testing.T) {
	h := start(t, Config{})
	u, _ := url.Parse(h.url)
	body := `{"hello": "world"}`
	req, _ := http.NewRequest(http.MethodPost, h.url+"/echo/a%20b?x=1&x=2&y=%C3%A9&empty=", strings.NewReader(body))
	req.Header.Set("Header1", "h1")
	req.Header.Set("Header2", "h1,h2")
	req.Header.Add("Header3", "h3a")
	req.Header.Add("Header3", "h3b")
	req.Header.Set("Cookie", "foo=bar; hello=hello")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "lambdalocal-test")
	before := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}

	// The same shape as a recorded event, but for the IAM authorizer
	// (function URLs with auth type NONE have none).
	var got, want map[string]any
	mustUnmarshal(t, string(raw), &got)
	mustUnmarshal(t, string(fixture(t)), &want)
	delete(want["requestContext"].(map[string]any), "authorizer")
	if g, w := shape(got, ""), shape(want, ""); !slices.Equal(g, w) {
		t.Errorf("event shape:\n got %v\nwant %v", g, w)
	}

	var ev struct {
		events.LambdaFunctionURLRequest
		RouteKey       string `json:"routeKey"`
		RequestContext struct {
			events.LambdaFunctionURLRequestContext
			RouteKey string `json:"routeKey"`
			Stage    string `json:"stage"`
		} `json:"requestContext"`
	}
	mustUnmarshal(t, string(raw), &ev)
	rc := ev.RequestContext
	host, port, _ := net.SplitHostPort(u.Host)
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	check("version", ev.Version, "2.0")
	check("routeKey", ev.RouteKey, "$default")
	check("rawPath", ev.RawPath, "/echo/a%20b")
	check("rawQueryString", ev.RawQueryString, "x=1&x=2&y=%C3%A9&empty=")
	check("queryStringParameters", ev.QueryStringParameters, map[string]string{"x": "1,2", "y": "é", "empty": ""})
	check("cookies", ev.Cookies, []string{"foo=bar", "hello=hello"})
	check("body", ev.Body, body)
	check("isBase64Encoded", ev.IsBase64Encoded, false)
	for k, v := range map[string]string{
		"header1":           "h1",
		"header2":           "h1,h2",
		"header3":           "h3a,h3b",
		"cookie":            "foo=bar; hello=hello",
		"content-type":      "application/json",
		"content-length":    "18",
		"user-agent":        "lambdalocal-test",
		"host":              u.Host,
		"x-forwarded-for":   "127.0.0.1",
		"x-forwarded-proto": "http",
		"x-forwarded-port":  port,
		"x-amzn-trace-id":   resp.Header.Get("X-Amzn-Trace-Id"),
	} {
		check("headers["+k+"]", ev.Headers[k], v)
	}
	for k := range ev.Headers {
		if k != strings.ToLower(k) {
			t.Errorf("header %q not lower-case", k)
		}
	}
	if _, ok := ev.Headers["connection"]; ok {
		t.Error("hop-by-hop header connection passed on")
	}
	if !strings.HasPrefix(ev.Headers["x-amzn-trace-id"], "Root=1-") {
		t.Errorf("x-amzn-trace-id %q", ev.Headers["x-amzn-trace-id"])
	}
	check("accountId", rc.AccountID, "anonymous")
	check("apiId", rc.APIID, host)
	check("domainName", rc.DomainName, u.Host)
	check("domainPrefix", rc.DomainPrefix, host)
	check("http", rc.HTTP, events.LambdaFunctionURLRequestContextHTTPDescription{
		Method: "POST", Path: "/echo/a b", Protocol: "HTTP/1.1", SourceIP: "127.0.0.1", UserAgent: "lambdalocal-test",
	})
	check("requestId", rc.RequestID, resp.Header.Get("X-Amzn-Requestid"))
	check("requestContext.routeKey", rc.RouteKey, "$default")
	check("stage", rc.Stage, "$default")
	if rc.Authorizer != nil {
		t.Errorf("authorizer %+v, want none", rc.Authorizer)
	}
	tm, err := time.Parse("02/Jan/2006:15:04:05 -0700", rc.Time)
	if err != nil || !strings.HasSuffix(rc.Time, " +0000") {
		t.Errorf("time %q: %v", rc.Time, err)
	}
	epoch := time.UnixMilli(rc.TimeEpoch)
	if epoch.Before(before.Add(-time.Second)) || epoch.After(time.Now()) || tm.Unix() != epoch.Unix() {
		t.Errorf("timeEpoch %v, time %v, request at %v", epoch, tm, before)
	}

	// aws-lambda-go's lambdaurl rebuilds the same request from the event.
	var seen *http.Request
	var seenBody []byte
	handler := lambdaurl.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r
		seenBody, _ = io.ReadAll(r.Body)
	}))
	var typed events.LambdaFunctionURLRequest
	mustUnmarshal(t, string(raw), &typed)
	if _, err := handler(context.Background(), &typed); err != nil {
		t.Fatal(err)
	}
	check("lambdaurl URL", seen.URL.String(), "https://"+u.Host+"/echo/a%20b?x=1&x=2&y=%C3%A9&empty=")
	check("lambdaurl x", seen.URL.Query()["x"], []string{"1", "2"})
	check("lambdaurl body", string(seenBody), body)
	check("lambdaurl Header3", seen.Header.Get("Header3"), "h3a,h3b")
	check("lambdaurl RemoteAddr", seen.RemoteAddr, "127.0.0.1")
}

func TestEventBody(t *testing.T) {
	h := start(t, Config{})
	for _, tc := range []struct {
		contentType, body string
		wantBody          string
		wantBase64        bool
	}{
		{"idk", "<idk/>", "PGlkay8+", true}, // as lambdaurl/testdata
		{"", "<idk/>", "PGlkay8+", true},
		{"application/x-www-form-urlencoded", "a=1", "YT0x", true},
		{"application/octet-stream", "\x00\x01", "AAE=", true},
		{"text/plain; charset=utf-8", "héllo", "héllo", false},
		{"application/json", `{"a":1}`, `{"a":1}`, false},
		{"Application/XML", "<a/>", "<a/>", false},
		{"application/javascript", "f()", "f()", false},
		{"text/html", "", "", false},
	} {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/echo", strings.NewReader(tc.body))
		if tc.contentType != "" {
			req.Header.Set("Content-Type", tc.contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var ev map[string]any
		mustUnmarshal(t, string(raw), &ev)
		gotBody, hasBody := ev["body"]
		if tc.wantBody == "" {
			if hasBody {
				t.Errorf("%q: body %v, want none", tc.contentType, gotBody)
			}
		} else if gotBody != tc.wantBody {
			t.Errorf("%q: body %v, want %q", tc.contentType, gotBody, tc.wantBody)
		}
		if ev["isBase64Encoded"] != tc.wantBase64 {
			t.Errorf("%q: isBase64Encoded %v, want %v", tc.contentType, ev["isBase64Encoded"], tc.wantBase64)
		}
	}
	// A bare GET: no body, no cookies, no query parameters.
	_, raw := h.get(t, "/echo")
	var ev map[string]any
	mustUnmarshal(t, raw, &ev)
	for _, k := range []string{"body", "cookies", "queryStringParameters"} {
		if _, ok := ev[k]; ok {
			t.Errorf("GET: %s present: %v", k, ev[k])
		}
	}
	if ev["rawQueryString"] != "" || ev["isBase64Encoded"] != false {
		t.Errorf("GET: rawQueryString %v, isBase64Encoded %v", ev["rawQueryString"], ev["isBase64Encoded"])
	}
}

func TestEnvironmentVariables(t *testing.T) {
	h := start(t, Config{FunctionName: "fn", Region: "eu-west-3", MemorySize: 512, Env: []string{"EXTRA=1", "AWS_REGION=override"}, Timeout: time.Minute})
	vars := "AWS_LAMBDA_FUNCTION_NAME,AWS_LAMBDA_FUNCTION_VERSION,AWS_LAMBDA_FUNCTION_MEMORY_SIZE,AWS_REGION,AWS_DEFAULT_REGION," +
		"_HANDLER,LAMBDA_TASK_ROOT,AWS_LAMBDA_LOG_GROUP_NAME,AWS_LAMBDA_LOG_STREAM_NAME,AWS_LAMBDA_RUNTIME_API,EXTRA,TZ"
	before := time.Now()
	_, body := h.get(t, "/env?vars="+vars)
	var m map[string]string
	mustUnmarshal(t, body, &m)
	for k, v := range map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME":        "fn",
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
		"AWS_REGION":                      "override",
		"AWS_DEFAULT_REGION":              "eu-west-3",
		"_HANDLER":                        "bootstrap",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/fn",
		"EXTRA":                           "1",
		"TZ":                              ":UTC",
	} {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	if m["LAMBDA_TASK_ROOT"] == "" || !strings.Contains(m["AWS_LAMBDA_LOG_STREAM_NAME"], "/[$LATEST]") ||
		!strings.HasPrefix(m["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:") {
		t.Errorf("env %v", m)
	}
	// The deadline the runtime got: Timeout from the invocation.
	dl, _ := strconv.ParseInt(m["deadline"], 10, 64)
	if d := time.UnixMilli(dl).Sub(before); d < 59*time.Second || d > 61*time.Second {
		t.Errorf("deadline in %v, want about 1m", d)
	}
	h.out.waitFor(t, "[env 1] START RequestId: ")
	h.out.waitFor(t, "[env 1] REPORT RequestId: ")
}

func TestStreamingIsIncremental(t *testing.T) {
	h := start(t, Config{})
	g := newGate(t)
	r, _ := h.startStream(t, g.streamURL(3))
	if ct := r.resp.Header.Get("Content-Type"); r.resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", r.resp.StatusCode, ct)
	}
	for i := range 3 {
		// Event i reaches the client while the function waits at the
		// gate, before it writes event i+1.
		g.waitHit(t, i)
		if ev := r.next(t); ev != "data: "+strconv.Itoa(i) {
			t.Fatalf("event %q, want data: %d", ev, i)
		}
		g.release(i)
	}
	if err := r.end(t); err != io.EOF {
		t.Fatalf("stream ended with %v, want EOF", err)
	}
}

func TestStreamedHeadersAndCookies(t *testing.T) {
	h := start(t, Config{})
	resp, body := h.get(t, "/cookies")
	if resp.StatusCode != http.StatusTeapot || body != "short and stout" ||
		resp.Header.Get("X-Test") != "streamed" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("got %d %v %q", resp.StatusCode, resp.Header, body)
	}
	if c := resp.Header.Values("Set-Cookie"); !slices.Equal(c, []string{"c=3", "d=4; HttpOnly"}) {
		t.Errorf("Set-Cookie %q", c)
	}
	if resp.Header.Get("X-Amzn-Requestid") == "" {
		t.Error("no x-amzn-RequestId")
	}
}

func TestBufferedResponses(t *testing.T) {
	h := start(t, Config{})
	resp, body := h.get(t, "/buffered")
	if resp.StatusCode != 201 || body != "hello, buffered" || resp.Header.Get("X-Test") != "buffered" ||
		resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("/buffered: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	if c := resp.Header.Values("Set-Cookie"); !slices.Equal(c, []string{"a=1", "b=2; Path=/"}) {
		t.Errorf("/buffered: Set-Cookie %q", c)
	}
	resp, body = h.get(t, "/json")
	if resp.StatusCode != 200 || body != `{"hello":"world"}` || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("/json: %d %v %q", resp.StatusCode, resp.Header, body)
	}
}

func TestParseBuffered(t *testing.T) {
	for _, tc := range []struct {
		in       string
		status   int
		body, ct string
		err      bool
	}{
		{`"Hello, world!"`, 200, `"Hello, world!"`, "application/json", false},
		{`{"message":"hi"}`, 200, `{"message":"hi"}`, "application/json", false},
		{`{"statusCode":204}`, 204, ``, "application/json", false},
		{`{"statusCode":200,"body":"aGk=","isBase64Encoded":true,"headers":{"content-type":"text/plain"}}`, 200, "hi", "text/plain", false},
		{`{"statusCode":"200"}`, 0, "", "", true},
		{`{"statusCode":42}`, 0, "", "", true},
		{`not json`, 0, "", "", true},
		{`{"statusCode":200,"body":"!","isBase64Encoded":true}`, 0, "", "", true},
		{``, 200, ``, "application/json", false},
	} {
		h := http.Header{}
		status, body, err := parseBuffered(h, []byte(tc.in))
		if (err != nil) != tc.err || status != tc.status || string(body) != tc.body || h.Get("Content-Type") != tc.ct {
			t.Errorf("parseBuffered(%s) = %d %q %v (Content-Type %q)", tc.in, status, body, err, h.Get("Content-Type"))
		}
	}
}

func TestFunctionErrors(t *testing.T) {
	h := start(t, Config{Environments: 1})
	pid := h.pid(t)

	// A returned error: 502, the error logged, the environment kept.
	resp, body := h.get(t, "/fail")
	if resp.StatusCode != http.StatusBadGateway || body != "Internal Server Error" {
		t.Errorf("/fail: %d %q", resp.StatusCode, body)
	}
	h.out.waitFor(t, `"errorMessage":"boom"`)
	if got := h.pid(t); got != pid {
		t.Errorf("after /fail: pid %d, want %d (same environment)", got, pid)
	}

	// An error mid-stream: the events sent so far, then an abort.
	r, _ := h.startStream(t, "/fail-mid-stream")
	if ev := r.next(t); ev != "data: 1" {
		t.Fatalf("/fail-mid-stream: event %q", ev)
	}
	if err := r.end(t); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("/fail-mid-stream ended with %v, want unexpected EOF", err)
	}
	h.out.waitFor(t, "mid-stream failure")
	if got := h.pid(t); got != pid {
		t.Errorf("after /fail-mid-stream: pid %d, want %d", got, pid)
	}

	// A panic: 502, and aws-lambda-go exits; a new environment replaces it.
	resp, _ = h.get(t, "/panic")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("/panic: %d", resp.StatusCode)
	}
	h.out.waitFor(t, "kaboom")
	eventually(t, 10*time.Second, "the panicked environment to end", func() bool { return processGone(pid) || procState(pid) == 'Z' })

	pid = h.pid(t)
	resp, _ = h.get(t, "/exit")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("/exit: %d", resp.StatusCode)
	}
	h.out.waitFor(t, "exit status 7")
	if got := h.pid(t); got == pid {
		t.Errorf("after /exit: still pid %d", got)
	}
	if s := h.e.Stats(); len(s.Environments) != 1 || s.ColdStarts != 3 {
		t.Errorf("stats %+v, want 1 environment, 3 cold starts", s)
	}
}

func TestOneRequestPerEnvironment(t *testing.T) {
	const queue = 300 * time.Millisecond
	h := start(t, Config{Environments: 2, QueueTimeout: queue})
	g := newGate(t)
	// Two long streams take both environments.
	for i := range 2 {
		r, _ := h.startStream(t, g.streamURL(1))
		g.waitHit(t, 0)
		if ev := r.next(t); ev != "data: 0" {
			t.Fatalf("stream %d: %q", i, ev)
		}
	}
	s := h.e.Stats()
	if len(s.Environments) != 2 || s.Busy() != 2 {
		t.Fatalf("stats %+v, want 2 busy environments", s)
	}
	// A third request waits QueueTimeout, then 429.
	t0 := time.Now()
	resp, body := h.get(t, "/first")
	if d := time.Since(t0); d < queue {
		t.Errorf("429 after %v, want ≥ %v", d, queue)
	}
	if resp.StatusCode != http.StatusTooManyRequests || body != `{"Message":"Rate Exceeded."}` ||
		resp.Header.Get("X-Amzn-Errortype") != "TooManyRequestsException" {
		t.Errorf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if s := h.e.Stats(); s.Throttled != 1 || len(s.Environments) != 2 {
		t.Errorf("stats %+v", s)
	}
	// A fourth one is served by the first environment to be free within
	// QueueTimeout: one long enough from here on that how fast this
	// machine serves it once released does not matter.
	h.e.mu.Lock()
	h.e.cfg.QueueTimeout = time.Minute
	h.e.mu.Unlock()
	done := make(chan int, 1)
	go func() {
		resp, err := http.Get(h.url + "/first")
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	eventually(t, 10*time.Second, "the request queued", func() bool {
		h.e.mu.Lock()
		defer h.e.mu.Unlock()
		return len(h.e.waiters) == 1
	})
	g.releaseAll()
	if code := <-done; code != http.StatusOK {
		t.Errorf("queued request: %d, want 200", code)
	}

	// Idle environments: the most recently used one serves.
	eventually(t, 5*time.Second, "both environments idle", func() bool { return h.e.Stats().Busy() == 0 })
	idle := func() bool { return h.e.Stats().Busy() == 0 }
	first := h.pid(t)
	for range 5 {
		// Once the runtime asks for work again (just after the client
		// has its response), the environment is the most recently idle.
		eventually(t, 5*time.Second, "idle", idle)
		if got := h.pid(t); got != first {
			t.Fatalf("pid %d, want the warm %d", got, first)
		}
	}
}

func TestFreeze(t *testing.T) {
	needLinux(t)
	h := start(t, Config{Environments: 1, Freeze: true})
	frozen := func() bool {
		s := h.e.Stats()
		return len(s.Environments) == 1 && s.Environments[0].State == StateFrozen && procState(s.Environments[0].PID) == 'T'
	}
	eventually(t, 5*time.Second, "the idle environment frozen (state T)", frozen)
	pid := h.e.Stats().Environments[0].PID

	// Continued for an invocation, frozen again after.
	g := newGate(t)
	r, _ := h.startStream(t, g.streamURL(1))
	g.waitHit(t, 0)
	if st := procState(pid); st == 'T' || st == 0 {
		t.Errorf("state %q during an invocation", st)
	}
	r.next(t)
	g.release(0)
	if err := r.end(t); err != io.EOF {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "frozen again", frozen)

	// Its background ticker (10 ms) stands still while frozen.
	ticks := func() int {
		_, body := h.get(t, "/ticks")
		n, err := strconv.Atoi(body)
		if err != nil {
			t.Fatalf("/ticks: %q", body)
		}
		return n
	}
	a := ticks()
	time.Sleep(500 * time.Millisecond)
	if b := ticks(); b-a > 10 {
		t.Errorf("%d ticks in 500 ms frozen, want about 0", b-a)
	}
	if got := h.pid(t); got != pid {
		t.Errorf("pid %d, want %d", got, pid)
	}
}

func TestNoFreeze(t *testing.T) {
	h := start(t, Config{Environments: 1})
	ticks := func() int {
		_, body := h.get(t, "/ticks")
		n, _ := strconv.Atoi(body)
		return n
	}
	// Its ticker (10 ms) advances between invocations, while idle: within
	// 10 s, some 100 ms between two /ticks shows at least 5 ticks (frozen,
	// it would show about 1: the tick missed while stopped).
	prev := ticks()
	for deadline := time.Now().Add(10 * time.Second); ; {
		time.Sleep(100 * time.Millisecond) // idle
		n := ticks()
		if n-prev >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ticker did not advance while idle: %d ticks since the last /ticks", n-prev)
		}
		prev = n
	}
	eventually(t, 5*time.Second, "idle (not frozen)", func() bool { return h.e.Stats().Environments[0].State == StateIdle })
}

func TestTimeout(t *testing.T) {
	h := start(t, Config{Environments: 1, Timeout: 500 * time.Millisecond})
	pid := h.pid(t)

	t0 := time.Now()
	resp, body := h.get(t, "/sleep?ms=5000")
	// Not after the 5 s sleep: the 502 and the log line show the timeout.
	if d := time.Since(t0); resp.StatusCode != http.StatusBadGateway || d < 400*time.Millisecond {
		t.Errorf("/sleep: %d %q after %v, want 502 after 500ms", resp.StatusCode, body, d)
	}
	h.out.waitFor(t, "Task timed out after 0.50 seconds")
	eventually(t, 5*time.Second, "the timed-out process gone", func() bool { return processGone(pid) })
	// A new environment replaces it.
	eventually(t, 5*time.Second, "a replacement environment", func() bool {
		s := h.e.Stats()
		return len(s.Environments) == 1 && s.Environments[0].PID != pid && s.Environments[0].State != StateInit
	})
	if s := h.e.Stats(); s.ColdStarts != 2 {
		t.Errorf("cold starts %d, want 2", s.ColdStarts)
	}
	pid2 := h.pid(t)
	if pid2 == pid {
		t.Fatal("same pid after a timeout")
	}

	// A stream cut by the timeout ends abruptly.
	r, _ := h.startStream(t, "/stream?n=100&delay=100")
	r.next(t)
	if _, err := r.drain(t); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("timed-out stream ended with %v, want unexpected EOF", err)
	}
	eventually(t, 5*time.Second, "the second timed-out process gone", func() bool { return processGone(pid2) })
	if got := h.pid(t); got == pid2 {
		t.Error("same pid after a stream timeout")
	}
}

func TestRequestTooLarge(t *testing.T) {
	h := start(t, Config{MaxRequestBytes: 1024})
	post := func(body io.Reader) (*http.Response, string) {
		resp, err := http.Post(h.url+"/echo", "application/octet-stream", body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	want := `{"Message":"Request must be smaller than 1024 bytes for the InvokeFunction operation"}`
	// With a Content-Length, and chunked (no length), and a body within
	// the limit whose base64 event is not.
	for name, body := range map[string]io.Reader{
		"Content-Length": bytes.NewReader(make([]byte, 2048)),
		"chunked":        io.MultiReader(strings.NewReader(strings.Repeat("x", 4096))),
		"event":          bytes.NewReader(make([]byte, 900)),
	} {
		resp, got := post(body)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || got != want ||
			resp.Header.Get("X-Amzn-Errortype") != "RequestTooLargeException" {
			t.Errorf("%s: %d %q", name, resp.StatusCode, got)
		}
	}
	if n := h.e.Stats().Invocations; n != 0 {
		t.Errorf("%d invocations, want 0", n)
	}
	if resp, _ := post(strings.NewReader("small")); resp.StatusCode != http.StatusOK {
		t.Errorf("small body: %d", resp.StatusCode)
	}
}

func TestRequestReadTimeout(t *testing.T) {
	h := start(t, Config{RequestReadTimeout: 300 * time.Millisecond})
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		// A stream-mode upload that never ends.
		for {
			if _, err := pw.Write([]byte("data: x\n\n")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	t0 := time.Now()
	resp, err := http.Post(h.url+"/echo", "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The upload never ends: the 408 shows the timeout.
	if d := time.Since(t0); resp.StatusCode != http.StatusRequestTimeout || d < 300*time.Millisecond {
		t.Errorf("got %d %q after %v, want 408 after ≥ 300ms", resp.StatusCode, b, d)
	}
	if n := h.e.Stats().Invocations; n != 0 {
		t.Errorf("%d invocations, want 0", n)
	}
}

func TestClientDisconnect(t *testing.T) {
	h := start(t, Config{Environments: 1, QueueTimeout: 100 * time.Millisecond})
	g := newGate(t)
	r, cancel := h.startStream(t, g.streamURL(3))
	g.waitHit(t, 0)
	r.next(t)
	cancel() // the client leaves
	r.end(t)

	// The function is not told: the environment stays busy.
	time.Sleep(100 * time.Millisecond)
	if resp, _ := h.get(t, "/first"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("while the function still streams: %d, want 429", resp.StatusCode)
	}
	if s := h.e.Stats(); s.Busy() != 1 {
		t.Errorf("stats %+v, want 1 busy", s)
	}
	// It goes on writing (into the void) until it ends its response.
	g.release(0)
	g.waitHit(t, 1)
	g.release(1)
	g.waitHit(t, 2)
	g.release(2)
	eventually(t, 5*time.Second, "the environment idle", func() bool { return h.e.Stats().Busy() == 0 })
	if resp, body := h.get(t, "/first"); resp.StatusCode != http.StatusOK || body != "data: hi\n\n" {
		t.Errorf("after the stream: %d %q", resp.StatusCode, body)
	}
}

func TestResponseLimit(t *testing.T) {
	const limit = 1 << 20
	h := start(t, Config{Environments: 1, MaxResponseBytes: limit})
	pid := h.pid(t)
	resp, err := http.Get(h.url + "/big?bytes=" + strconv.Itoa(4*limit))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) || n > limit || n < limit-1024 {
		t.Errorf("read %d bytes, then %v; want about %d, then unexpected EOF", n, err, limit)
	}
	h.out.waitFor(t, "response stream cut after 1048576 bytes")
	// aws-lambda-go exits when the Runtime API refuses its response.
	eventually(t, 5*time.Second, "a new environment", func() bool { return h.pid(t) != pid })

	// Within the limit, all of it.
	resp, err = http.Get(h.url + "/big?bytes=" + strconv.Itoa(limit/2))
	if err != nil {
		t.Fatal(err)
	}
	n, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != limit/2 {
		t.Errorf("read %d, %v; want %d", n, err, limit/2)
	}
}

func TestLimitBandwidth(t *testing.T) {
	h := start(t, Config{LimitBandwidth: true})
	t0 := time.Now()
	resp, err := http.Get(h.url + "/big?bytes=" + strconv.Itoa(7<<20))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// 6 MiB free, then 1 MiB at 2 MiB/s.
	if d := time.Since(t0); err != nil || n != 7<<20 || d < 450*time.Millisecond {
		t.Errorf("read %d bytes (%v) in %v, want 7 MiB in ≥ 500ms", n, err, d)
	}
}

func TestRuntimeAPIErrors(t *testing.T) {
	h := start(t, Config{Environments: 1})
	_, body := h.get(t, "/env?vars=AWS_LAMBDA_RUNTIME_API")
	var m map[string]string
	mustUnmarshal(t, body, &m)
	api := "http://" + m["AWS_LAMBDA_RUNTIME_API"]
	eventually(t, 5*time.Second, "the runtime waiting for work", func() bool { return h.e.Stats().Busy() == 0 })
	for _, tc := range []struct {
		method, path string
		status       int
		errType      string
	}{
		{"POST", "/2018-06-01/runtime/invocation/bogus/response", 400, "InvalidRequestID"},
		{"POST", "/2018-06-01/runtime/invocation/bogus/error", 400, "InvalidRequestID"},
		{"GET", "/2018-06-01/runtime/invocation/next", 400, "InvalidStateTransition"}, // its runtime already waits
		{"GET", "/2018-06-01/nope", 404, "InvalidRequest"},
	} {
		req, _ := http.NewRequest(tc.method, api+tc.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ ErrorType, ErrorMessage string }
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		_ = json.Unmarshal(b, &e)
		if resp.StatusCode != tc.status || e.ErrorType != tc.errType {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, b)
		}
	}
	// The environment still works.
	if resp, _ := h.get(t, "/first"); resp.StatusCode != 200 {
		t.Errorf("/first: %d", resp.StatusCode)
	}
}

func TestInitFailures(t *testing.T) {
	for name, tc := range map[string]struct {
		env  string
		want string
	}{
		"exit":       {"TESTFN_INIT_EXIT=3", "exit status 3"},
		"init error": {"TESTFN_INIT_ERROR=1", "InitError: bad config"},
	} {
		t.Run(name, func(t *testing.T) {
			out := &logBuffer{}
			e, err := New(Config{Command: []string{testfn}, Env: []string{tc.env}, Output: out, InitTimeout: 5 * time.Second})
			if err == nil {
				_ = e.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q in it; output:\n%s", err, tc.want, out)
			}
		})
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without a Command succeeded")
	}
}

func TestColdStartFailureIs502(t *testing.T) {
	// The first environment starts; later ones fail their init.
	marker := filepath.Join(t.TempDir(), "started")
	h := start(t, Config{Environments: 2, Env: []string{"TESTFN_INIT_ONCE=" + marker}})
	g := newGate(t)
	r, _ := h.startStream(t, g.streamURL(1)) // occupies the first environment
	g.waitHit(t, 0)
	r.next(t)
	resp, body := h.get(t, "/first") // a cold start, which fails
	if resp.StatusCode != http.StatusBadGateway || body != "Internal Server Error" {
		t.Errorf("failed cold start: %d %q", resp.StatusCode, body)
	}
	h.out.waitFor(t, "exit status 4")
	g.releaseAll()
	if _, err := r.drain(t); err != io.EOF {
		t.Errorf("the first stream: %v", err)
	}
	// Not restarted in a loop: one environment, two cold starts.
	time.Sleep(200 * time.Millisecond)
	if s := h.e.Stats(); len(s.Environments) != 1 || s.ColdStarts != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestColdStartInitTimeout(t *testing.T) {
	// The first environment starts; later ones hang in their init.
	marker := filepath.Join(t.TempDir(), "started")
	h := start(t, Config{Environments: 2, Env: []string{"TESTFN_INIT_ONCE=" + marker, "TESTFN_INIT_HANG=1"}})
	h.e.mu.Lock()
	h.e.cfg.InitTimeout = 200 * time.Millisecond // for the cold start only
	h.e.mu.Unlock()
	g := newGate(t)
	r, _ := h.startStream(t, g.streamURL(1)) // occupies the first environment
	g.waitHit(t, 0)
	r.next(t)
	resp, body := h.get(t, "/first") // a cold start, which never gets ready
	if resp.StatusCode != http.StatusBadGateway || body != "Internal Server Error" {
		t.Errorf("timed-out cold start: %d %q", resp.StatusCode, body)
	}
	// It is killed (it was never ready, so nobody else has it), and not
	// replaced.
	eventually(t, 10*time.Second, "the hung environment gone", func() bool {
		s := h.e.Stats()
		return len(s.Environments) == 1 && s.ColdStarts == 2
	})
	g.releaseAll()
	if _, err := r.drain(t); err != io.EOF {
		t.Errorf("the first stream: %v", err)
	}
}

// An environment whose init acquire gave up on is killed: becomeIdle must
// not hand it to a waiting request, even if it gets ready just then.
func TestBecomeIdleAfterInitTimeout(t *testing.T) {
	e := &Emulator{}
	in := newInstance(e, 1)
	w := &waiter{ch: make(chan acquired, 1)}
	e.mu.Lock()
	e.waiters = []*waiter{w}
	in.initTimedOut = true
	e.mu.Unlock()
	if e.becomeIdle(in) {
		t.Error("becomeIdle handed out an environment being killed")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(w.ch) != 0 || len(e.idle) != 0 || in.wasReady {
		t.Errorf("delivered %d, idle %d, wasReady %v; want 0, 0, false", len(w.ch), len(e.idle), in.wasReady)
	}
}

func TestCloseKillsEverything(t *testing.T) {
	needLinux(t)
	h := start(t, Config{Environments: 3, Freeze: true})
	// Three environments, all used once.
	g := newGate(t)
	var streams []*eventReader
	for range 3 {
		r, _ := h.startStream(t, g.streamURL(1))
		g.waitHit(t, 0)
		r.next(t)
		streams = append(streams, r)
	}
	g.release(0)
	for _, r := range streams {
		if _, err := r.drain(t); err != io.EOF {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "three idle environments", func() bool {
		s := h.e.Stats()
		return len(s.Environments) == 3 && s.Busy() == 0
	})
	// Two of them busy, the third frozen.
	g2 := newGate(t)
	streams = nil
	for range 2 {
		r, _ := h.startStream(t, g2.streamURL(1))
		g2.waitHit(t, 0)
		r.next(t)
		streams = append(streams, r)
	}
	var pids []int
	eventually(t, 5*time.Second, "two busy environments and a frozen one", func() bool {
		s := h.e.Stats()
		pids = pids[:0]
		frozen := 0
		for _, env := range s.Environments {
			pids = append(pids, env.PID)
			if env.State == StateFrozen && procState(env.PID) == 'T' {
				frozen++
			}
		}
		return len(s.Environments) == 3 && frozen == 1 && s.Busy() == 2
	})

	if got := running(testfn); len(got) < 3 {
		t.Errorf("running(testfn) = %v, want at least %v", got, pids)
	}
	if err := h.e.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if !processGone(pid) {
			t.Errorf("process %d still exists (state %q) after Close", pid, procState(pid))
		}
	}
	if s := h.e.Stats(); len(s.Environments) != 0 {
		t.Errorf("stats after Close: %+v", s)
	}
	// The streams in progress end abruptly; new requests get 503.
	for _, r := range streams {
		if _, err := r.drain(t); err == io.EOF {
			t.Error("a stream ended cleanly after Close")
		}
	}
	if resp, _ := h.get(t, "/first"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Close: %d, want 503", resp.StatusCode)
	}
	if err := h.e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseSendsSIGTERMToExtensions(t *testing.T) {
	needLinux(t)
	h := start(t, Config{Environments: 1, Freeze: true, Env: []string{"TESTFN_SIGTERM=1"}})
	eventually(t, 5*time.Second, "frozen", func() bool {
		s := h.e.Stats()
		return len(s.Environments) == 1 && s.Environments[0].State == StateFrozen
	})
	pid := h.e.Stats().Environments[0].PID
	_ = h.e.Close()
	if !strings.Contains(h.out.String(), "[env 1] SIGTERM") {
		t.Errorf("no SIGTERM in the output:\n%s", h.out)
	}
	if !processGone(pid) {
		t.Errorf("process %d still exists", pid)
	}
}

// An invocation that ends during Close's shutdown phase does not freeze
// the environment: its SIGTERM handler runs to the end.
func TestCloseDoesNotFreezeShutdown(t *testing.T) {
	needLinux(t)
	// A shutdown phase as long as the test needs, so that the test, not
	// the machine's speed, decides when it ends.
	grace := shutdownGrace
	shutdownGrace = time.Minute
	t.Cleanup(func() { shutdownGrace = grace })
	g := newGate(t)
	h := start(t, Config{Environments: 1, Freeze: true,
		Env: []string{"TESTFN_SIGTERM=1", "TESTFN_SIGTERM_GATE=" + g.srv.URL + "?i=99"}})
	r, _ := h.startStream(t, g.streamURL(1))
	g.waitHit(t, 0)
	r.next(t)
	pid := h.e.Stats().Environments[0].PID

	closed := make(chan struct{})
	go func() {
		_ = h.e.Close()
		close(closed)
	}()
	g.waitHit(t, 99) // SIGTERM came during the invocation; its handler waits
	// The invocation ends, and the runtime asks for work again.
	g.release(0)
	eventually(t, 10*time.Second, "the runtime asking for work again", func() bool {
		s := h.e.Stats()
		return len(s.Environments) == 1 && s.Environments[0].State != StateBusy
	})
	if st := procState(pid); st == 'T' {
		t.Errorf("process %d stopped during its shutdown phase", pid)
	}
	// The SIGTERM handler ends, and so does the process: Close returns.
	g.release(99)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("Close did not return (process state %q)", procState(pid))
	}
	if out := h.out.String(); !strings.Contains(out, "[env 1] shutdown done") ||
		!strings.Contains(out, "[env 1] process exited: exit status 0") {
		t.Errorf("the shutdown phase did not end cleanly:\n%s", out)
	}
}

func TestConcurrentRequests(t *testing.T) {
	h := start(t, Config{Environments: 4, QueueTimeout: 10 * time.Second})
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			path := fmt.Sprintf("/echo?i=%d", i)
			resp, err := http.Get(h.url + path)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			var ev events.LambdaFunctionURLRequest
			if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil || ev.QueryStringParameters["i"] != strconv.Itoa(i) {
				errs <- fmt.Errorf("%s: %v %v", path, err, ev.QueryStringParameters)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := h.e.Stats(); s.Invocations != 40 || len(s.Environments) > 4 {
		t.Errorf("stats %+v", s)
	}
}

func BenchmarkFirstByte(b *testing.B) {
	for _, freeze := range []bool{false, true} {
		b.Run("freeze="+strconv.FormatBool(freeze), func(b *testing.B) {
			if freeze && !canFreeze {
				b.Skip("no SIGSTOP here")
			}
			h := start(b, Config{Environments: 1, Freeze: freeze})
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			buf := make([]byte, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				resp, err := client.Get(h.url + "/first")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(resp.Body, buf); err != nil {
					b.Fatal(err)
				}
				// The rest, so that the environment is free for the next.
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
