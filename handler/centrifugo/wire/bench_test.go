package wire

import "testing"

func BenchmarkDecodeEmulation(b *testing.B) {
	body := []byte(`{"session":"AAAAAAAAAAAAAAAAAAAAAB","node":"h6uQR-knsIigU84hAAAAAA","data":"{\"rpc\":{\"method\":\"echo\",\"data\":{\"n\":12345}},\"id\":42}"}`)
	b.ReportAllocs()
	for b.Loop() {
		env, err := DecodeEnvelope(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeCommands(env.Data, 0); err != nil {
			b.Fatal(err)
		}
	}
}
