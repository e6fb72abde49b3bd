module github.com/ssebridge/ssebridge

go 1.26
