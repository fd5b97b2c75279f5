package tlsdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// explainPermission adds to a permission error what a reader needs to fix
// it: the user this process runs as, and the owner and mode of the file (or
// of the directory in its way). A secret volume mounted for another user is
// the usual cause: Cloud Run's second generation gives its files to root, and
// the images run as the distroless nonroot user.
func explainPermission(err error) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	what := "read permission on it"
	if pe.Op == "stat" {
		what = "search (x) permission on every directory above it"
	}
	owner := ""
	if fi, statErr := os.Stat(pe.Path); statErr == nil {
		owner = fmt.Sprintf("; it is %s with mode %04o", ownerOf(fi), fi.Mode().Perm())
	}
	return fmt.Errorf("%w: this process (uid %d, gid %d) needs %s%s", err, os.Getuid(), os.Getgid(), what, owner)
}
