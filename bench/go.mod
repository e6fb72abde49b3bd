module github.com/ssebridge/ssebridge/bench

go 1.26.0

replace github.com/ssebridge/ssebridge => ../

require (
	github.com/gin-contrib/sse v1.1.2
	github.com/r3labs/sse/v2 v2.10.0
	github.com/ssebridge/ssebridge v0.0.0-00010101000000-000000000000
	github.com/tmaxmax/go-sse v0.12.0
	github.com/valyala/fasthttp v1.78.0
)

require (
	github.com/goccy/go-json v0.12.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/molecule-man/go-brrr v1.3.1 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	gopkg.in/cenkalti/backoff.v1 v1.1.0 // indirect
)
