package store

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// idClock keeps NewID strictly increasing within the process even when the
// wall clock stalls or steps back.
var idClock struct {
	sync.Mutex
	last uint64 // unix milliseconds << 12 | 12-bit sub-millisecond fraction
}

// NewID returns a new random identifier: a UUIDv7 (RFC 9562) in its
// canonical lowercase text form, URL-safe. IDs sort by creation time (to
// about 250 ns, and strictly within one process), so they make good
// tie-breakers in "newest first" listings; 62 bits are random.
func NewID() string {
	now := time.Now()
	ts := uint64(now.UnixMilli())<<12 | uint64(now.Nanosecond()%1e6)*4096/1e6
	idClock.Lock()
	if ts <= idClock.last {
		ts = idClock.last + 1
	}
	idClock.last = ts
	idClock.Unlock()

	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	ms := ts >> 12
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = 0x70 | byte(ts>>8)&0x0f // version 7, then 12 bits of sub-millisecond time
	b[7] = byte(ts)
	b[8] = 0x80 | b[8]&0x3f // variant 10

	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}
