// Command testfn is the function lambdalocal's tests run in the emulator:
// an aws-lambda-go handler (lambda.Start, the real runtime loop) that
// routes on the first segment of the event's rawPath. Streamed responses are returned as a
// *events.LambdaFunctionURLStreamingResponse (a pointer: that is what
// makes aws-lambda-go stream), buffered ones as any JSON value.
//
// Environment: TESTFN_INIT_EXIT=N exits with status N before lambda.Start;
// TESTFN_INIT_ERROR=1 posts an init error and waits; TESTFN_SIGTERM=1
// starts with lambda.WithEnableSIGTERM and prints "SIGTERM" when it comes,
// then, with TESTFN_SIGTERM_GATE=URL, GETs URL and prints "shutdown done";
// TESTFN_INIT_ONCE=FILE exits with status 4 at init if FILE exists, else
// creates it (only the first environment starts); with TESTFN_INIT_HANG=1,
// it hangs at init instead of exiting.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

// event is the function URL request, and the JSON it came as.
type event struct {
	events.LambdaFunctionURLRequest
	raw []byte
}

func (e *event) UnmarshalJSON(b []byte) error {
	e.raw = bytes.Clone(b)
	return json.Unmarshal(b, &e.LambdaFunctionURLRequest)
}

// ticks counts 10 ms ticks of a background goroutine: it stands still
// while the environment is frozen.
var ticks atomic.Int64

func main() {
	if s := os.Getenv("TESTFN_INIT_EXIT"); s != "" {
		n, _ := strconv.Atoi(s)
		fmt.Println("exiting at init with status", n)
		os.Exit(n)
	}
	if marker := os.Getenv("TESTFN_INIT_ONCE"); marker != "" {
		if _, err := os.Stat(marker); err == nil {
			if os.Getenv("TESTFN_INIT_HANG") == "1" {
				fmt.Println("not the first start: hanging")
				time.Sleep(time.Minute)
			}
			fmt.Println("not the first start: exiting with status 4")
			os.Exit(4)
		}
		_ = os.WriteFile(marker, nil, 0o600)
	}
	if os.Getenv("TESTFN_INIT_ERROR") == "1" {
		url := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/init/error"
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"errorMessage":"bad config","errorType":"InitError"}`))
		if err == nil {
			fmt.Println("init error posted:", resp.Status)
			resp.Body.Close()
		}
		time.Sleep(time.Minute)
	}
	go func() {
		for range time.Tick(10 * time.Millisecond) {
			ticks.Add(1)
		}
	}()
	var opts []lambda.Option
	if os.Getenv("TESTFN_SIGTERM") == "1" {
		opts = append(opts, lambda.WithEnableSIGTERM(func() {
			fmt.Println("SIGTERM")
			if gate := os.Getenv("TESTFN_SIGTERM_GATE"); gate != "" {
				// A shutdown phase that lasts until the test ends it.
				if resp, err := http.Get(gate); err == nil {
					resp.Body.Close()
				}
				fmt.Println("shutdown done")
			}
			os.Exit(0)
		}))
	}
	lambda.StartWithOptions(handle, opts...)
}

func streamOf(contentType string, body io.Reader) *events.LambdaFunctionURLStreamingResponse {
	return &events.LambdaFunctionURLStreamingResponse{
		StatusCode: http.StatusOK,
		Headers:    map[string]string{"Content-Type": contentType},
		Body:       body,
	}
}

func handle(ctx context.Context, ev *event) (any, error) {
	q := ev.QueryStringParameters
	atoi := func(name string, def int) int {
		if n, err := strconv.Atoi(q[name]); err == nil {
			return n
		}
		return def
	}
	route, _, _ := strings.Cut(strings.TrimPrefix(ev.RawPath, "/"), "/")
	switch "/" + route {
	case "/echo":
		return streamOf("application/json", bytes.NewReader(ev.raw)), nil

	case "/first":
		return streamOf("text/event-stream", strings.NewReader("data: hi\n\n")), nil

	case "/stream":
		// n events; after each, wait for the gate (the test has seen it)
		// or for delay ms.
		n, delay, gate := atoi("n", 3), atoi("delay", 0), q["gate"]
		r, w := io.Pipe()
		go func() {
			for i := range n {
				if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
					return
				}
				if gate != "" {
					resp, err := http.Get(gate + "?i=" + strconv.Itoa(i))
					if err != nil {
						w.CloseWithError(err)
						return
					}
					resp.Body.Close()
				} else {
					time.Sleep(time.Duration(delay) * time.Millisecond)
				}
			}
			w.Close()
		}()
		return streamOf("text/event-stream", r), nil

	case "/fail-mid-stream":
		r, w := io.Pipe()
		go func() {
			fmt.Fprint(w, "data: 1\n\n")
			time.Sleep(50 * time.Millisecond)
			w.CloseWithError(errors.New("mid-stream failure"))
		}()
		return streamOf("text/event-stream", r), nil

	case "/sleep": // ignores its context, as a stuck function
		time.Sleep(time.Duration(atoi("ms", 0)) * time.Millisecond)
		return streamOf("text/plain", strings.NewReader("slept")), nil

	case "/fail":
		return nil, errors.New("boom")

	case "/panic":
		panic("kaboom")

	case "/exit":
		os.Exit(7)

	case "/buffered":
		return events.LambdaFunctionURLResponse{
			StatusCode:      201,
			Headers:         map[string]string{"Content-Type": "text/plain", "X-Test": "buffered"},
			Body:            base64.StdEncoding.EncodeToString([]byte("hello, buffered")),
			IsBase64Encoded: true,
			Cookies:         []string{"a=1", "b=2; Path=/"},
		}, nil

	case "/json":
		return map[string]string{"hello": "world"}, nil

	case "/cookies":
		return &events.LambdaFunctionURLStreamingResponse{
			StatusCode: http.StatusTeapot,
			Headers:    map[string]string{"Content-Type": "text/plain", "X-Test": "streamed"},
			Cookies:    []string{"c=3", "d=4; HttpOnly"},
			Body:       strings.NewReader("short and stout"),
		}, nil

	case "/ticks":
		return streamOf("text/plain", strings.NewReader(strconv.FormatInt(ticks.Load(), 10))), nil

	case "/env":
		vars := map[string]string{"pid": strconv.Itoa(os.Getpid())}
		for _, k := range strings.Split(q["vars"], ",") {
			vars[k] = os.Getenv(k)
		}
		if dl, ok := ctx.Deadline(); ok {
			vars["deadline"] = strconv.FormatInt(dl.UnixMilli(), 10)
		}
		b, _ := json.Marshal(vars)
		return streamOf("application/json", bytes.NewReader(b)), nil

	case "/big":
		return streamOf("application/octet-stream", io.LimitReader(zeros{}, int64(atoi("bytes", 0)))), nil
	}
	return &events.LambdaFunctionURLStreamingResponse{
		StatusCode: http.StatusNotFound,
		Body:       strings.NewReader("no route " + ev.RawPath),
	}, nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
