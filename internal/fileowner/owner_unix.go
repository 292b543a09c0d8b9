//go:build unix

package fileowner

import (
	"os"
	"syscall"
)

// Of returns the uid of the owner of path; ok is false when path cannot
// be read, or the system keeps no owner there.
func Of(path string) (uid int, ok bool) {
	info, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
