package lambdalocal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

var (
	errClosed    = errors.New("emulator closed")
	errThrottled = errors.New("all environments busy")
)

// errInit reports an environment that failed before it asked for work.
type errInit struct{ reason string }

func (e errInit) Error() string { return "environment init failed: " + e.reason }

// A waiter is a request waiting for an environment.
type waiter struct {
	ch   chan acquired // buffered: one delivery
	done bool          // delivered or given up; guarded by Emulator.mu
}

type acquired struct {
	in  *instance
	err error
}

// deliverLocked hands a to w unless w already has one or gave up. The
// caller holds Emulator.mu.
func (w *waiter) deliverLocked(a acquired) bool {
	if w.done {
		return false
	}
	w.done = true
	w.ch <- a
	return true
}

// acquire returns an idle environment for one invocation: the most
// recently idle one, else a new one (cold start) if fewer than
// Environments exist, else the first to become idle within QueueTimeout.
func (e *Emulator) acquire(ctx context.Context) (*instance, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, errClosed
	}
	for len(e.idle) > 0 {
		in := e.idle[len(e.idle)-1]
		e.idle = e.idle[:len(e.idle)-1]
		if !in.isDead() {
			e.mu.Unlock()
			return in, nil
		}
	}
	w := &waiter{ch: make(chan acquired, 1)}
	var cold *instance
	wait := e.cfg.QueueTimeout
	if len(e.live) < e.cfg.Environments {
		cold = e.newInstanceLocked(w)
		wait = e.cfg.InitTimeout
	} else {
		e.waiters = append(e.waiters, w)
	}
	e.mu.Unlock()

	if cold != nil {
		if err := cold.start(); err != nil {
			return nil, err
		}
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case a := <-w.ch:
		return a.in, a.err
	case <-timer.C:
	case <-ctx.Done():
	}
	e.mu.Lock()
	if w.done { // delivered meanwhile
		e.mu.Unlock()
		a := <-w.ch
		return a.in, a.err
	}
	w.done = true
	e.waiters = slices.DeleteFunc(e.waiters, func(x *waiter) bool { return x == w })
	ctxErr := ctx.Err()
	kill := false
	if cold != nil {
		if cold.reservedBy == w {
			cold.reservedBy = nil
		}
		// If the request went away, cold becomes idle for others once
		// ready. If its init timed out, it is killed, unless it was ready
		// once (then it is someone else's, or idle). That is decided here,
		// under e.mu, so that becomeIdle cannot hand it out before the kill.
		if ctxErr == nil && !cold.wasReady {
			cold.initTimedOut = true
			kill = true
		}
	}
	e.mu.Unlock()
	switch {
	case ctxErr != nil:
		return nil, ctxErr
	case cold != nil:
		msg := fmt.Sprintf("init timed out after %v", e.cfg.InitTimeout)
		if kill {
			cold.kill(msg)
		}
		return nil, errInit{msg}
	}
	return nil, errThrottled
}

// newInstanceLocked registers a new environment, reserved for w if not
// nil; the caller must then call its start method. The caller holds e.mu
// and has checked that e is not closed.
func (e *Emulator) newInstanceLocked(w *waiter) *instance {
	e.lastID++
	in := newInstance(e, e.lastID)
	in.reservedBy = w
	e.live = append(e.live, in)
	e.wg.Add(1)
	e.coldStarts.Add(1)
	return in
}

// becomeIdle records that in's runtime waits for work: it goes to the
// request it was started for, else to the oldest waiting request, else to
// the idle stack. It reports whether a request took it.
func (e *Emulator) becomeIdle(in *instance) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if in.initTimedOut { // too late: acquire kills it
		return false
	}
	in.wasReady = true
	if in.isDead() {
		return false
	}
	if w := in.reservedBy; w != nil {
		in.reservedBy = nil
		if w.deliverLocked(acquired{in: in}) {
			return true
		}
	}
	for len(e.waiters) > 0 {
		w := e.waiters[0]
		e.waiters = e.waiters[1:]
		if w.deliverLocked(acquired{in: in}) {
			return true
		}
	}
	if !e.closed {
		e.idle = append(e.idle, in)
	}
	return false
}

// removeIdle takes in off the idle stack, and reports whether it was there.
func (e *Emulator) removeIdle(in *instance) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := len(e.idle)
	e.idle = slices.DeleteFunc(e.idle, func(x *instance) bool { return x == in })
	return len(e.idle) < n
}

// gone forgets in, whose process has ended, and starts a replacement if in
// had been ready once (a function that fails its init is not restarted in
// a loop: the next request tries again).
func (e *Emulator) gone(in *instance) {
	e.mu.Lock()
	e.live = slices.DeleteFunc(e.live, func(x *instance) bool { return x == in })
	e.idle = slices.DeleteFunc(e.idle, func(x *instance) bool { return x == in })
	if w := in.reservedBy; w != nil {
		in.reservedBy = nil
		var err error = errInit{in.deathReason()}
		if e.closed {
			err = errClosed
		}
		w.deliverLocked(acquired{err: err})
	}
	var next *instance
	if !e.closed && in.wasReady && len(e.live) < e.cfg.Environments {
		next = e.newInstanceLocked(nil)
	}
	e.mu.Unlock()
	e.wg.Done()
	if next != nil {
		if err := next.start(); err != nil {
			e.logf("replacing env %d: %v", in.id, err)
		}
	}
}
