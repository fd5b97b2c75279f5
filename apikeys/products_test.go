package apikeys

import (
	"strings"
	"testing"
)

func TestTheRepositorysProductsFileLoads(t *testing.T) {
	c, err := LoadCatalog(productsFile)
	if err != nil {
		t.Fatalf("LoadCatalog(%s): %v", productsFile, err)
	}
	p, ok := c.Covering([]string{"secure-message"}, "GET", "/api/secure.json")
	if !ok || p.ID != "secure-message" {
		t.Errorf("secure-message does not cover GET /api/secure.json: got %+v, %v", p, ok)
	}
}

func TestParseCatalogRefusesMistakes(t *testing.T) {
	valid := `
products:
  - id: p
    name: P
    paths: ["/api/x"]
    methods: [GET]
    quota: {perMinute: 1, perDay: 2}
`
	tests := []struct {
		name    string
		yaml    string
		wantErr string // "" means valid
	}{
		{"a complete product is accepted", valid, ""},
		{"a misspelt field is an error, not a missing quota", strings.Replace(valid, "perMinute", "per_minute", 1), "unknown field"},
		{"a missing quota is an error", strings.Replace(valid, "quota: {perMinute: 1, perDay: 2}", "", 1), "must both be positive"},
		{"a minute quota above the day's is an error", strings.Replace(valid, "perMinute: 1,", "perMinute: 3,", 1), "exceeds perDay"},
		{"a path without a leading slash is an error", strings.Replace(valid, `"/api/x"`, `"api/x"`, 1), "must start with /"},
		{"a star inside a path is an error", strings.Replace(valid, `"/api/x"`, `"/api/*/x"`, 1), "may end in one *"},
		{"a lower-case method is an error", strings.Replace(valid, "[GET]", "[get]", 1), "upper-case"},
		{"an id used twice is an error", valid + strings.TrimPrefix(valid, "\nproducts:\n"), "used twice"},
		{"no products is an error", "products: []", "no products"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCatalog([]byte(tt.yaml))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestProductCovers(t *testing.T) {
	p := Product{Paths: []string{"/api/secure.json", "/api/reports/*"}, Methods: []string{"GET"}}
	tests := []struct {
		name, method, path string
		want               bool
	}{
		{"an exact path", "GET", "/api/secure.json", true},
		{"a path under a prefix", "GET", "/api/reports/2026/q4", true},
		{"another method", "POST", "/api/secure.json", false},
		{"a longer path than an exact entry", "GET", "/api/secure.json/x", false},
		{"the prefix without its slash", "GET", "/api/reports", false},
		{"a dot-dot segment", "GET", "/api/reports/../secure.json", false},
		{"a double slash", "GET", "/api/reports//x", false},
		{"a percent-encoded byte", "GET", "/api/reports/%2e%2e/x", false},
		{"a backslash", "GET", "/api/reports\\..\\x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Covers(tt.method, tt.path); got != tt.want {
				t.Fatalf("Covers(%s %s) = %v, want %v", tt.method, tt.path, got, tt.want)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	k1, h1 := newKey()
	k2, h2 := newKey()
	t.Run("a key carries 256 random bits after its prefix", func(t *testing.T) {
		if len(k1) != len(keyPrefix)+43 || !wellFormedKey(k1) {
			t.Fatalf("key %d characters long, well formed %v; want %d", len(k1), wellFormedKey(k1), len(keyPrefix)+43)
		}
	})
	t.Run("two keys differ, and so do their hashes", func(t *testing.T) {
		if k1 == k2 || h1.Equal(h2) {
			t.Fatal("two fresh keys are equal")
		}
	})
	t.Run("the hash is of the whole key and compares equal only to itself", func(t *testing.T) {
		// Change the last character to one it is not (a fixed "A" matched
		// it once in 64 runs and made the test fail by chance).
		other := "A"
		if strings.HasSuffix(k1, other) {
			other = "B"
		}
		if !hashKey(k1).Equal(h1) || hashKey(k1[:len(k1)-1]+other).Equal(h1) {
			t.Fatal("hash mismatch")
		}
	})
	t.Run("junk is not a key", func(t *testing.T) {
		for _, s := range []string{"", "ak_", k1 + "A", "xx" + k1[2:], k1[:len(k1)-1] + "!"} {
			if wellFormedKey(s) {
				t.Errorf("%q is taken for a key", s)
			}
		}
	})
}
