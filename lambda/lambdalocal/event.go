package lambdalocal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// urlEvent is a function URL request, payload format 2.0. It has the
// fields of events.LambdaFunctionURLRequest plus routeKey and stage, which
// function URLs send as "$default" placeholders.
type urlEvent struct {
	Version               string            `json:"version"`
	RouteKey              string            `json:"routeKey"`
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies,omitempty"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters,omitempty"`
	RequestContext        urlRequestContext `json:"requestContext"`
	Body                  string            `json:"body,omitempty"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
}

type urlRequestContext struct {
	AccountID    string  `json:"accountId"`
	APIID        string  `json:"apiId"`
	DomainName   string  `json:"domainName"`
	DomainPrefix string  `json:"domainPrefix"`
	HTTP         urlHTTP `json:"http"`
	RequestID    string  `json:"requestId"`
	RouteKey     string  `json:"routeKey"`
	Stage        string  `json:"stage"`
	Time         string  `json:"time"`
	TimeEpoch    int64   `json:"timeEpoch"`
}

type urlHTTP struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Protocol  string `json:"protocol"`
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

// hopByHop are request headers a function URL does not pass on.
var hopByHop = map[string]bool{
	"connection":        true,
	"keep-alive":        true,
	"proxy-connection":  true,
	"te":                true,
	"trailer":           true,
	"transfer-encoding": true,
	"upgrade":           true,
}

// buildEvent maps r, whose body has been read, to a function URL event.
func buildEvent(r *http.Request, body []byte, requestID, trace string, now time.Time) ([]byte, error) {
	sourceIP := r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		sourceIP = host
	}
	domain := r.Host
	if domain == "" {
		domain = "localhost"
	}
	hostname := domain
	if h, _, err := net.SplitHostPort(domain); err == nil {
		hostname = h
	}
	prefix := hostname
	if net.ParseIP(strings.Trim(hostname, "[]")) == nil {
		prefix, _, _ = strings.Cut(hostname, ".")
	}

	headers := make(map[string]string, len(r.Header)+5)
	var cookies []string
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if hopByHop[lk] {
			continue
		}
		if lk == "cookie" {
			headers[lk] = strings.Join(vs, "; ")
			for _, v := range vs {
				for c := range strings.SplitSeq(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[lk] = strings.Join(vs, ",")
	}
	headers["host"] = domain
	if xff := headers["x-forwarded-for"]; xff != "" {
		headers["x-forwarded-for"] = xff + ", " + sourceIP
	} else {
		headers["x-forwarded-for"] = sourceIP
	}
	proto, port := "http", "80"
	if r.TLS != nil {
		proto, port = "https", "443"
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, p, err := net.SplitHostPort(la.String()); err == nil {
			port = p
		}
	}
	headers["x-forwarded-proto"] = proto
	headers["x-forwarded-port"] = port
	headers["x-amzn-trace-id"] = trace

	ev := urlEvent{
		Version:               "2.0",
		RouteKey:              "$default",
		RawPath:               rawPath(r),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: queryParameters(r.URL.RawQuery),
		RequestContext: urlRequestContext{
			AccountID:    "anonymous",
			APIID:        prefix,
			DomainName:   domain,
			DomainPrefix: prefix,
			HTTP: urlHTTP{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  "HTTP/1.1",
				SourceIP:  sourceIP,
				UserAgent: r.UserAgent(),
			},
			RequestID: requestID,
			RouteKey:  "$default",
			Stage:     "$default",
			Time:      now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch: now.UnixMilli(),
		},
	}
	if ev.RawPath == "" {
		ev.RawPath = "/"
	}
	if ev.RequestContext.HTTP.Path == "" {
		ev.RequestContext.HTTP.Path = "/"
	}
	if len(body) > 0 {
		// A JSON string holds only valid UTF-8: other bytes in a text
		// body go as base64, so that none is replaced.
		if isText(r.Header.Get("Content-Type")) && utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<" as is, as Lambda sends it
	if err := enc.Encode(&ev); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// rawPath returns the path as the client sent it, undecoded.
func rawPath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		p, _, _ := strings.Cut(r.RequestURI, "?")
		return p
	}
	return r.URL.EscapedPath()
}

// queryParameters decodes a query string; repeated names are comma-joined.
func queryParameters(raw string) map[string]string {
	if raw == "" {
		return nil
	}
	params := make(map[string]string)
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, v = unescape(k), unescape(v)
		if old, ok := params[k]; ok {
			params[k] = old + "," + v
		} else {
			params[k] = v
		}
	}
	if len(params) == 0 {
		return nil
	}
	return params
}

func unescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// isText reports whether a body of this Content-Type goes into the event
// as text (else base64): text/*, application/json, application/xml and
// application/javascript, as function URLs and HTTP APIs do.
func isText(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	switch mt {
	case "application/json", "application/xml", "application/javascript":
		return true
	}
	return strings.HasPrefix(mt, "text/")
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// traceIDs returns the x-amzn-trace-id of a request (the client's if it
// sent one with a Root, else a new one) and the Lambda-Runtime-Trace-Id
// given to the runtime.
func traceIDs(r *http.Request, now time.Time) (header, runtime string) {
	header = r.Header.Get("X-Amzn-Trace-Id")
	if !strings.Contains(header, "Root=") {
		var b [12]byte
		_, _ = rand.Read(b[:])
		header = fmt.Sprintf("Root=1-%08x-%s", now.Unix(), hex.EncodeToString(b[:]))
	}
	runtime = header
	if !strings.Contains(runtime, "Parent=") {
		var b [8]byte
		_, _ = rand.Read(b[:])
		runtime += ";Parent=" + hex.EncodeToString(b[:])
	}
	if !strings.Contains(runtime, "Sampled=") {
		runtime += ";Sampled=0"
	}
	return header, runtime
}
