// Package lambdalocal emulates an AWS Lambda function URL on your machine,
// response streaming included, for the function's real runtime: the
// aws-lambda-go loop (lambda.Start) running in child processes, fed
// through a local implementation of the Lambda Runtime API. AWS's Runtime
// Interface Emulator cannot do this: it reads the whole response before
// answering (aws-lambda-runtime-interface-emulator#175).
//
//	e, err := lambdalocal.New(lambdalocal.Config{
//		Command: []string{"./bootstrap"}, // go build -tags lambda.norpc -o bootstrap
//		Freeze:  runtime.GOOS == "linux",
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer e.Close()
//	log.Fatal(http.ListenAndServe("127.0.0.1:9000", e))
//
// # What is emulated
//
// Execution environments. Each environment is a child process started with
// Config.Command and its own Runtime API server on 127.0.0.1, named by
// AWS_LAMBDA_RUNTIME_API, next to the usual Lambda variables
// (AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_VERSION=$LATEST,
// AWS_LAMBDA_FUNCTION_MEMORY_SIZE, AWS_LAMBDA_LOG_GROUP_NAME,
// AWS_LAMBDA_LOG_STREAM_NAME, AWS_REGION, AWS_DEFAULT_REGION, _HANDLER,
// LAMBDA_TASK_ROOT, AWS_LAMBDA_INITIALIZATION_TYPE, TZ). Unlike Lambda, the
// process also inherits the emulator's own environment (but for
// _LAMBDA_SERVER_PORT and AWS_LAMBDA_MAX_CONCURRENCY, which would switch
// aws-lambda-go to other modes); Config.Env comes last and wins.
// Environments are numbered from 1 in the order they start (a replacement
// gets a new number). Output of environment N goes to Config.Output, each
// line prefixed with "[env N] "; so do the emulator's START, END, REPORT,
// INIT_REPORT and error lines, as Lambda writes them to CloudWatch.
//
// Environments start lazily, like Lambda's cold starts: New starts one and
// waits until its runtime first asks for work (so a broken Command fails
// New), and a request that finds no idle environment starts another, up to
// Config.Environments, then waits for it (at most Config.InitTimeout). A
// request arriving when all Config.Environments are busy waits up to
// Config.QueueTimeout for one to be free and is then answered 429
// TooManyRequestsException ({"Message":"Rate Exceeded."}), as Lambda
// throttles at its concurrency limit (Lambda throttles at once; the wait is
// the emulator's). An environment is idle when its runtime waits in GET
// /runtime/invocation/next; the most recently idle one is used first, so
// warm environments stay warm. Each environment runs one invocation at a
// time: a long response stream (SSE) occupies one environment for its whole
// life, and other requests (POSTs) go to others.
//
// Freezing (Config.Freeze, Unix only). An idle environment is stopped with
// SIGSTOP (its whole process group) and continued with SIGCONT just before
// an invocation is handed to it, as Lambda freezes environments between
// invocations: timers, background goroutines and heartbeats make no
// progress in between. Close continues a frozen process before killing it.
//
// The Runtime API (HTTP/1.1, one server per environment):
// GET /2018-06-01/runtime/invocation/next (blocks; headers
// Lambda-Runtime-Aws-Request-Id, Lambda-Runtime-Deadline-Ms,
// Lambda-Runtime-Invoked-Function-Arn, Lambda-Runtime-Trace-Id),
// POST /2018-06-01/runtime/invocation/{id}/response,
// POST /2018-06-01/runtime/invocation/{id}/error,
// POST /2018-06-01/runtime/init/error, and, for aws-lambda-go's
// WithEnableSIGTERM, POST /2020-01-01/extension/register and
// GET /2020-01-01/extension/event/next (which blocks until shutdown). An id
// that is not the current invocation's, or an invocation answered twice, is
// 400 InvalidRequestID; any other path is 404 (best effort: errors carry
// Lambda's {"errorMessage","errorType"} shape, not always its exact text).
//
// Responses. A response whose Content-Type is
// application/vnd.awslambda.http-integration-response is streamed: the JSON
// prelude {statusCode, headers, cookies} ends at 8 NUL bytes (at most
// 64 KiB, else 502), cookies become Set-Cookie headers, and each chunk
// read from the runtime is written and flushed to the client at once (the
// status and headers are flushed as soon as the prelude is complete). A
// response with the header Lambda-Runtime-Function-Response-Mode: streaming
// but another Content-Type is streamed as is, status 200. Any other
// response is buffered (at most 6 MiB) and read as a function URL response:
// a JSON object with statusCode gives statusCode, headers, cookies and body
// (base64-decoded when isBase64Encoded); any other JSON value is the body
// of a 200 application/json response. A function error
// (POST .../error) before the first byte gives 502 Internal Server Error;
// an error trailer (Lambda-Runtime-Function-Error-Type/-Body) after it, a
// runtime that dies, or a timeout, ends the client's response abruptly (the
// connection is aborted). Errors are logged to Config.Output. On Lambda the
// function URL's InvokeMode decides between buffered and streamed; the
// emulator decides per response from the Content-Type.
//
// Requests (payload format 2.0, the shape of aws-lambda-go's
// lambdaurl/testdata): version "2.0", routeKey and stage "$default",
// rawPath (the path as the client sent it, undecoded), rawQueryString,
// cookies (the Cookie header split at ";"), headers (lower-case names,
// repeated headers comma-joined; cookie stays in headers too, as in the
// fixtures; hop-by-hop headers dropped; host, x-forwarded-for,
// x-forwarded-proto, x-forwarded-port and x-amzn-trace-id added),
// queryStringParameters (decoded, repeats comma-joined), requestContext
// {accountId "anonymous" (auth type NONE: no authorizer), apiId and
// domainPrefix (the first label of the host name), domainName (the Host
// header), http {method, path (decoded), protocol "HTTP/1.1", sourceIp,
// userAgent}, requestId (also the invocation's request id and the
// x-amzn-RequestId response header), routeKey, stage, time, timeEpoch},
// body and isBase64Encoded: the body is passed as text when the media type
// is text/*, application/json, application/xml or application/javascript
// and base64-encoded otherwise (form posts and a missing Content-Type
// included), which is what HTTP APIs and function URLs were observed to do.
//
// Limits, as Lambda's. The whole request body is read before the
// invocation (Lambda does not stream requests), at most
// Config.MaxRequestBytes (6 MiB), which also bounds the event built from it
// (base64 makes it bigger): beyond, 413 RequestTooLargeException and the
// function is not invoked. A body still arriving after
// Config.RequestReadTimeout (10 s) is answered 408 and the connection
// closed: a never-ending upload cannot hold the emulator. A streamed
// response is cut after Config.MaxResponseBytes (200 MiB). With
// Config.LimitBandwidth, bytes after the first 6 MiB of a stream flow at
// 2 MiB/s at most. Each invocation has Config.Timeout (15 min) as its
// deadline (Lambda-Runtime-Deadline-Ms); an invocation still running then
// is "Task timed out": its environment is killed and the client gets 502,
// or an aborted connection if the stream had started. An environment whose
// process dies, or is killed, is replaced by a new one at once (unless it
// never finished its init).
//
// A client that goes away is not told to the function, as on Lambda: the
// emulator keeps reading the function's response to its end (and discards
// it), so the environment stays busy until the function ends its response.
//
// # What is not emulated
//
// IAM auth (AWS_IAM) and SigV4, CORS settings, TLS and the x-amzn-tls-*
// headers, limits on header sizes, memory limits and CPU scaling
// (AWS_LAMBDA_FUNCTION_MEMORY_SIZE is only advertised), /tmp and filesystem
// isolation, credentials, X-Ray, the Logs and Telemetry APIs, external
// extensions, client context and Cognito identity headers, reclaiming idle
// environments after some minutes, provisioned concurrency, Lambda Managed
// Instances (AWS_LAMBDA_MAX_CONCURRENCY), the 2 MiB/s cap unless
// LimitBandwidth, and Lambda's exact error bodies.
//
// Freezing needs Unix (SIGSTOP/SIGCONT); elsewhere New refuses Freeze.
// Child processes are started with Pdeathsig on Linux so that they die with
// the emulator's process even if it crashes (only the direct child: make
// the Command exec the function rather than fork it).
package lambdalocal
