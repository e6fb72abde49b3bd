package centrifugo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/netfx"
)

// fuzzHandler is a Handler with open channels and hooks, served in
// process (httptest.ResponseRecorder).
func fuzzHandler(f *testing.F) http.Handler {
	cf := userConfig()
	h, err := handler.New(handler.Config{Centrifugo: &cf, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	return netfx.New(h)
}

// checkStream checks a stream's body: "\r\n", then events "data: <JSON>"
// only.
func checkStream(t *testing.T, body string) {
	if !strings.HasPrefix(body, "\r\n") {
		t.Fatalf("stream starts %q", body[:min(len(body), 20)])
	}
	for _, ev := range strings.Split(strings.TrimSuffix(body[2:], "\n\n"), "\n\n") {
		if ev == "" || strings.HasPrefix(ev, ":") {
			continue
		}
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") || !json.Valid([]byte(data)) {
			t.Fatalf("event %q: want one data line of JSON", ev)
		}
	}
}

// FuzzConnect feeds cf_connect of both transports. A stream (200) is
// well-formed; anything else is a 400 with a message.
func FuzzConnect(f *testing.F) {
	for _, s := range []string{
		`{"connect":{},"id":1}`,
		`{"connect":{"data":{"user":"u"},"subs":{"a":{"recover":true,"offset":3,"epoch":"e"}}},"id":1}` + "\n" + `{"subscribe":{"channel":"a","recover":true,"epoch":"x","offset":5},"id":2}` + "\n" + `{"rpc":{"method":"m","data":"\u2028"},"id":3}`,
		`{"connect":{"name":"` + strings.Repeat("n", 20) + `"},"id":1}`,
		`{"connect":{},"id":1}` + "\n" + `{"connect":{},"id":2}`,
		`{"connect":{},"id":1}` + "\n" + `{"presence":{"channel":"a"},"id":2}` + "\n" + `{}`,
		`{"token":"x","subs":{"a":{}}}`,
		`null`, ``, `{`, "{\"connect\":{\"data\":\"\xff\"},\"id\":1}",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, cf string, uni bool) {
		path := "/connection/sse"
		if uni {
			path = "/connection/uni_sse"
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the stream ends after what the request itself queued
		req := httptest.NewRequestWithContext(ctx, "GET", path+"?cf_connect="+url.QueryEscape(cf), nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200:
			checkStream(t, rec.Body.String())
		case 400:
			if rec.Body.Len() == 0 {
				t.Fatal("400 without a message")
			}
		default:
			t.Fatalf("status %d %q", rec.Code, rec.Body.String())
		}
		// The same bytes as a POST body.
		req = httptest.NewRequestWithContext(ctx, "POST", path, strings.NewReader(cf))
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 && rec.Code != 400 {
			t.Fatalf("POST: status %d %q", rec.Code, rec.Body.String())
		}
	})
}

// FuzzEmulation feeds /emulation bodies, for a live session or not.
func FuzzEmulation(f *testing.F) {
	for _, s := range []string{
		`{"session":"S","node":"N","data":"{\"rpc\":{\"method\":\"x\"},\"id\":2}"}`,
		`{"session":"S","node":"N","data":"{}\n{}"}`,
		`{"session":"S","data":"{\"connect\":{},\"id\":3}"}`,
		`{"session":"S","data":"\u0000{\"disconnect\":{\"Code\":3000}}"}`,
		`{"session":"S","data":"{\"subscribe\":{\"channel\":\"a\"},\"id\":4}\n{\"publish\":{\"channel\":\"a\",\"data\":1},\"id\":5}"}`,
		`{"node":123}`, `{"session":"AAAAAAAAAAAAAAAAAAAAAA"}`, `[]`, ``,
	} {
		f.Add(s)
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body string) {
		// A live connection whose session the body may name as S.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		pr, pw := ioPipe()
		req := httptest.NewRequestWithContext(ctx, "GET", "/connection/sse?cf_connect="+url.QueryEscape(`{"connect":{},"id":1}`), nil)
		rec := &streamRecorder{ResponseRecorder: httptest.NewRecorder(), w: pw}
		done := make(chan struct{})
		go func() { defer close(done); h.ServeHTTP(rec, req); pw.Close() }()
		session := readSession(t, pr)
		body = strings.ReplaceAll(body, `"S"`, `"`+session+`"`)
		post := httptest.NewRequest("POST", "/emulation", strings.NewReader(body))
		prec := httptest.NewRecorder()
		h.ServeHTTP(prec, post)
		switch prec.Code {
		case 204, 400, 404, 413:
		default:
			t.Fatalf("status %d %q", prec.Code, prec.Body.String())
		}
		cancel()
		go func() { _, _ = bytes.NewBuffer(nil).ReadFrom(pr) }()
		<-done
		checkStream(t, rec.out.String())
	})
}
