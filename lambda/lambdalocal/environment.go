package lambdalocal

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ssebridge/ssebridge/internal/proc"
)

// An instance is one execution environment: a process, its Runtime API
// server and its state. When its process ends, the instance is gone for
// good (a replacement is a new instance).
type instance struct {
	e      *Emulator
	id     int
	prefix string
	out    *lineWriter
	invoc  chan *invocation // the next invocation; buffered, one at a time
	readyc chan struct{}    // closed when the runtime first asks for work
	dead   chan struct{}    // closed by kill
	exited chan struct{}    // closed when the process has been waited for

	// Guarded by e.mu.
	reservedBy   *waiter // the request this cold start is for
	wasReady     bool    // it asked for work once
	initTimedOut bool    // acquire gave up on its init and kills it

	mu          sync.Mutex
	srv         *http.Server
	cmd         *exec.Cmd
	started     time.Time
	ready       bool
	inNext      bool // its runtime waits in GET /next
	frozen      bool
	stopping    bool // shutdown began: never frozen again
	killed      bool
	reaped      bool        // the process exited: supervise reaps it, no signals
	reason      string      // why it was killed
	cur         *invocation // handed to the runtime, not finished
	curAnswered bool        // the runtime posted a response or error for cur
	invocations int64
	extension   bool // an extension registered
}

func newInstance(e *Emulator, id int) *instance {
	prefix := "[env " + strconv.Itoa(id) + "] "
	return &instance{
		e:      e,
		id:     id,
		prefix: prefix,
		out:    &lineWriter{e: e, prefix: prefix},
		invoc:  make(chan *invocation, 1),
		readyc: make(chan struct{}),
		dead:   make(chan struct{}),
		exited: make(chan struct{}),
	}
}

// start starts the Runtime API server and the process. On error the
// instance is gone.
func (in *instance) start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		in.failStart(err)
		return fmt.Errorf("lambdalocal: env %d: %v", in.id, err)
	}
	srv := &http.Server{
		Handler:           in.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.Serve(ln) }()

	cfg := &in.e.cfg
	cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
	cmd.Env = in.environ(ln.Addr().String())
	cmd.Dir = cfg.Dir
	cmd.Stdout = in.out
	cmd.Stderr = in.out
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = time.Second // a grandchild holding the output pipe must not block Wait

	in.mu.Lock()
	in.srv = srv
	if in.killed { // Close came first
		in.mu.Unlock()
		_ = srv.Close()
		in.failStart(errClosed)
		return errClosed
	}
	in.cmd = cmd
	err = proc.Start(cmd)
	in.started = time.Now()
	in.mu.Unlock()
	if err != nil {
		_ = srv.Close()
		in.failStart(err)
		return fmt.Errorf("lambdalocal: env %d: %v", in.id, err)
	}
	go in.supervise()
	return nil
}

// failStart makes an instance whose process never started gone.
func (in *instance) failStart(err error) {
	in.mu.Lock()
	if !in.killed {
		in.killed = true
		in.reason = err.Error()
		close(in.dead)
	}
	in.mu.Unlock()
	close(in.exited)
	in.e.gone(in)
}

// environ returns the process's environment: the emulator's, then Lambda's
// variables, then Config.Env.
func (in *instance) environ(api string) []string {
	cfg := &in.e.cfg
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "_LAMBDA_SERVER_PORT", "AWS_LAMBDA_MAX_CONCURRENCY": // other modes of aws-lambda-go
			continue
		}
		env = append(env, kv)
	}
	var stream [16]byte
	_, _ = rand.Read(stream[:])
	env = append(env,
		"AWS_LAMBDA_RUNTIME_API="+api,
		"AWS_LAMBDA_FUNCTION_NAME="+cfg.FunctionName,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+strconv.Itoa(cfg.MemorySize),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/"+cfg.FunctionName,
		"AWS_LAMBDA_LOG_STREAM_NAME="+time.Now().UTC().Format("2006/01/02")+"/[$LATEST]"+hex.EncodeToString(stream[:]),
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_REGION="+cfg.Region,
		"AWS_DEFAULT_REGION="+cfg.Region,
		"_HANDLER="+cfg.Handler,
		"LAMBDA_TASK_ROOT="+in.e.taskRoot,
		"TZ=:UTC",
	)
	return append(env, cfg.Env...)
}

// supervise waits for the process to end, then makes the instance gone.
//
// The process group is named by the leader's pid, which the system may
// reuse once the leader has been reaped and no member of its group is
// left. So, where waitExit can, the group is killed (what the process
// forked, if anything is left) while the exited leader is not yet reaped,
// and kill stops signalling before the reap. Elsewhere, the group is killed
// just after the reap, and kill may signal between the reap and
// in.reaped: in that tiny window, a new group with the same id could get
// a signal meant for this one.
func (in *instance) supervise() {
	early := waitExit(in.cmd.Process.Pid)
	if early {
		in.setReaped()
		killGroup(in.cmd.Process)
	}
	err := in.cmd.Wait()
	if !early {
		in.setReaped()
		killGroup(in.cmd.Process)
	}
	close(in.exited)
	in.out.flush()
	in.mu.Lock()
	ours := in.killed
	in.mu.Unlock()
	reason := "Runtime.ExitError: " + exitStatus(err)
	if !ours {
		in.logf("process exited: %s", exitStatus(err))
	}
	in.kill(reason)
	in.e.gone(in)
}

// setReaped records that the process has exited and is (about to be)
// reaped: signals to its group are no longer sent, but by supervise.
func (in *instance) setReaped() {
	in.mu.Lock()
	in.reaped = true
	in.mu.Unlock()
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// kill kills the process (continuing it first if frozen) and closes the
// Runtime API server. The first reason sticks.
func (in *instance) kill(reason string) {
	in.mu.Lock()
	if in.killed {
		in.mu.Unlock()
		return
	}
	in.killed = true
	in.reason = reason
	close(in.dead)
	if in.cmd != nil && in.cmd.Process != nil && !in.reaped {
		if in.frozen {
			_ = contGroup(in.cmd.Process)
		}
		killGroup(in.cmd.Process)
	}
	in.frozen = false
	srv := in.srv
	in.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	in.e.removeIdle(in)
}

// shutdown ends the instance for Close: SIGTERM and a grace period first
// if an extension registered, as Lambda's shutdown phase.
func (in *instance) shutdown() {
	in.mu.Lock()
	in.stopping = true // an invocation still running must not end in a freeze
	graceful := in.extension && !in.killed && in.cmd != nil && !in.reaped
	if graceful {
		if in.frozen {
			_ = contGroup(in.cmd.Process)
			in.frozen = false
		}
		_ = termGroup(in.cmd.Process)
	}
	in.mu.Unlock()
	if graceful {
		t := time.NewTimer(shutdownGrace)
		select {
		case <-in.exited:
		case <-t.C:
		}
		t.Stop()
	}
	in.kill("emulator closed")
}

// freeze stops the process if Config.Freeze is set, unless the emulator
// is closing: a process in its shutdown phase (SIGTERM) must run.
func (in *instance) freeze() {
	if !in.e.cfg.Freeze || in.e.closing() {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.killed || in.reaped || in.frozen || in.stopping || in.cmd == nil {
		return
	}
	if err := stopGroup(in.cmd.Process); err == nil {
		in.frozen = true
	}
}

// thaw continues the process if frozen.
func (in *instance) thaw() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.frozen && !in.killed && !in.reaped {
		_ = contGroup(in.cmd.Process)
	}
	in.frozen = false
}

func (in *instance) isDead() bool { return isClosed(in.dead) }

func (in *instance) deathReason() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.reason
}

func (in *instance) stats() EnvironmentStats {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := EnvironmentStats{ID: in.id, Invocations: in.invocations, State: StateBusy}
	if in.cmd != nil && in.cmd.Process != nil {
		s.PID = in.cmd.Process.Pid
	}
	switch {
	case !in.ready:
		s.State = StateInit
	case in.frozen:
		s.State = StateFrozen
	case in.inNext && in.cur == nil:
		s.State = StateIdle
	}
	return s
}

// logf writes a line of the emulator's about this environment to Output.
func (in *instance) logf(format string, args ...any) {
	in.e.writeLine(in.prefix, fmt.Sprintf(format, args...))
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// lineWriter writes a process's output to Output line by line, each line
// prefixed.
type lineWriter struct {
	e      *Emulator
	prefix string
	mu     sync.Mutex
	buf    []byte // an incomplete line
}

// maxLine bounds an incomplete line kept by lineWriter.
const maxLine = 64 << 10

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxLine {
				w.e.writeLine(w.prefix, string(w.buf))
				w.buf = w.buf[:0]
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.e.writeLine(w.prefix, string(w.buf))
		w.buf = w.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

// flush writes an incomplete last line.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.e.writeLine(w.prefix, string(w.buf))
		w.buf = w.buf[:0]
	}
}
