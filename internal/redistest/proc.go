package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	childproc "github.com/ssebridge/ssebridge/internal/proc"
)

// busPortOffset is the distance from a cluster node's port to its cluster
// bus port, Redis's default.
const busPortOffset = 10000

// errPortInUse reports a redis-server that exited because its port (or
// cluster bus port) was taken.
var errPortInUse = errors.New("port already in use")

// freePort returns a port of 127.0.0.1 that was free a moment ago, found by
// listening on port 0 and closing. With bus, port+10000 is free too.
func freePort(bus bool) (int, error) {
	var lastErr error
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if bus {
			if port+busPortOffset > 65535 {
				_ = l.Close()
				lastErr = fmt.Errorf("port %d: no room for its bus port", port)
				continue
			}
			lb, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+busPortOffset))
			if err != nil {
				_ = l.Close()
				lastErr = err
				continue
			}
			_ = lb.Close()
		}
		_ = l.Close()
		return port, nil
	}
	return 0, lastErr
}

// proc is a running redis-server process.
type proc struct {
	cmd  *exec.Cmd
	out  *tailBuffer   // its stdout and stderr
	done chan struct{} // closed when the process has ended and been waited for
	err  error         // the result of Wait, set before done is closed
}

// kill kills the process with SIGKILL and waits for it to end.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill() // fails only if it has ended already
	<-p.done
}

// launch starts redis-server bin with args and waits up to timeout for it
// to answer PING on 127.0.0.1:port as itself (INFO's process_id is its
// pid, not that of a process that took the port first). It returns an
// error wrapping errPortInUse if the server exits because the port is
// taken. On error, no process is left running.
func launch(bin string, args []string, port int, timeout time.Duration) (*proc, error) {
	out := &tailBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := childproc.Start(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %v", bin, err)
	}
	p := &proc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(timeout)
	var probeErr error
	for {
		select {
		case <-p.done:
			log := out.String()
			if strings.Contains(strings.ToLower(log), "already in use") {
				return nil, fmt.Errorf("redis-server on %s: %w:\n%s", addr, errPortInUse, tail(log, 20))
			}
			return nil, fmt.Errorf("redis-server on %s exited (%v) before answering PING; its output:\n%s", addr, p.err, tail(log, 40))
		default:
		}
		pid, err := probe(addr)
		if err == nil && pid == cmd.Process.Pid {
			return p, nil
		}
		if err == nil {
			err = fmt.Errorf("answered by another redis-server (pid %d, not %d)", pid, cmd.Process.Pid)
		}
		probeErr = err
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("redis-server on %s did not answer PING within %v (last error: %v); its output:\n%s",
				addr, timeout, probeErr, tail(out.String(), 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probe sends PING and INFO server to the Redis server at addr and returns
// its process_id; it fails unless PING gets PONG.
func probe(addr string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := io.WriteString(conn, "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line != "+PONG\r\n" {
		return 0, fmt.Errorf("PING: %q", strings.TrimSpace(line))
	}
	line, err = r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(line, "$") {
		return 0, fmt.Errorf("INFO server: %q", strings.TrimSpace(line))
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("INFO server: %q", strings.TrimSpace(line))
	}
	body := make([]byte, n+2)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(l, "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server: no process_id")
}

// tailBufferMax bounds what a tailBuffer keeps.
const tailBufferMax = 64 << 10

// tailBuffer is an io.Writer, safe for concurrent use, that keeps the last
// tailBufferMax bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - tailBufferMax; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

// String returns what the buffer holds.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
