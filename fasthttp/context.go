package fasthttp

import (
	"context"
	"time"

	fh "github.com/valyala/fasthttp"
)

// doneContext is done when its fasthttp.Server shuts down (RequestCtx.Done)
// and has no values. One is shared by the requests of a server.
type doneContext struct {
	done <-chan struct{}
}

func (c *doneContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *doneContext) Done() <-chan struct{}       { return c.done }
func (c *doneContext) Value(any) any               { return nil }
func (c *doneContext) String() string              { return "fasthttp request context" }

func (c *doneContext) Err() error {
	select {
	case <-c.done:
		return context.Canceled
	default:
		return nil
	}
}

// valuesContext is a doneContext with a copy of the user values a
// middleware set on the RequestCtx.
type valuesContext struct {
	*doneContext
	values []userValue
}

type userValue struct{ key, value any }

// Value looks keys up as RequestCtx.UserValue does ([]byte keys are
// stored as strings).
func (c *valuesContext) Value(key any) any {
	if b, ok := key.([]byte); ok {
		key = string(b)
	}
	for _, kv := range c.values {
		if kv.key == key {
			return kv.value
		}
	}
	return nil
}

func (c *valuesContext) String() string { return "fasthttp request context with user values" }

// context returns the context for a request: the server's shared one, or,
// when a middleware set user values, one with a copy of them.
func (s *server) context(ctx *fh.RequestCtx) context.Context {
	done := ctx.Done()
	base := s.base.Load()
	if base == nil || base.done != done {
		// The first request, or the server was shut down and served again
		// (with a new done channel).
		base = &doneContext{done: done}
		s.base.Store(base)
	}
	var values []userValue
	ctx.VisitUserValuesAll(func(k, v any) {
		if v != nil {
			values = append(values, userValue{k, v})
		}
	})
	if values == nil {
		return base
	}
	return &valuesContext{doneContext: base, values: values}
}
