package bench

// The connection benchmarks run their server and their load generator each
// in a child process: the test binary started again with childEnv set to
// the role (see TestMain). The benchmark process only drives them, over
// each child's stdin and stdout, one command and one reply per line:
// "ok", "ok <detail>" or "err <message>". A child exits when its stdin
// ends, so it never outlives the benchmark.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// childEnv names the role of a child process: roleServer or
	// roleLoadgen.
	childEnv    = "SSEBRIDGE_BENCH_CHILD"
	roleServer  = "server"
	roleLoadgen = "loadgen"
)

// runChild runs the role named by childEnv; ok is false when the process is
// no child.
func runChild() (code int, ok bool) {
	switch os.Getenv(childEnv) {
	case roleServer:
		c := new(serverChild)
		return serveCommands(c.command, c.end), true
	case roleLoadgen:
		g := newLoadgen()
		return serveCommands(g.command, func() { g.closeAll() }), true
	}
	return 0, false
}

// raiseFileLimit raises RLIMIT_NOFILE's soft limit to the hard limit and
// returns the soft limit now in force.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}

// serveCommands answers the parent's commands on stdin/stdout until stdin
// ends, then runs end.
func serveCommands(command func([]string) (string, error), end func()) int {
	if _, err := raiseFileLimit(); err != nil {
		fmt.Fprintln(os.Stderr, "RLIMIT_NOFILE:", err)
	}
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		reply, err := command(f)
		switch {
		case err != nil:
			fmt.Fprintf(out, "err %s\n", strings.ReplaceAll(err.Error(), "\n", " | "))
		case reply != "":
			fmt.Fprintf(out, "ok %s\n", reply)
		default:
			fmt.Fprintln(out, "ok")
		}
		if err := out.Flush(); err != nil {
			return 1
		}
	}
	end()
	return 0
}

// child is the benchmark's handle on a child process.
type child struct {
	tb   testing.TB
	role string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	once sync.Once
}

// startChild starts a child process in role, stopped when tb ends if not
// before.
func startChild(tb testing.TB, role string) *child {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &child{tb: tb, role: role, cmd: cmd, in: in, out: bufio.NewReader(out)}
	tb.Cleanup(c.stop)
	return c
}

// stop ends the process: its stdin ends, it closes what it holds and
// exits.
func (c *child) stop() {
	c.once.Do(func() {
		_ = c.in.Close()
		done := make(chan error, 1)
		go func() { done <- c.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				c.tb.Errorf("%s process: %v", c.role, err)
			}
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
			c.tb.Errorf("%s process did not exit: killed", c.role)
		}
	})
}

// do sends one command and returns the reply's detail; a failure fails tb.
func (c *child) do(format string, args ...any) string {
	c.tb.Helper()
	cmd := fmt.Sprintf(format, args...)
	if _, err := io.WriteString(c.in, cmd+"\n"); err != nil {
		c.tb.Fatalf("%s process: %s: %v", c.role, cmd, err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		c.tb.Fatalf("%s process: %s: %v", c.role, cmd, err)
	}
	line = strings.TrimSuffix(line, "\n")
	if rest, ok := strings.CutPrefix(line, "err "); ok {
		c.tb.Fatalf("%s process: %s: %s", c.role, cmd, rest)
	}
	if line == "ok" {
		return ""
	}
	rest, ok := strings.CutPrefix(line, "ok ")
	if !ok {
		c.tb.Fatalf("%s process: %s: unexpected reply %q", c.role, cmd, line)
	}
	return rest
}
