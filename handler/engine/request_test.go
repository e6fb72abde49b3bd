package engine

import (
	"context"
	"iter"
	"strings"
	"testing"
)

// headerSource is a RequestSource with fixed headers.
type headerSource struct{ fields [][2]string }

func (h headerSource) Context() context.Context { return context.Background() }
func (h headerSource) Method() string           { return "GET" }
func (h headerSource) Host() string             { return "example.test" }
func (h headerSource) Path() string             { return "/sse" }
func (h headerSource) RawQuery() string         { return "a=1&b=%zz&c=3" }
func (h headerSource) RemoteAddr() string       { return "192.0.2.1:1234" }
func (h headerSource) Header(name string) string {
	for _, f := range h.fields {
		if strings.EqualFold(f[0], name) {
			return f[1]
		}
	}
	return ""
}
func (h headerSource) Headers() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, f := range h.fields {
			if !yield(f[0], f[1]) {
				return
			}
		}
	}
}

func TestRequestCookieToleratesMalformedNeighbours(t *testing.T) {
	for _, line := range []string{
		"session=xyz",
		"x; session=xyz",
		"a=1; session=xyz;",
		"bad cookie; session=xyz",
	} {
		r := NewRequest(headerSource{fields: [][2]string{{"Cookie", "other=1"}, {"Cookie", line}}})
		if v, ok := r.Cookie("session"); !ok || v != "xyz" {
			t.Errorf("Cookie header %q: session = %q, %v; want xyz", line, v, ok)
		}
	}
	r := NewRequest(headerSource{})
	if _, ok := r.Cookie("session"); ok {
		t.Error("found a cookie in a request without any")
	}
}

func TestSnapshotKeepsBoundedHeaders(t *testing.T) {
	big := strings.Repeat("v", 1024)
	var fields [][2]string
	for range 64 { // 64 KiB of headers
		fields = append(fields, [2]string{"X-Big", big})
	}
	fields = append([][2]string{{"Authorization", "Bearer t"}}, fields...)
	s := takeSnapshot(headerSource{fields: fields}, context.Background())
	size := 0
	for k, v := range s.Headers() {
		size += len(k) + len(v)
	}
	if size > maxSnapshotHeaders {
		t.Fatalf("snapshot keeps %d header bytes, limit %d", size, maxSnapshotHeaders)
	}
	if s.Header("authorization") != "Bearer t" {
		t.Fatal("the first header was not kept")
	}
	if q := NewRequest(s).Query(); q.Get("a") != "1" || q.Get("c") != "3" {
		t.Fatalf("Query() = %v", q)
	}
}
