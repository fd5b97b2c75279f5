package tlsdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestPermissionErrorsSayWhatIsNeeded(t *testing.T) {
	key := filepath.Join(t.TempDir(), "tls.key")
	if err := os.WriteFile(key, []byte("k"), 0o400); err != nil {
		t.Fatal(err)
	}
	user := fmt.Sprintf("uid %d, gid %d", os.Getuid(), os.Getgid())
	tests := []struct {
		name string
		err  error
		want []string // "" entries mean: the error is returned as it came
	}{
		{"an unreadable file names the user, the permission, the owner and the mode",
			&fs.PathError{Op: "open", Path: key, Err: syscall.EACCES},
			[]string{key, "permission denied", "this process (" + user + ") needs read permission on it", "owned by uid", "mode 0400"}},
		{"a directory in the way asks for search permission",
			&fs.PathError{Op: "stat", Path: key, Err: syscall.EACCES},
			[]string{"needs search (x) permission on every directory above it"}},
		{"other errors are left as they are", &fs.PathError{Op: "open", Path: key, Err: syscall.ENOENT}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explainPermission(tt.err)
			if !errors.Is(got, tt.err) {
				t.Errorf("the explained error %v does not wrap %v", got, tt.err)
			}
			if tt.want == nil && got.Error() != tt.err.Error() {
				t.Errorf("got %q, want the error unchanged: %q", got, tt.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("%q does not say %q", got, w)
				}
			}
		})
	}
}
