// Package filelock takes exclusive locks on files, to keep the processes
// of test runs going at once (go test runs several packages' binaries
// together) out of each other's way. A lock belongs to the open file, so
// a process that dies releases its locks.
package filelock

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Lock waits for an exclusive lock on path, creating the file, and
// returns the function that releases it.
func Lock(path string) (release func(), err error) {
	release, _, err = lock(path, 0)
	return release, err
}

// TryLock takes the lock on path only if nobody holds it: ok is false,
// and release nil, when somebody does.
func TryLock(path string) (release func(), ok bool, err error) {
	return lock(path, syscall.LOCK_NB)
}

func lock(path string, how int) (func(), bool, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false, err
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|how)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, false, nil
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("locking %s: %v", path, err)
	}
	return func() { f.Close() }, true, nil
}
