package centrifugo_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/centrifugo"
	"github.com/ssebridge/ssebridge/netfx"
)

// BenchmarkAppendPublication: a publication's frame, once per protocol per
// publication (then shared by every subscriber).
func BenchmarkAppendPublication(b *testing.B) {
	for _, tc := range []struct {
		name string
		data string
	}{
		{"json64", `{"type":"message","from":"alice","text":"hello, world, 64 bytes"}`},
		{"text64", strings.Repeat("plain text ", 6)},
		{"json4k", `{"t":"` + strings.Repeat("x", 4<<10) + `"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 8<<10)
			data := []byte(tc.data)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				buf = centrifugo.AppendPublicationForTest(buf[:0], false, "chat", data, 12345)
			}
		})
	}
}

// BenchmarkEmulationInProcess: an rpc sent with POST /emulation and its
// reply read from the stream, in process (no network): the server's own
// cost of a round trip.
func BenchmarkEmulationInProcess(b *testing.B) {
	cf := centrifugo.Config{Hooks: centrifugo.Hooks{
		RPC: func(_ *centrifugo.Client, e centrifugo.RPCEvent) (centrifugo.RPCReply, error) {
			return centrifugo.RPCReply{Data: e.Data}, nil
		},
	}}
	h, err := handler.New(handler.Config{Centrifugo: &cf, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	srv := netfx.New(h)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	rec := &streamRecorder{ResponseRecorder: httptest.NewRecorder(), w: pw, discard: true}
	go func() {
		srv.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/connection/sse?cf_connect="+url.QueryEscape(`{"connect":{},"id":1}`), nil))
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	var session string
	for session == "" {
		line, err := br.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if d, ok := strings.CutPrefix(strings.TrimSpace(line), "data: "); ok {
			var r struct {
				Connect struct{ Session, Node string }
			}
			_ = json.Unmarshal([]byte(d), &r)
			session = r.Connect.Session
		}
	}
	b.ReportAllocs()
	id := 1
	for b.Loop() {
		id++
		cmd := fmt.Sprintf(`{"rpc":{"method":"echo","data":{"n":%d}},"id":%d}`, id, id)
		env, _ := json.Marshal(map[string]string{"session": session, "node": "n", "data": cmd})
		rr := httptest.NewRecorder()
		srv.ServeHTTP(rr, httptest.NewRequest("POST", "/emulation", strings.NewReader(string(env))))
		if rr.Code != 204 {
			b.Fatalf("status %d", rr.Code)
		}
		want := fmt.Sprintf(`"id":%d,`, id)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			if strings.Contains(line, want) {
				break
			}
		}
	}
}
