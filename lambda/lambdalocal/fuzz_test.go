package lambdalocal

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// FuzzBuildEvent parses arbitrary bytes as an HTTP request, as the
// emulator's server would, and maps what parses to a function URL event:
// the event must be valid JSON that aws-lambda-go decodes, with the raw
// query and the body given back exactly.
func FuzzBuildEvent(f *testing.F) {
	f.Add([]byte("GET /sse?a=1&a=2&b=%zz HTTP/1.1\r\nHost: x.example:9000\r\nCookie: a=b; c=d\r\nX-Many: 1\r\nX-Many: 2\r\n\r\n"), []byte(""))
	f.Add([]byte("POST /p%20q HTTP/1.1\r\nHost: [::1]:9000\r\nContent-Type: text/plain\r\n\r\n"), []byte("héllo"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n\r\n"), []byte{0, 0xff, 0xfe})
	f.Fuzz(func(t *testing.T, head, body []byte) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			return // the server would have refused it
		}
		r.RemoteAddr = "192.0.2.1:5555"
		raw, err := buildEvent(r, body, "req-1", "Root=1-0-0", time.Unix(1700000000, 0))
		if err != nil {
			t.Fatalf("buildEvent: %v", err)
		}
		var ev events.LambdaFunctionURLRequest
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatalf("event is not valid JSON for aws-lambda-go: %v\n%s", err, raw)
		}
		// JSON strings hold only valid UTF-8; a raw query that is not
		// (browsers percent-encode) cannot come back as it was.
		if utf8.ValidString(r.URL.RawQuery) && ev.RawQueryString != r.URL.RawQuery {
			t.Fatalf("rawQueryString %q, want %q", ev.RawQueryString, r.URL.RawQuery)
		}
		got := []byte(ev.Body)
		if ev.IsBase64Encoded {
			if got, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
				t.Fatalf("body is not base64: %v", err)
			}
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("body %q, want %q", got, body)
		}
	})
}
