package engine

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// TestJSONMatchesEncodingJSON checks that what Send and Publish write with
// goccy/go-json is byte for byte what encoding/json writes, for the kinds
// of values applications send.
func TestJSONMatchesEncodingJSON(t *testing.T) {
	type inner struct {
		A int               `json:"a"`
		B string            `json:"b,omitempty"`
		C []float64         `json:"c"`
		M map[string]string `json:"m"`
	}
	type withEmbedded struct {
		inner
		When  time.Time       `json:"when"`
		Raw   json.RawMessage `json:"raw"`
		Ptr   *int            `json:"ptr"`
		Iface any             `json:"iface"`
		Skip  string          `json:"-"`
		Bytes []byte          `json:"bytes"`
	}
	n := 7
	values := []any{
		map[string]any{"z": 1, "a": []any{"x", 2.5, true, nil}, "m": map[string]int{"b": 2, "a": 1}},
		inner{A: 1, C: []float64{0, -1.5, 1e21, 1e-7, math.MaxFloat64}, M: map[string]string{"k": "v"}},
		withEmbedded{
			inner: inner{A: 2, B: "b"},
			When:  time.Date(2026, 11, 23, 15, 4, 5, 123456789, time.UTC),
			Raw:   json.RawMessage(`{"x":[1,2]}`),
			Ptr:   &n,
			Iface: map[string]any{"nested": []int{1}},
			Bytes: []byte{0, 1, 2, 255},
		},
		"<script>alert('x')</script> & \u2028 \u2029 \x00 \x1f \"quoted\" \\ é 🌍",
		[]string{"line1\nline2", "tab\t", "\r\n"},
		struct {
			Empty []int          `json:"empty"`
			Nil   []int          `json:"nil"`
			NilM  map[string]int `json:"nilm"`
		}{Empty: []int{}},
		[]any{int64(math.MaxInt64), uint64(math.MaxUint64), float32(0.1), 1.0, -0.0},
	}
	for i, v := range values {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("value %d: encoding/json: %v", i, err)
		}
		got, err := marshalJSON(v)
		if err != nil {
			t.Fatalf("value %d: goccy: %v", i, err)
		}
		if string(got) != string(want) {
			t.Errorf("value %d:\n goccy:         %s\n encoding/json: %s", i, got, want)
		}
	}
}

func TestPayloadText(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{"plain\ntext", "plain\ntext"},
		{[]byte("hi"), "data:application/octet-stream;base64,aGk="},
		{[]byte{}, "data:application/octet-stream;base64,"},
		{json.RawMessage(`{"a":1}`), `{"a":1}`},
		{nil, ""},
		{true, "true"},
		{42, "42"},
		{int64(-3), "-3"},
		{3.5, "3.5"},
		{map[string]int{"n": 1}, `{"n":1}`},
		{[]int{1, 2}, "[1,2]"},
	}
	for _, tt := range tests {
		got, err := payloadText(tt.in)
		if err != nil {
			t.Errorf("payloadText(%#v): %v", tt.in, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("payloadText(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if _, err := payloadText(func() {}); err == nil {
		t.Error("payloadText(func) succeeded, want an error")
	}
}
