package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"path"
	"strings"
	"testing"
)

// The sign-in bundle's budget: 120 KB gzipped, for a fast first sign-in on
// a phone. Tree-shaking firebase/auth (import only what is used) keeps it
// far below; this fails the build the day an import drags in the rest.
const bundleBudget = 120 << 10

func TestAssetsAreEmbeddedUnderTheirContentHash(t *testing.T) {
	for _, name := range []string{signInScript, stylesheet} {
		t.Run(name+" is embedded and named by its SHA-256", func(t *testing.T) {
			b, err := fs.ReadFile(Static(), name)
			if err != nil {
				t.Fatalf("reading %s from the embedded assets: %v (run: cd web && npm run build)", name, err)
			}
			sum := sha256.Sum256(b)
			ext := path.Ext(name)
			if want := hex.EncodeToString(sum[:])[:16]; !strings.HasSuffix(strings.TrimSuffix(name, ext), "-"+want) {
				t.Errorf("%s: content hash is %s; the file was edited after the build", name, want)
			}
		})
	}
	t.Run("nothing else is embedded", func(t *testing.T) {
		entries, err := fs.ReadDir(Static(), ".")
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 2 {
			t.Errorf("static/dist has %d files, want exactly the script and the stylesheet", len(entries))
		}
	})
}

func TestSignInBundleFitsItsBudget(t *testing.T) {
	b, err := fs.ReadFile(Static(), signInScript)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	w.Write(b)
	w.Close()
	t.Logf("%s: %d bytes, %d gzipped (budget %d)", signInScript, len(b), gz.Len(), bundleBudget)
	if gz.Len() > bundleBudget {
		t.Errorf("the sign-in bundle is %d bytes gzipped, over its %d budget", gz.Len(), bundleBudget)
	}
}
