package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeCommands(t *testing.T) {
	in := "{\"connect\":{\"token\":\"t\",\"data\":{ \"a\": [1,\t2] },\"name\":\"js\",\"subs\":{\"news\":{\"recover\":true,\"offset\":12,\"epoch\":\"xY\"}},\"future\":1},\"id\":1}\n\n" +
		"{\"subscribe\":{\"channel\":\"chat\",\"flag\":1,\"tf\":3},\"id\":2}\r\n" +
		"{}\n" +
		"{\"send\":{\"data\":\"hi\"}}"
	cmds, err := DecodeCommands([]byte(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	kinds := []string{}
	for _, c := range cmds {
		kinds = append(kinds, c.Kind())
	}
	if strings.Join(kinds, ",") != "connect,subscribe,pong,send" {
		t.Fatalf("kinds %v", kinds)
	}
	c := cmds[0]
	if c.ID != 1 || c.Connect.Token != "t" || c.Connect.Name != "js" || string(c.Connect.Data) != `{"a":[1,2]}` {
		t.Fatalf("connect %+v data %s", c.Connect, c.Connect.Data)
	}
	if s := c.Connect.Subs["news"]; !s.Recover || s.Offset != 12 || s.Epoch != "xY" {
		t.Fatalf("subs %+v", c.Connect.Subs)
	}
	if s := cmds[1].Subscribe; s.Channel != "chat" || s.Flag != 1 || cmds[1].ID != 2 {
		t.Fatalf("subscribe %+v", s)
	}
	if string(cmds[3].Send.Data) != `"hi"` {
		t.Fatalf("send %s", cmds[3].Send.Data)
	}
}

func TestDecodeCommandsRefuses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", ErrEmpty},
		{"\n \n", ErrEmpty},
		{"[1,2]", ErrMalformed},
		{`"connect"`, ErrMalformed},
		{`{"id":1,"connect":{}} {"id":2}`, ErrMalformed},
		{`{"id":-1}`, ErrMalformed},
		{`{"id":1,"connect":{"data":{"a":}}}`, ErrMalformed},
		{`{"id":1,"publish":{"channel":"c","data":` + strings.Repeat("1", 100) + `}}`, ErrTooLarge},
	} {
		if _, err := DecodeCommands([]byte(tc.in), 64); !errors.Is(err, tc.want) {
			t.Errorf("%q: %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestDecodeConnectRequest(t *testing.T) {
	for _, in := range []string{"", "null", "  {}  "} {
		r, err := DecodeConnectRequest([]byte(in))
		if err != nil || r.Token != "" {
			t.Fatalf("%q: %+v %v", in, r, err)
		}
	}
	r, err := DecodeConnectRequest([]byte(`{"token":"abc","subs":{"x":{"recover":true,"offset":3,"epoch":"e"}},"headers":{"h":"v"}}`))
	if err != nil || r.Token != "abc" || !r.Subs["x"].Recover || r.Headers["h"] != "v" {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := DecodeConnectRequest([]byte(`{"token":`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestDecodeEnvelope(t *testing.T) {
	env, err := DecodeEnvelope([]byte(`{"session":"s1","node":"n1","data":"{\"subscribe\":{\"channel\":\"a\"},\"id\":2}\n{}"}`))
	if err != nil || env.Session != "s1" || env.Node != "n1" {
		t.Fatalf("%+v %v", env, err)
	}
	cmds, err := DecodeCommands(env.Data, 0)
	if err != nil || len(cmds) != 2 || cmds[0].Subscribe.Channel != "a" || cmds[1].Kind() != "pong" {
		t.Fatalf("%+v %v", cmds, err)
	}
	for _, bad := range []string{`{"node":123}`, `{"session":"s","node":"n","data":{"id":1}}`, `nope`, `{"session":"s"} x`} {
		if _, err := DecodeEnvelope([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", bad, err)
		}
	}
}

func TestEncode(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{Reply{}, `{}`},
		{Reply{ID: 1, Connect: &ConnectResult{Client: "c", Version: "0.1", Ping: 25, Pong: true, Session: "s", Node: "n"}},
			`{"id":1,"connect":{"client":"c","version":"0.1","ping":25,"pong":true,"session":"s","node":"n"}}`},
		{Reply{ID: 3, Error: ErrorPermissionDenied}, `{"id":3,"error":{"code":103,"message":"permission denied"}}`},
		{Reply{Push: &Push{Channel: "chat", Pub: &Publication{Data: Raw(`{"t":"hi"}`), Offset: 7}}},
			`{"push":{"channel":"chat","pub":{"data":{"t":"hi"},"offset":7}}}`},
		{Reply{Push: &Push{Disconnect: &DisconnectPush{Code: DisconnectShutdown, Reason: "shutdown"}}},
			`{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}`},
		{Reply{ID: 4, Presence: &PresenceResult{Presence: map[string]ClientInfo{}}}, `{"id":4,"presence":{"presence":{}}}`},
		{Reply{ID: 5, PresenceStats: &PresenceStatsResult{}}, `{"id":5,"presence_stats":{"num_clients":0,"num_users":0}}`},
		{Push{Connect: &ConnectResult{Client: "c", Session: "s"}}, `{"connect":{"client":"c","session":"s"}}`},
	} {
		got, err := AppendJSON(nil, tc.v)
		if err != nil || string(got) != tc.want {
			t.Errorf("%+v: %s (%v), want %s", tc.v, got, err, tc.want)
		}
	}
}

func TestReconnects(t *testing.T) {
	for code, want := range map[uint32]bool{3000: true, 3001: true, 3012: true, 3499: true, 3500: false, 3999: false, 4000: true, 4499: true, 4500: false, 4999: false} {
		if Reconnects(code) != want {
			t.Errorf("Reconnects(%d) = %v", code, !want)
		}
	}
}

// FuzzDecodeCommands: any input decodes or fails cleanly, and what decodes
// encodes again on one line, with its payloads still valid JSON.
func FuzzDecodeCommands(f *testing.F) {
	f.Add([]byte("{\"connect\":{\"data\":{\n\"a\":1}},\"id\":1}\n{}"))
	f.Add([]byte(`{"publish":{"channel":"c","data":"x\ny"},"id":9}`))
	f.Add([]byte(`{"history":{"channel":"c","since":{"offset":1,"epoch":"e"},"limit":-1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cmds, err := DecodeCommands(b, 1<<16)
		// encoding/json is the oracle of the faster decoder used: the same
		// lines are accepted, with the same values.
		std, stdErr := stdDecodeCommands(b)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("DecodeCommands(%q): error %v; encoding/json: %v", b, err, stdErr)
		}
		if err != nil {
			return
		}
		if got, want := mustJSON(t, cmds), mustJSON(t, std); got != want {
			t.Fatalf("DecodeCommands(%q) = %s; encoding/json: %s", b, got, want)
		}
		for _, c := range cmds {
			out, err := json.Marshal(c)
			if err != nil {
				t.Fatalf("re-encoding %+v: %v", c, err)
			}
			if bytes.ContainsAny(out, "\r\n") {
				t.Fatalf("encoding holds a newline: %s", out)
			}
		}
	})
}

// FuzzDecodeEnvelope: any body decodes or fails cleanly.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(`{"session":"s","node":"n","data":"{}"}`))
	f.Add([]byte(`{"session":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := DecodeEnvelope(b)
		std, stdErr := stdDecodeEnvelope(b)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("DecodeEnvelope(%q): error %v; encoding/json: %v", b, err, stdErr)
		}
		if err != nil {
			return
		}
		if env.Session != std.Session || env.Node != std.Node || !bytes.Equal(env.Data, std.Data) {
			t.Fatalf("DecodeEnvelope(%q) = %+v; encoding/json: %+v", b, env, std)
		}
		_, _ = DecodeCommands(env.Data, 1<<16)
	})
}

// stdDecodeCommands is DecodeCommands with encoding/json, the oracle.
func stdDecodeCommands(b []byte) ([]Command, error) {
	var cmds []Command
	for _, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if len(line) > 1<<16 || line[0] != '{' {
			return nil, ErrMalformed
		}
		var c Command
		if err := json.Unmarshal(line, &c); err != nil {
			return nil, err
		}
		if err := c.compact(); err != nil {
			return nil, err
		}
		cmds = append(cmds, c)
	}
	if len(cmds) == 0 {
		return nil, ErrEmpty
	}
	return cmds, nil
}

// stdDecodeEnvelope is DecodeEnvelope with encoding/json, the oracle.
func stdDecodeEnvelope(b []byte) (Envelope, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return Envelope{}, ErrMalformed
	}
	var raw struct {
		Session string `json:"session"`
		Node    string `json:"node"`
		Data    Raw    `json:"data"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return Envelope{}, err
	}
	env := Envelope{Session: raw.Session, Node: raw.Node}
	if len(raw.Data) > 0 && !bytes.Equal(raw.Data, []byte("null")) {
		var s string
		if err := json.Unmarshal(raw.Data, &s); err != nil {
			return Envelope{}, err
		}
		env.Data = []byte(s)
	}
	return env, nil
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
