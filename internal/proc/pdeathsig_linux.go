package proc

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// Start starts cmd with Pdeathsig set, so that the kernel kills the
// process with SIGKILL when its parent dies and a crashed parent does not
// leak children. Other fields of cmd.SysProcAttr, if set, are kept.
//
// Pdeathsig fires when the thread that started the child ends, not the
// process (golang.org/issue/27505), so every process is started from one
// goroutine locked to its thread for the life of the parent.
func Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	errc := make(chan error, 1)
	starter() <- func() { errc <- cmd.Start() }
	return <-errc
}

// starter returns the channel of the goroutine that starts the processes.
var starter = sync.OnceValue(func() chan<- func() {
	ch := make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		for f := range ch {
			f()
		}
	}()
	return ch
})
