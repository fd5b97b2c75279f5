//go:build unix

package tlsdir

import (
	"fmt"
	"io/fs"
	"syscall"
)

// ownerOf names a file's owner and group by number, as ls -ln does.
func ownerOf(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("owned by uid %d, gid %d", st.Uid, st.Gid)
	}
	return "of unknown owner"
}
