package engine

import (
	"fmt"
	"testing"
)

func frameOf(n int) []byte { return make([]byte, n) }

func TestFrameLogPushPendingAdvance(t *testing.T) {
	l := newFrameLog(1)
	for i := range 5 {
		seq, ok := l.push(frameOf(10), 0, 1000)
		if !ok || seq != uint64(i+1) {
			t.Fatalf("push %d: seq %d ok %v", i, seq, ok)
		}
	}
	if l.queued != 5*(10+entryCost) || l.retained != 0 {
		t.Fatalf("queued %d retained %d", l.queued, l.retained)
	}
	frames, upto := l.pending(nil, 25)
	if len(frames) != 2 || upto != 3 {
		t.Fatalf("pending(25) = %d frames up to %d, want 2 up to 3", len(frames), upto)
	}
	l.advance(upto, 1000)
	if l.cursor != 3 || l.queued != 3*(10+entryCost) || l.retained != 2*(10+entryCost) {
		t.Fatalf("after advance: cursor %d queued %d retained %d", l.cursor, l.queued, l.retained)
	}
	// A frame larger than the batch is still taken, alone.
	l.push(frameOf(100), 0, 1000)
	frames, upto = l.pending(nil, 5)
	if len(frames) != 1 || upto != 4 {
		t.Fatalf("pending(5) = %d frames up to %d, want 1 up to 4", len(frames), upto)
	}
}

func TestFrameLogQueueLimit(t *testing.T) {
	l := newFrameLog(1)
	limit := 100 + 2*entryCost
	if _, ok := l.push(frameOf(60), 0, limit); !ok {
		t.Fatal("first push refused")
	}
	if _, ok := l.push(frameOf(41), 0, limit); ok {
		t.Fatal("push over the limit accepted")
	}
	if _, ok := l.push(frameOf(40), 0, limit); !ok {
		t.Fatal("push up to the limit refused")
	}
	// Written frames do not count against the queue limit.
	l.advance(l.next, 1000)
	if _, ok := l.push(frameOf(100), 0, limit); !ok {
		t.Fatal("push after the queue was written refused")
	}
}

func TestFrameLogReplayBudget(t *testing.T) {
	l := newFrameLog(1)
	for range 10 {
		l.push(frameOf(10), 0, 1000)
	}
	const c = 10 + entryCost
	l.advance(11, 3*c+5) // room for 3 written frames
	if l.first != 8 || l.retained != 3*c || l.n != 3 {
		t.Fatalf("first %d retained %d n %d, want 8, 30, 3", l.first, l.retained, l.n)
	}
	for last, want := range map[uint64]bool{6: false, 7: true, 9: true, 10: true, 11: false} {
		if got := l.canRewind(last); got != want {
			t.Errorf("canRewind(%d) = %v, want %v", last, got, want)
		}
	}
	l.rewind(8)
	if l.cursor != 9 || l.queued != 2*c || l.retained != c {
		t.Fatalf("after rewind(8): cursor %d queued %d retained %d", l.cursor, l.queued, l.retained)
	}
	frames, upto := l.pending(nil, 1000)
	if len(frames) != 2 || upto != 11 {
		t.Fatalf("pending after rewind: %d frames up to %d", len(frames), upto)
	}
}

func TestFrameLogEmptyCanRewindToZero(t *testing.T) {
	l := newFrameLog(1)
	if !l.canRewind(0) {
		t.Fatal("a new log cannot rewind to 0 (the hello's seq)")
	}
	if l.canRewind(1) {
		t.Fatal("a new log can rewind past what it holds")
	}
}

func TestFrameLogRingWrapsAndShrinks(t *testing.T) {
	l := newFrameLog(1)
	seq := uint64(0)
	for round := range 50 {
		for range 37 {
			seq, _ = l.push([]byte(fmt.Sprint(seq+1)), seq+1, 1<<20)
		}
		frames, upto := l.pending(nil, 1<<20)
		for i, f := range frames {
			if want := fmt.Sprint(l.cursor + uint64(i)); string(f.frame) != want || f.mark != l.cursor+uint64(i) {
				t.Fatalf("round %d: frame %d is %q, want %q", round, i, f.frame, want)
			}
		}
		l.advance(upto, 0)
	}
	if l.n != 0 || l.queued != 0 || l.retained != 0 {
		t.Fatalf("n %d queued %d retained %d after writing everything with no replay budget", l.n, l.queued, l.retained)
	}
	if len(l.ring) > 64 {
		t.Fatalf("ring kept %d slots for an empty log", len(l.ring))
	}
}

func TestFrameLogAppendAllocatesAmortised(t *testing.T) {
	l := newFrameLog(1)
	f := frameOf(8)
	for range 1024 { // grow the ring first
		l.push(f, 0, 1<<30)
	}
	l.advance(l.next, 1<<30)
	allocs := testing.AllocsPerRun(1000, func() {
		l.push(f, 0, 1<<30)
		l.advance(l.next, 0)
	})
	if allocs != 0 {
		t.Fatalf("push+advance allocates %v per frame, want 0", allocs)
	}
}

// TestFrameLogRewindDoesNotCountAgainstQueue: frames written once and
// rewound for a resuming client count against the replay budget, not the
// queue limit, so a resume does not push a peer over its queue.
func TestFrameLogRewindDoesNotCountAgainstQueue(t *testing.T) {
	const c = 10 + entryCost
	l := newFrameLog(1)
	for range 4 {
		l.push(frameOf(10), 0, 4*c)
	}
	l.advance(5, 4*c) // all written and kept
	// Queue full again with unwritten frames.
	for range 4 {
		if _, ok := l.push(frameOf(10), 0, 4*c); !ok {
			t.Fatal("push refused before the rewind")
		}
	}
	l.rewind(0) // the client has nothing: 8 frames to write
	if l.queued != 8*c || l.rewound != 4*c {
		t.Fatalf("queued %d rewound %d, want %d and %d", l.queued, l.rewound, 8*c, 4*c)
	}
	if _, ok := l.push(frameOf(10), 0, 4*c); ok {
		t.Fatal("push over the queue limit accepted")
	}
	// Writing the rewound frames frees no queue room; writing one new
	// frame does.
	l.advance(5, 8*c)
	if l.rewound != 0 || l.queued != 4*c {
		t.Fatalf("after writing the rewound frames: rewound %d queued %d", l.rewound, l.queued)
	}
	l.advance(6, 8*c)
	if _, ok := l.push(frameOf(10), 0, 4*c); !ok {
		t.Fatal("push refused although a queued frame was written")
	}
}
