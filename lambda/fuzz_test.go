package lambda

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ssebridge/ssebridge/handler"
)

// FuzzInvoke feeds arbitrary function URL events (what a client controls:
// method, path, query, one header, the body and its encoding) to the
// function. It must answer every one with a valid status, read whatever
// body it answered, and never panic.
func FuzzInvoke(f *testing.F) {
	f.Add("GET", "/sse", "", "accept", "text/event-stream", "", false)
	f.Add("POST", "/sse", "a=%zz", "x-crossws-id", "not an id", "hello", false)
	f.Add("POST", "/s%2", "", "cookie", "a=b; c", "!!notbase64", true)
	f.Add("OPTIONS", "/%00", "x", "origin", "https://evil.example", "", false)
	f.Add("GET", "/sse", "", "last-event-id", "zz.18446744073709551615.1", "", false)
	h, err := handler.New(handler.Config{Logger: nil, WriteTimeout: 100 * time.Millisecond, ReconnectGrace: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	fn := New(h, Config{Margin: 10 * time.Millisecond})
	f.Fuzz(func(t *testing.T, method, rawPath, query, hname, hvalue, body string, b64 bool) {
		ev := &events.LambdaFunctionURLRequest{
			Version:         "2.0",
			RawPath:         rawPath,
			RawQueryString:  query,
			Headers:         map[string]string{hname: hvalue},
			Body:            body,
			IsBase64Encoded: b64,
			RequestContext: events.LambdaFunctionURLRequestContext{
				HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: method, Path: rawPath, SourceIP: "192.0.2.1"},
			},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		resp, err := fn(ctx, ev)
		if method == "" {
			if err == nil {
				t.Fatal("an event without a method was served")
			}
			return
		}
		if err != nil {
			t.Fatalf("error for %+v: %v", ev, err)
		}
		if resp.StatusCode < 100 || resp.StatusCode > 599 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		// A stream ends with the invocation's margin; read it all.
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Close()
	})
}
