module github.com/ssebridge/ssebridge/bench

go 1.26.0

replace github.com/ssebridge/ssebridge => ../

require (
	github.com/gin-contrib/sse v1.1.2
	github.com/r3labs/sse/v2 v2.10.0
	github.com/ssebridge/ssebridge v0.0.0-00010101000000-000000000000
	github.com/tmaxmax/go-sse v0.12.0
)

require (
	golang.org/x/net v0.0.0-20191116160921-f9c825593386 // indirect
	gopkg.in/cenkalti/backoff.v1 v1.1.0 // indirect
)
