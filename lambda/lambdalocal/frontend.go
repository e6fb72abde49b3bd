package lambdalocal

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// preludeContentType marks a streamed response that starts with a JSON
// prelude (events.LambdaFunctionURLStreamingResponse.ContentType).
const preludeContentType = "application/vnd.awslambda.http-integration-response"

// preludeEnd ends the prelude.
var preludeEnd = []byte{0, 0, 0, 0, 0, 0, 0, 0}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// ServeHTTP serves r as a function URL: it reads the body, maps the
// request to an event, waits for an environment and streams the
// function's response back. It returns when the function has ended its
// response, even if the client left before.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	requestID := newUUID()
	trace, runtimeTrace := traceIDs(r, now)
	h := w.Header()
	h.Set("X-Amzn-Requestid", requestID)
	h.Set("X-Amzn-Trace-Id", trace)

	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		awsError(w, http.StatusServiceUnavailable, "ServiceException", "Service Unavailable")
		return
	}
	body, ok := e.readBody(w, r)
	if !ok {
		return
	}
	event, err := buildEvent(r, body, requestID, trace, now)
	if err != nil {
		awsError(w, http.StatusInternalServerError, "ServiceException", err.Error())
		return
	}
	if int64(len(event)) > e.cfg.MaxRequestBytes {
		e.requestTooLarge(w)
		return
	}

	in, err := e.acquire(r.Context())
	if err != nil {
		switch {
		case errors.Is(err, errThrottled):
			e.throttled.Add(1)
			awsError(w, http.StatusTooManyRequests, "TooManyRequestsException", "Rate Exceeded.")
		case errors.Is(err, errClosed):
			awsError(w, http.StatusServiceUnavailable, "ServiceException", "Service Unavailable")
		case r.Context().Err() != nil: // the client left while waiting
		default:
			e.logf("RequestId: %s: %v", requestID, err)
			internalError(w)
		}
		return
	}
	e.invoke(w, in, &invocation{
		id:    requestID,
		event: event,
		trace: runtimeTrace,
		resc:  make(chan result, 1),
	})
}

// readBody reads r's whole body within the limits, or answers r (413, 408
// or 400) and returns false.
func (e *Emulator) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	limit := e.cfg.MaxRequestBytes
	if r.ContentLength > limit {
		e.requestTooLarge(w)
		return nil, false
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	rc := http.NewResponseController(w)
	var body []byte
	var err error
	if rc.SetReadDeadline(time.Now().Add(e.cfg.RequestReadTimeout)) == nil {
		body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err == nil && int64(len(body)) <= limit {
			_ = rc.SetReadDeadline(time.Time{})
		}
	} else {
		body, err = readWithin(r.Body, limit+1, e.cfg.RequestReadTimeout)
	}
	switch {
	case int64(len(body)) > limit:
		e.requestTooLarge(w)
		return nil, false
	case isTimeout(err):
		w.Header().Set("Connection", "close")
		_ = rc.SetReadDeadline(time.Now())
		awsError(w, http.StatusRequestTimeout, "", fmt.Sprintf("Timed out after %v reading the request body.", e.cfg.RequestReadTimeout))
		return nil, false
	case err != nil:
		w.Header().Set("Connection", "close")
		awsError(w, http.StatusBadRequest, "", "Could not read the request body.")
		return nil, false
	}
	return body, true
}

var errReadTimeout = fmt.Errorf("read timed out: %w", os.ErrDeadlineExceeded)

// readWithin reads at most n bytes of body, giving up after d. It is for
// ResponseWriters without read deadlines; the read it gives up on goes on
// in the background until the client sends or leaves.
func readWithin(body io.Reader, n int64, d time.Duration) ([]byte, error) {
	type read struct {
		b   []byte
		err error
	}
	c := make(chan read, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(body, n))
		c <- read{b, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-c:
		return r.b, r.err
	case <-t.C:
		return nil, errReadTimeout
	}
}

func isTimeout(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (e *Emulator) requestTooLarge(w http.ResponseWriter) {
	// The rest of the body is not wanted: close, and do not wait for it.
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	awsError(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException",
		fmt.Sprintf("Request must be smaller than %d bytes for the InvokeFunction operation", e.cfg.MaxRequestBytes))
}

// awsError answers with an AWS service error: {"Message": msg}.
func awsError(w http.ResponseWriter, status int, errType, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if errType != "" {
		h.Set("X-Amzn-Errortype", errType)
	}
	b, _ := json.Marshal(map[string]string{"Message": msg})
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// internalError answers 502, as a function URL whose function failed.
func internalError(w http.ResponseWriter) {
	const msg = "Internal Server Error"
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	w.WriteHeader(http.StatusBadGateway)
	_, _ = io.WriteString(w, msg)
}

// invoke hands inv to in and serves its response. It aborts the client's
// connection (panic(http.ErrAbortHandler)) if the response broke after it
// had started.
func (e *Emulator) invoke(w http.ResponseWriter, in *instance, inv *invocation) {
	start := time.Now()
	timeout := e.cfg.Timeout
	inv.deadline = start.Add(timeout)
	inv.timer = time.AfterFunc(timeout, func() {
		inv.timedOut.Store(true)
		in.logf("%s %s Task timed out after %.2f seconds", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), inv.id, timeout.Seconds())
		in.kill("Task timed out")
	})
	in.logf("START RequestId: %s Version: $LATEST", inv.id)
	e.invocations.Add(1)
	in.invoc <- inv // never blocks: in was acquired for this invocation alone

	var res result
	select {
	case res = <-inv.resc:
	case <-in.dead:
		select {
		case res = <-inv.resc:
		default:
		}
	}
	abort := false
	switch {
	case res.resp != nil:
		abort = e.respond(w, in, inv, res.resp)
	case res.ferr != nil:
		in.logf("%s Invoke Error %s", inv.id, errorJSON(res.ferr))
		internalError(w)
	case res.noResponse:
		in.logf("%s the runtime asked for the next invocation without answering this one", inv.id)
		internalError(w)
	default:
		inv.timer.Stop()
		if !inv.timedOut.Load() {
			in.logf("%s the environment ended before answering: %s", inv.id, in.deathReason())
		}
		internalError(w)
	}
	d := time.Since(start)
	in.logf("END RequestId: %s", inv.id)
	in.logf("REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB",
		inv.id, ms(d), (d+time.Millisecond-1)/time.Millisecond, e.cfg.MemorySize)
	if abort {
		panic(http.ErrAbortHandler)
	}
}

func errorJSON(fe *functionError) string {
	b, _ := json.Marshal(fe)
	return string(b)
}

// respond serves a POST .../response, and reports whether the client's
// response must be aborted.
func (e *Emulator) respond(w http.ResponseWriter, in *instance, inv *invocation, res *runtimeResponse) bool {
	req := res.req
	mode := req.Header.Get(hdrResponseMode)
	streaming := strings.EqualFold(mode, "streaming")
	if mode != "" && !streaming {
		res.finish(inv, http.StatusBadRequest, "InvalidResponseModeHeader", "invalid "+hdrResponseMode+": "+mode)
		in.logf("%s invalid %s: %q", inv.id, hdrResponseMode, mode)
		internalError(w)
		return false
	}
	ct, _, _ := strings.Cut(req.Header.Get("Content-Type"), ";")
	ct = strings.TrimSpace(ct)
	switch {
	case strings.EqualFold(ct, preludeContentType):
		return e.stream(w, in, inv, res, true)
	case streaming:
		return e.stream(w, in, inv, res, false)
	}
	return e.buffered(w, in, inv, res)
}

// broken handles a response whose connection to the runtime broke: the
// environment was killed (timeout, Close), its process died, or its
// runtime gave up; it is killed if not already.
func (e *Emulator) broken(in *instance, inv *invocation, res *runtimeResponse, err error) {
	res.finish(inv, http.StatusBadRequest, "InvalidRequest", err.Error())
	if inv.timedOut.Load() || in.isDead() {
		return
	}
	in.logf("%s the response broke: %v", inv.id, err)
	in.kill("response broken: " + err.Error())
}

// trailerError returns the function error sent in the trailers of a
// response read to its end, if any.
func trailerError(req *http.Request) *functionError {
	typ := req.Trailer.Get(hdrErrorType)
	if typ == "" {
		return nil
	}
	fe := &functionError{ErrorType: typ}
	if b, err := base64.StdEncoding.DecodeString(req.Trailer.Get(hdrErrorBody)); err == nil {
		_ = json.Unmarshal(b, fe)
	}
	if fe.ErrorType == "" {
		fe.ErrorType = typ
	}
	return fe
}

// stream copies a streamed response to the client, flushing after every
// read. With prelude, the status, headers and cookies come first.
func (e *Emulator) stream(w http.ResponseWriter, in *instance, inv *invocation, res *runtimeResponse, prelude bool) (abort bool) {
	req := res.req
	s := &streamer{e: e, w: w, rc: http.NewResponseController(w)}
	defer s.end()
	if !prelude {
		ct := req.Header.Get("Content-Type")
		if ct == "" {
			ct = "application/octet-stream"
		}
		w.Header().Set("Content-Type", ct)
		s.writeHeader(http.StatusOK)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var pre []byte // the prelude so far
	var total int64
	limit := e.cfg.MaxResponseBytes
	for {
		n, err := req.Body.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			over := total+int64(n) > limit
			if over {
				chunk = chunk[:limit-total]
			}
			total += int64(len(chunk))
			if !s.started && prelude {
				pre = append(pre, chunk...)
				if i := bytes.Index(pre, preludeEnd); i >= 0 {
					if perr := s.writePrelude(pre[:i]); perr != nil {
						in.logf("%s invalid response prelude: %v", inv.id, perr)
						internalError(w)
						s.gone = true // the rest is discarded
						prelude = false
					} else {
						s.write(pre[i+len(preludeEnd):])
					}
					pre = nil
				} else if len(pre) > maxPrelude {
					res.finish(inv, http.StatusRequestEntityTooLarge, "Function.ResponseSizeTooLarge", "response prelude too large")
					in.logf("%s response prelude larger than %d bytes", inv.id, maxPrelude)
					internalError(w)
					return false
				}
			} else {
				s.write(chunk)
			}
			if over {
				res.finish(inv, http.StatusRequestEntityTooLarge, "Function.ResponseSizeTooLarge",
					fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", limit))
				in.logf("%s response stream cut after %d bytes (Config.MaxResponseBytes)", inv.id, limit)
				return s.failed()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			e.broken(in, inv, res, err)
			return s.failed()
		}
	}
	fe := trailerError(req)
	res.finish(inv, http.StatusAccepted, "", "")
	if fe != nil {
		in.logf("%s Invoke Error (mid-stream) %s", inv.id, errorJSON(fe))
		return s.failed()
	}
	if !s.started && prelude {
		in.logf("%s the response ended before its prelude did", inv.id)
		internalError(w)
	}
	return false
}

// streamer writes a streamed response to the client.
type streamer struct {
	e       *Emulator
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool      // the function's status and headers were sent
	gone    bool      // the client left (or got an error): discard
	written int64     // body bytes written
	capped  time.Time // when the bandwidth cap started
}

// failed ends a stream that broke: it reports whether the client's
// response must be aborted, or answers it 502 if nothing was sent yet.
func (s *streamer) failed() (abort bool) {
	if s.started {
		return true
	}
	if !s.gone {
		internalError(s.w)
	}
	return false
}

func (s *streamer) writePrelude(b []byte) error {
	var p struct {
		StatusCode int               `json:"statusCode"`
		Headers    map[string]string `json:"headers"`
		Cookies    []string          `json:"cookies"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.StatusCode == 0 {
		p.StatusCode = http.StatusOK
	}
	if p.StatusCode < 200 || p.StatusCode > 999 {
		return fmt.Errorf("invalid statusCode %d", p.StatusCode)
	}
	h := s.w.Header()
	setHeaders(h, p.Headers, p.Cookies)
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/octet-stream") // no sniffing
	}
	s.writeHeader(p.StatusCode)
	return nil
}

func (s *streamer) writeHeader(status int) {
	s.started = true
	s.w.WriteHeader(status)
	_ = s.rc.SetWriteDeadline(time.Now().Add(clientWriteTimeout))
	if s.rc.Flush() != nil {
		s.gone = true
	}
}

// write writes p to the client and flushes, unless the client is gone.
func (s *streamer) write(p []byte) {
	if s.gone || len(p) == 0 {
		return
	}
	if s.e.cfg.LimitBandwidth {
		s.throttle(len(p))
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(clientWriteTimeout))
	if _, err := s.w.Write(p); err != nil {
		s.gone = true
		return
	}
	if s.rc.Flush() != nil {
		s.gone = true
	}
}

// throttle sleeps so that bytes after the first freeBandwidthBytes flow at
// bandwidthCap at most.
func (s *streamer) throttle(n int) {
	s.written += int64(n)
	over := s.written - freeBandwidthBytes
	if over <= 0 {
		return
	}
	if s.capped.IsZero() {
		s.capped = time.Now()
	}
	due := s.capped.Add(time.Duration(over * int64(time.Second) / bandwidthCap))
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
}

// end clears the write deadline, which would outlive the response on a
// kept-alive connection.
func (s *streamer) end() { _ = s.rc.SetWriteDeadline(time.Time{}) }

// unsafeResponseHeaders are headers of the function's the emulator does
// not pass on: it frames the response itself.
var unsafeResponseHeaders = map[string]bool{
	"Content-Length":    true,
	"Transfer-Encoding": true,
	"Connection":        true,
	"Keep-Alive":        true,
	"Trailer":           true,
	"Upgrade":           true,
}

func setHeaders(h http.Header, headers map[string]string, cookies []string) {
	for k, v := range headers {
		ck := http.CanonicalHeaderKey(k)
		if unsafeResponseHeaders[ck] {
			continue
		}
		h.Set(ck, v)
	}
	for _, c := range cookies {
		h.Add("Set-Cookie", c)
	}
}

// buffered serves a response that is not streamed: a function URL
// response JSON.
func (e *Emulator) buffered(w http.ResponseWriter, in *instance, inv *invocation, res *runtimeResponse) bool {
	req := res.req
	data, err := io.ReadAll(io.LimitReader(req.Body, maxBufferedResponse+1))
	if err != nil {
		e.broken(in, inv, res, err)
		internalError(w)
		return false
	}
	if len(data) > maxBufferedResponse {
		res.finish(inv, http.StatusRequestEntityTooLarge, "Function.ResponseSizeTooLarge",
			fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", maxBufferedResponse))
		in.logf("%s buffered response larger than %d bytes", inv.id, maxBufferedResponse)
		internalError(w)
		return false
	}
	fe := trailerError(req)
	res.finish(inv, http.StatusAccepted, "", "")
	if fe != nil {
		in.logf("%s Invoke Error %s", inv.id, errorJSON(fe))
		internalError(w)
		return false
	}
	status, body, err := parseBuffered(w.Header(), data)
	if err != nil {
		in.logf("%s invalid function URL response: %v", inv.id, err)
		internalError(w)
		return false
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return false
}

// parseBuffered interprets a buffered response as function URLs do: an
// object with statusCode is a response (status, headers, cookies, body);
// any other JSON value is the body of a 200 application/json response. It
// sets the headers on h.
func parseBuffered(h http.Header, data []byte) (int, []byte, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		h.Set("Content-Type", "application/json")
		return http.StatusOK, nil, nil
	}
	if !json.Valid(trimmed) {
		return 0, nil, errors.New("not JSON")
	}
	if trimmed[0] == '{' {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &probe); err != nil {
			return 0, nil, err
		}
		if _, ok := probe["statusCode"]; ok {
			var r struct {
				StatusCode      int               `json:"statusCode"`
				Headers         map[string]string `json:"headers"`
				Body            string            `json:"body"`
				IsBase64Encoded bool              `json:"isBase64Encoded"`
				Cookies         []string          `json:"cookies"`
			}
			if err := json.Unmarshal(trimmed, &r); err != nil {
				return 0, nil, err
			}
			if r.StatusCode < 200 || r.StatusCode > 999 {
				return 0, nil, fmt.Errorf("invalid statusCode %d", r.StatusCode)
			}
			body := []byte(r.Body)
			if r.IsBase64Encoded {
				b, err := base64.StdEncoding.DecodeString(r.Body)
				if err != nil {
					return 0, nil, fmt.Errorf("body: %v", err)
				}
				body = b
			}
			setHeaders(h, r.Headers, r.Cookies)
			if h.Get("Content-Type") == "" {
				h.Set("Content-Type", "application/json")
			}
			return r.StatusCode, body, nil
		}
	}
	h.Set("Content-Type", "application/json")
	return http.StatusOK, data, nil
}
