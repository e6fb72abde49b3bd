package bench

import (
	"bytes"
	"fmt"
	"testing"

	ginsse "github.com/gin-contrib/sse"
	r3sse "github.com/r3labs/sse/v2"
	"github.com/ssebridge/ssebridge/handler/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// sink is the reused output of one benchmark: a byte slice for encoders that
// append, a bytes.Buffer for encoders that write to an io.Writer. Either is
// emptied, never freed, before each event, so every library pays for turning
// the event into bytes in memory it already owns, and none can skip the copy
// (as it could into io.Discard).
type sink struct {
	b   []byte
	buf bytes.Buffer
}

// encoder turns one event into bytes in s and returns them. Everything the
// library does between "here are an id, a type and a data string" and
// "here are the bytes", including validation and line splitting at
// message-construction time, happens inside it.
type encoder struct {
	name   string
	encode func(s *sink, id, typ, data string) ([]byte, error)
}

var encoders = []encoder{
	{"ssebridge", encodeSSEBridge},
	{"go-sse", encodeGoSSE},
	{"r3labs", encodeR3labs},
	{"gin", encodeGin},
}

// encodeSSEBridge uses handler/sse.Append, which validates id and type and
// splits data while appending.
func encodeSSEBridge(s *sink, id, typ, data string) ([]byte, error) {
	var err error
	s.b, err = sse.Append(s.b[:0], sse.Event{ID: id, Type: typ, Data: data})
	return s.b, err
}

// encodeGoSSE builds a github.com/tmaxmax/go-sse Message the documented way:
// NewID and NewType validate, AppendData splits the data into lines, WriteTo
// writes the message.
func encodeGoSSE(s *sink, id, typ, data string) ([]byte, error) {
	s.buf.Reset()
	eid, err := gosse.NewID(id)
	if err != nil {
		return nil, err
	}
	et, err := gosse.NewType(typ)
	if err != nil {
		return nil, err
	}
	m := gosse.Message{ID: eid, Type: et}
	m.AppendData(data)
	if _, err := m.WriteTo(&s.buf); err != nil {
		return nil, err
	}
	return s.buf.Bytes(), nil
}

// encodeGin uses github.com/gin-contrib/sse's exported Encode, which is what
// gin's Context.SSEvent and Render call.
func encodeGin(s *sink, id, typ, data string) ([]byte, error) {
	s.buf.Reset()
	err := ginsse.Encode(&s.buf, ginsse.Event{Id: id, Event: typ, Data: data})
	return s.buf.Bytes(), err
}

// encodeR3labs reproduces how github.com/r3labs/sse/v2 v2.10.0 writes an
// event. That library exports no encoder: its (*Server).ServeHTTP (http.go)
// formats each event it takes off the subscriber's channel straight into the
// http.ResponseWriter with fmt.Fprintf. The body below is that loop body
// copied verbatim, with the ResponseWriter replaced by the reused buffer,
// the TTL check and the Flush dropped, and Server.SplitData set (the only
// setting in which multi-line data comes out as valid data lines). Events
// go in as *r3sse.Event, the type Server.Publish takes, so the string to
// []byte conversions a caller needs are counted too. TestR3labsReproduction
// checks that the output is byte for byte what the real server writes.
func encodeR3labs(s *sink, id, typ, data string) ([]byte, error) {
	s.buf.Reset()
	ev := &r3sse.Event{ID: []byte(id), Event: []byte(typ), Data: []byte(data)}
	w := &s.buf
	const splitData = true

	// From (*Server).ServeHTTP, r3labs/sse/v2 v2.10.0, http.go.
	if len(ev.Data) == 0 && len(ev.Comment) == 0 {
		// The server ends the response here.
		return s.buf.Bytes(), nil
	}
	if len(ev.Data) > 0 {
		fmt.Fprintf(w, "id: %s\n", ev.ID)

		if splitData {
			sd := bytes.Split(ev.Data, []byte("\n"))
			for i := range sd {
				fmt.Fprintf(w, "data: %s\n", sd[i])
			}
		} else {
			if bytes.HasPrefix(ev.Data, []byte(":")) {
				fmt.Fprintf(w, "%s\n", ev.Data)
			} else {
				fmt.Fprintf(w, "data: %s\n", ev.Data)
			}
		}

		if len(ev.Event) > 0 {
			fmt.Fprintf(w, "event: %s\n", ev.Event)
		}

		if len(ev.Retry) > 0 {
			fmt.Fprintf(w, "retry: %s\n", ev.Retry)
		}
	}

	if len(ev.Comment) > 0 {
		fmt.Fprintf(w, ": %s\n", ev.Comment)
	}

	fmt.Fprint(w, "\n")
	return s.buf.Bytes(), nil
}

// BenchmarkEncode encodes one event (id "13435", type "message", a
// multi-line payload of each size) per iteration with every library.
func BenchmarkEncode(b *testing.B) {
	for _, sz := range sizes {
		data := payload(sz.Size)
		for _, enc := range encoders {
			b.Run(sz.Name+"/"+enc.name, func(b *testing.B) {
				var s sink
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					if _, err := enc.encode(&s, eventID, eventType, data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
