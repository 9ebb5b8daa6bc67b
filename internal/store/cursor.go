package store

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// EncodeCursor makes the opaque page cursor of a newest-first keyset
// listing (alerts, audit records): the row's time and id.
func EncodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixNano(), 10) + ":" + id))
}

// DecodeCursor reads a cursor made by EncodeCursor; ok is false for
// anything else.
func DecodeCursor(s string) (at time.Time, id string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return time.Time{}, "", false
	}
	ns, id, found := strings.Cut(string(b), ":")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !found || err != nil || id == "" {
		return time.Time{}, "", false
	}
	return time.Unix(0, n).UTC(), id, true
}
