package centrifugo

// AppendPublicationForTest exposes the codecs to the benchmarks.
func AppendPublicationForTest(dst []byte, uni bool, topic string, text []byte, offset uint64) []byte {
	c := bidiCodec
	if uni {
		c = uniCodec
	}
	return c.AppendPublication(dst, topic, text, offset)
}
