package sse_test

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ssebridge/ssebridge/handler/sse"
)

func ExampleAppend() {
	// One buffer, reused for every event of a connection.
	buf := make([]byte, 0, 4096)

	buf, err := sse.Append(buf[:0], sse.Event{
		ID:    "13435",
		Type:  "chat",
		Retry: 3 * time.Second,
		Data:  "hello\r\nworld",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	os.Stdout.Write(buf)

	// An id or type that could inject fields is refused; buf is untouched.
	_, err = sse.Append(buf[:0], sse.Event{ID: "1\ndata: forged", Data: "x"})
	fmt.Println(errors.Is(err, sse.ErrInvalidID), err)
	// Output:
	// id: 13435
	// event: chat
	// retry: 3000
	// data: hello
	// data: world
	//
	// true sse: invalid event id: LF at byte 1
}

func ExampleAppendData() {
	var buf []byte
	buf = sse.AppendData(buf, "line one\nline two\r\n") // CRLF becomes LF on the client
	buf = sse.AppendEnd(buf)
	buf = sse.AppendComment(buf, "keep-alive")
	fmt.Printf("%q\n", buf)
	// Output:
	// "data: line one\ndata: line two\ndata: \n\n: keep-alive\n"
}
