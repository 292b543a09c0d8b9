package etcdstorage

import (
	"encoding/binary"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// mvccKV is a key and value as etcd returns them.
type mvccKV = mvccpb.KeyValue

// stampSize is the length of the time stamp before each stored value.
const stampSize = 8

// encodeValue puts the time of writing, in UNIX nanoseconds, before value:
// etcd keeps revisions, not times, and certmagic's Stat reports a time.
func encodeValue(value []byte, modified time.Time) []byte {
	out := make([]byte, stampSize, stampSize+len(value))
	binary.BigEndian.PutUint64(out, uint64(modified.UnixNano()))
	return append(out, value...)
}

// DecodeValue splits a value as stored in etcd into the value certmagic
// stored and the time it was written.
func DecodeValue(stored []byte) ([]byte, time.Time, error) {
	if len(stored) < stampSize {
		return nil, time.Time{}, errors.New("stored value is shorter than its time stamp; it was not written by this storage")
	}
	nanos := int64(binary.BigEndian.Uint64(stored[:stampSize]))
	return stored[stampSize:], time.Unix(0, nanos), nil
}
