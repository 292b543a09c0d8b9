// Package fileowner tells who owns a file, where the system says: the
// commands refuse to change files in a folder another user owns, which
// that user (Caddy's) could then not read.
package fileowner

import (
	"os/user"
	"strconv"
)

// Name is the name of the user with uid, or the uid when the system names
// none.
func Name(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(uid)
}
