package lambdalocal

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config, Lambda's where Lambda has one.
const (
	DefaultEnvironments       = 4
	DefaultQueueTimeout       = 2 * time.Second
	DefaultTimeout            = 15 * time.Minute // Lambda's maximum (its default is 3 s)
	DefaultInitTimeout        = 10 * time.Second // Lambda's init phase limit
	DefaultMaxRequestBytes    = 6 << 20          // 6291456, Lambda's invocation payload limit
	DefaultRequestReadTimeout = 10 * time.Second
	DefaultMaxResponseBytes   = 200 << 20 // Lambda's streamed response limit
	DefaultFunctionName       = "function"
	DefaultRegion             = "us-east-1"
	DefaultMemorySize         = 128 // MB, Lambda's default
	DefaultHandler            = "bootstrap"
)

// Fixed limits of Lambda the emulator applies.
const (
	// maxBufferedResponse bounds a buffered (not streamed) response.
	maxBufferedResponse = 6 << 20
	// maxPrelude bounds the JSON prelude of a streamed response.
	maxPrelude = 64 << 10
	// freeBandwidthBytes is how much of a stream flows uncapped with
	// LimitBandwidth; bandwidthCap is the rate after.
	freeBandwidthBytes = 6 << 20
	bandwidthCap       = 2 << 20 // bytes per second
	// clientWriteTimeout bounds each write to a client, so that a client
	// that stops reading cannot hold an environment forever.
	clientWriteTimeout = 30 * time.Second
	// accountID is the account of the emulated function's ARN.
	accountID = "000000000000"
)

// Config configures an Emulator. Only Command is required.
type Config struct {
	// Command is the function's bootstrap command and its arguments, e.g.
	// {"./bootstrap"}: a program built with aws-lambda-go (lambda.Start) or
	// any other runtime that speaks the Lambda Runtime API. Make it exec
	// the function rather than fork it (see the package doc on Pdeathsig).
	Command []string
	// Env is added to the environment of every environment's process,
	// after the inherited and the Lambda variables, so it can override
	// them ("KEY=value" entries).
	Env []string
	// Dir is the working directory of the processes, and LAMBDA_TASK_ROOT.
	// Empty means the emulator's working directory.
	Dir string

	// Environments is how many execution environments (processes) may
	// run at once: the function's concurrency limit. Zero means
	// DefaultEnvironments (4).
	Environments int
	// QueueTimeout is how long a request waits for an environment when
	// all of them are busy before it is answered 429. Zero means
	// DefaultQueueTimeout (2 s); negative means no wait.
	QueueTimeout time.Duration
	// Freeze stops (SIGSTOP) idle environments and continues (SIGCONT)
	// them when an invocation arrives, as Lambda freezes environments
	// between invocations. Unix only. Off in the zero Config; turn it on
	// to see what a function's timers and background goroutines really
	// get to do on Lambda.
	Freeze bool
	// Timeout is the function timeout: an invocation running longer is
	// ended and its environment killed. Zero means DefaultTimeout (15 min).
	Timeout time.Duration
	// InitTimeout bounds an environment's init phase, from its start
	// until its runtime first asks for an invocation. Zero means
	// DefaultInitTimeout (10 s).
	InitTimeout time.Duration

	// MaxRequestBytes bounds a request's body and the event made of it
	// (413 beyond). Zero means DefaultMaxRequestBytes (6 MiB).
	MaxRequestBytes int64
	// RequestReadTimeout bounds the reading of a request's body (408
	// beyond). Zero means DefaultRequestReadTimeout (10 s).
	RequestReadTimeout time.Duration
	// MaxResponseBytes bounds a streamed response; the stream is cut
	// beyond. Zero means DefaultMaxResponseBytes (200 MiB).
	MaxResponseBytes int64
	// LimitBandwidth caps streamed responses at 2 MiB/s after their first
	// 6 MiB, as Lambda does.
	LimitBandwidth bool

	// FunctionName is AWS_LAMBDA_FUNCTION_NAME and part of the function
	// ARN. Empty means DefaultFunctionName.
	FunctionName string
	// Region is AWS_REGION. Empty means DefaultRegion.
	Region string
	// MemorySize is AWS_LAMBDA_FUNCTION_MEMORY_SIZE in MB (advertised
	// only, not enforced). Zero means DefaultMemorySize (128).
	MemorySize int
	// Handler is _HANDLER. Empty means DefaultHandler ("bootstrap").
	Handler string

	// Output receives the output of the processes and the emulator's log
	// lines, each prefixed with "[env N] ". Nil means os.Stderr.
	Output io.Writer
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() (Config, error) {
	if len(c.Command) == 0 || c.Command[0] == "" {
		return c, errors.New("lambdalocal: Config.Command is empty")
	}
	if c.Freeze && !canFreeze {
		return c, errors.New("lambdalocal: Config.Freeze needs SIGSTOP and SIGCONT (Unix)")
	}
	c.Command = slices.Clone(c.Command)
	c.Env = slices.Clone(c.Env)
	if c.Environments <= 0 {
		c.Environments = DefaultEnvironments
	}
	if c.QueueTimeout == 0 {
		c.QueueTimeout = DefaultQueueTimeout
	} else if c.QueueTimeout < 0 {
		c.QueueTimeout = 0
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.InitTimeout <= 0 {
		c.InitTimeout = DefaultInitTimeout
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.RequestReadTimeout <= 0 {
		c.RequestReadTimeout = DefaultRequestReadTimeout
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if c.FunctionName == "" {
		c.FunctionName = DefaultFunctionName
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.MemorySize <= 0 {
		c.MemorySize = DefaultMemorySize
	}
	if c.Handler == "" {
		c.Handler = DefaultHandler
	}
	if c.Output == nil {
		c.Output = os.Stderr
	}
	if c.Dir != "" {
		dir, err := filepath.Abs(c.Dir)
		if err != nil {
			return c, fmt.Errorf("lambdalocal: Config.Dir: %v", err)
		}
		c.Dir = dir
	}
	return c, nil
}

// shutdownGrace is how long Close waits after SIGTERM for a process that
// registered an extension, as Lambda's shutdown phase. A variable only so
// that tests can make it long enough not to depend on the machine's speed.
var shutdownGrace = 500 * time.Millisecond

// Emulator is a local Lambda function URL: an http.Handler that invokes
// the function in its execution environments. Create it with New and
// Close it to kill the environments.
type Emulator struct {
	cfg      Config
	arn      string
	taskRoot string
	outMu    sync.Mutex // serializes writes to cfg.Output

	mu      sync.Mutex
	closed  bool
	idle    []*instance // waiting in /next, most recently idle last
	waiters []*waiter   // requests waiting for an environment, oldest first
	live    []*instance // started and not yet gone, oldest first
	lastID  int
	wg      sync.WaitGroup // one per instance, until it is gone

	invocations atomic.Int64
	throttled   atomic.Int64
	coldStarts  atomic.Int64
}

// New starts an Emulator with one environment, and returns once that
// environment's runtime has asked for its first invocation. It fails if
// the environment dies or reports an init error before, or takes longer
// than Config.InitTimeout.
func New(cfg Config) (*Emulator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Emulator{
		cfg: cfg,
		arn: fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", cfg.Region, accountID, cfg.FunctionName),
	}
	e.taskRoot = cfg.Dir
	if e.taskRoot == "" {
		if e.taskRoot, err = os.Getwd(); err != nil {
			return nil, fmt.Errorf("lambdalocal: %v", err)
		}
	}
	e.mu.Lock()
	in := e.newInstanceLocked(nil)
	e.mu.Unlock()
	if err := in.start(); err != nil {
		_ = e.Close()
		return nil, err
	}
	timer := time.NewTimer(cfg.InitTimeout)
	defer timer.Stop()
	select {
	case <-in.readyc:
		return e, nil
	case <-in.dead:
		err = fmt.Errorf("lambdalocal: the first environment failed: %s", in.deathReason())
	case <-timer.C:
		in.kill("init timed out")
		err = fmt.Errorf("lambdalocal: the first environment did not ask for an invocation within %v", cfg.InitTimeout)
	}
	_ = e.Close()
	return nil, err
}

// Close kills every environment and waits for their processes to end.
// Processes that registered an extension (aws-lambda-go's
// WithEnableSIGTERM) get SIGTERM and up to 500 ms first, as on Lambda;
// the others get SIGKILL at once. Requests still being served end with an
// error; new ones are answered 503. Close always returns nil.
func (e *Emulator) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.wg.Wait()
		return nil
	}
	e.closed = true
	for _, w := range e.waiters {
		w.deliverLocked(acquired{err: errClosed})
	}
	e.waiters = nil
	e.idle = nil
	live := slices.Clone(e.live)
	e.mu.Unlock()

	var wg sync.WaitGroup
	for _, in := range live {
		wg.Go(in.shutdown)
	}
	wg.Wait()
	e.wg.Wait()
	return nil
}

// closing reports whether Close was called.
func (e *Emulator) closing() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// Stats is a snapshot of an Emulator's state, for tests and dashboards.
type Stats struct {
	// Invocations is how many invocations were handed to environments.
	Invocations int64
	// Throttled is how many requests were answered 429.
	Throttled int64
	// ColdStarts is how many environments were started.
	ColdStarts int64
	// Environments are the environments alive, oldest first.
	Environments []EnvironmentStats
}

// Busy returns how many environments are neither idle nor frozen.
func (s Stats) Busy() int {
	n := 0
	for _, env := range s.Environments {
		if env.State == StateBusy || env.State == StateInit {
			n++
		}
	}
	return n
}

// The states of an environment in EnvironmentStats.
const (
	StateInit   = "init"   // started, its runtime has not asked for work yet
	StateIdle   = "idle"   // its runtime waits for an invocation
	StateFrozen = "frozen" // idle and stopped (Config.Freeze)
	StateBusy   = "busy"   // running an invocation (or between its response and the next request for work)
)

// EnvironmentStats describes one execution environment.
type EnvironmentStats struct {
	// ID is the environment's number, as in its output prefix "[env ID] ".
	ID int
	// PID is its process's id.
	PID int
	// State is one of StateInit, StateIdle, StateFrozen and StateBusy.
	State string
	// Invocations is how many invocations it received.
	Invocations int64
}

// Stats returns a snapshot of e's state.
func (e *Emulator) Stats() Stats {
	e.mu.Lock()
	live := slices.Clone(e.live)
	e.mu.Unlock()
	s := Stats{
		Invocations: e.invocations.Load(),
		Throttled:   e.throttled.Load(),
		ColdStarts:  e.coldStarts.Load(),
	}
	for _, in := range live {
		s.Environments = append(s.Environments, in.stats())
	}
	return s
}

// logf writes one line of the emulator's own to Output.
func (e *Emulator) logf(format string, args ...any) {
	e.writeLine("[lambdalocal] ", fmt.Sprintf(format, args...))
}

// writeLine writes prefix, line and a newline to Output in one Write.
func (e *Emulator) writeLine(prefix, line string) {
	b := make([]byte, 0, len(prefix)+len(line)+1)
	b = append(append(append(b, prefix...), line...), '\n')
	e.outMu.Lock()
	_, _ = e.cfg.Output.Write(b)
	e.outMu.Unlock()
}

var _ http.Handler = (*Emulator)(nil)
