package lambdalocal

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Runtime API headers.
const (
	hdrRequestID    = "Lambda-Runtime-Aws-Request-Id"
	hdrDeadline     = "Lambda-Runtime-Deadline-Ms"
	hdrFunctionARN  = "Lambda-Runtime-Invoked-Function-Arn"
	hdrTraceID      = "Lambda-Runtime-Trace-Id"
	hdrResponseMode = "Lambda-Runtime-Function-Response-Mode"
	hdrErrorType    = "Lambda-Runtime-Function-Error-Type"
	hdrErrorBody    = "Lambda-Runtime-Function-Error-Body"
	hdrExtName      = "Lambda-Extension-Name"
	hdrExtID        = "Lambda-Extension-Identifier"
)

// maxErrorBody bounds the body of an error posted by the runtime.
const maxErrorBody = 1 << 20

// An invocation is one request handed to an environment.
type invocation struct {
	id       string
	event    []byte
	trace    string // Lambda-Runtime-Trace-Id
	deadline time.Time
	timer    *time.Timer // kills the environment at the deadline
	timedOut atomic.Bool
	resc     chan result // the runtime's answer; buffered, one
}

// result is the runtime's answer to an invocation: exactly one field set.
type result struct {
	resp       *runtimeResponse // POST .../response, being read
	ferr       *functionError   // POST .../error
	noResponse bool             // the runtime asked for more work instead
}

// runtimeResponse is a POST .../response whose body the front end reads;
// its handler waits for finish to answer the runtime.
type runtimeResponse struct {
	req  *http.Request
	once sync.Once
	done chan struct{}
	// Set before done is closed: what to answer the runtime.
	status  int
	errType string
	errMsg  string
}

// finish lets the handler answer the runtime: 202, or status with an
// error. It stops the invocation's deadline first, so that a function that
// ends in time is never killed afterwards.
func (r *runtimeResponse) finish(inv *invocation, status int, errType, errMsg string) {
	r.once.Do(func() {
		inv.timer.Stop()
		r.status, r.errType, r.errMsg = status, errType, errMsg
		close(r.done)
	})
}

// functionError is the body of POST .../error and of the error trailer.
type functionError struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
	StackTrace   any    `json:"stackTrace,omitempty"`
}

func (in *instance) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", in.handleNext)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", in.handleResponse)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", in.handleError)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", in.handleInitError)
	mux.HandleFunc("POST /2020-01-01/extension/register", in.handleExtRegister)
	mux.HandleFunc("GET /2020-01-01/extension/event/next", in.handleExtNext)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		runtimeError(w, http.StatusNotFound, "InvalidRequest", "unknown path "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// runtimeError answers the runtime with the Runtime API's error shape.
func runtimeError(w http.ResponseWriter, status int, errType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"errorMessage": msg, "errorType": errType})
	_, _ = w.Write(b)
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

// handleNext is GET /runtime/invocation/next: the environment is idle (and
// frozen, with Config.Freeze) until an invocation is handed to it.
func (in *instance) handleNext(w http.ResponseWriter, r *http.Request) {
	in.mu.Lock()
	if in.inNext || (in.cur != nil && in.curAnswered) {
		in.mu.Unlock()
		runtimeError(w, http.StatusBadRequest, "InvalidStateTransition",
			"a request for work is already waiting, or a response is still being sent")
		return
	}
	stale := in.cur
	in.cur = nil
	in.inNext = true
	first := !in.ready
	in.ready = true
	started := in.started
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		in.inNext = false
		in.mu.Unlock()
	}()
	if stale != nil {
		stale.timer.Stop()
		stale.resc <- result{noResponse: true}
	}
	if first {
		in.logf("INIT_REPORT Init Duration: %.2f ms", ms(time.Since(started)))
		close(in.readyc)
	}

	handed := in.e.becomeIdle(in)
	var inv *invocation
	select {
	case inv = <-in.invoc:
	default:
		if !handed {
			in.freeze()
		}
		select {
		case inv = <-in.invoc:
		case <-in.dead:
			return
		case <-r.Context().Done(): // the runtime went away (it cannot while frozen)
			in.e.removeIdle(in)
			in.thaw()
			return
		}
		in.thaw() // just before the invocation is handed over
	}

	in.mu.Lock()
	in.cur = inv
	in.curAnswered = false
	in.invocations++
	in.mu.Unlock()

	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(inv.event)))
	h.Set(hdrRequestID, inv.id)
	h.Set(hdrDeadline, strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set(hdrFunctionARN, in.e.arn)
	h.Set(hdrTraceID, inv.trace)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.event)
}

// answer returns the current invocation if its id is id and it has not
// been answered yet, and marks it answered.
func (in *instance) answer(id string) *invocation {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cur == nil || in.cur.id != id || in.curAnswered {
		return nil
	}
	in.curAnswered = true
	return in.cur
}

// finished forgets inv, answered, before the runtime hears it was
// accepted: the environment is busy until its runtime asks for more work.
func (in *instance) finished(inv *invocation) {
	in.mu.Lock()
	if in.cur == inv {
		in.cur = nil
	}
	in.mu.Unlock()
}

// handleResponse is POST /runtime/invocation/{id}/response: the front end
// reads the body (streamed or not) and the runtime hears 202 when it is
// done.
func (in *instance) handleResponse(w http.ResponseWriter, r *http.Request) {
	inv := in.answer(r.PathValue("id"))
	if inv == nil {
		runtimeError(w, http.StatusBadRequest, "InvalidRequestID", "no invocation in progress with request id "+r.PathValue("id"))
		return
	}
	res := &runtimeResponse{req: r, done: make(chan struct{})}
	inv.resc <- result{resp: res}
	select {
	case <-res.done:
	case <-in.dead:
		return
	}
	in.finished(inv)
	if res.status != http.StatusAccepted {
		// Do not wait for the rest of a body that broke a limit.
		w.Header().Set("Connection", "close")
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
		runtimeError(w, res.status, res.errType, res.errMsg)
		return
	}
	accepted(w)
}

// handleError is POST /runtime/invocation/{id}/error.
func (in *instance) handleError(w http.ResponseWriter, r *http.Request) {
	inv := in.answer(r.PathValue("id"))
	if inv == nil {
		runtimeError(w, http.StatusBadRequest, "InvalidRequestID", "no invocation in progress with request id "+r.PathValue("id"))
		return
	}
	fe := readFunctionError(r)
	inv.timer.Stop()
	in.finished(inv)
	inv.resc <- result{ferr: fe}
	accepted(w)
}

func readFunctionError(r *http.Request) *functionError {
	b, _ := io.ReadAll(io.LimitReader(r.Body, maxErrorBody))
	fe := new(functionError)
	if json.Unmarshal(b, fe) != nil {
		fe.ErrorMessage = string(b)
	}
	if fe.ErrorType == "" {
		fe.ErrorType = r.Header.Get(hdrErrorType)
	}
	if fe.ErrorType == "" {
		fe.ErrorType = "Unknown"
	}
	return fe
}

// handleInitError is POST /runtime/init/error: the environment is killed
// and the request waiting for it gets 502.
func (in *instance) handleInitError(w http.ResponseWriter, r *http.Request) {
	fe := readFunctionError(r)
	in.logf("INIT_ERROR %s: %s", fe.ErrorType, fe.ErrorMessage)
	accepted(w)
	_ = http.NewResponseController(w).Flush()
	in.kill("Runtime.InitError: " + fe.ErrorType + ": " + fe.ErrorMessage)
}

// handleExtRegister is POST /2020-01-01/extension/register, enough for
// aws-lambda-go's internal SIGTERM extension (lambda.WithEnableSIGTERM):
// Close sends SIGTERM before SIGKILL to an environment that registered.
func (in *instance) handleExtRegister(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxErrorBody))
	in.mu.Lock()
	in.extension = true
	in.mu.Unlock()
	w.Header().Set(hdrExtID, newUUID())
	w.Header().Set("Content-Type", "application/json")
	b, _ := json.Marshal(map[string]string{
		"functionName":    in.e.cfg.FunctionName,
		"functionVersion": "$LATEST",
		"handler":         in.e.cfg.Handler,
	})
	_, _ = w.Write(b)
}

// handleExtNext is GET /2020-01-01/extension/event/next: it blocks until
// the environment ends (no INVOKE events are sent).
func (in *instance) handleExtNext(w http.ResponseWriter, r *http.Request) {
	select {
	case <-in.dead:
	case <-r.Context().Done():
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
