// Command suitefn is the runtime conformance suite's application
// (runtimetest.App) as a Lambda function: the bootstrap that
// lambda/lambdalocal runs in each execution environment for the lambda
// package's conformance test. It reads its backend from the environment:
// SSEBRIDGE_REDIS_URL and SSEBRIDGE_REDIS_PREFIX (empty URL: memory), and
// the stream margin from SSEBRIDGE_MARGIN (a Go duration).
package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/ssebridge/ssebridge/lambda"
	"github.com/ssebridge/ssebridge/runtimetest"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	env := runtimetest.Env{Redis: os.Getenv("SSEBRIDGE_REDIS_URL"), Prefix: os.Getenv("SSEBRIDGE_REDIS_PREFIX")}
	h, _, err := runtimetest.NewHandler(env, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "suitefn:", err)
		os.Exit(1)
	}
	var margin time.Duration
	if m := os.Getenv("SSEBRIDGE_MARGIN"); m != "" {
		if margin, err = time.ParseDuration(m); err != nil {
			fmt.Fprintln(os.Stderr, "suitefn: SSEBRIDGE_MARGIN:", err)
			os.Exit(2)
		}
	}
	lambda.Start(h, lambda.Config{Margin: margin, Logger: log})
}
