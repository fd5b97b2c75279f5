package apikeys

import (
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Product is one API product: the requests it covers and how many of them
// one app may make.
type Product struct {
	// ID names the product in apps and in the management API.
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Paths the product covers, matched as Istio's AuthorizationPolicy
	// matches paths: exactly, or as a prefix when the entry ends in "*".
	Paths []string `json:"paths"`
	// Methods the product covers, upper case (GET, POST, ...).
	Methods []string `json:"methods"`
	Quota   Quota    `json:"quota"`
}

// Quota is how many requests one app may make under one product, counted in
// fixed windows: the calendar minute and the UTC day.
type Quota struct {
	PerMinute int64 `json:"perMinute"`
	PerDay    int64 `json:"perDay"`
}

// Catalog is the set of products, in the order of the file: when two of an
// app's products cover a request, the first in the file counts it.
type Catalog struct {
	Products []Product `json:"products"`
}

var productIDPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// LoadCatalog reads and validates a products file.
func LoadCatalog(file string) (*Catalog, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading products: %w", err)
	}
	c, err := ParseCatalog(b)
	if err != nil {
		return nil, fmt.Errorf("products file %s: %w", file, err)
	}
	return c, nil
}

// ParseCatalog decodes a products file strictly (an unknown field is an
// error, so a misspelt "perMinute" cannot silently mean "no quota") and
// validates it.
func ParseCatalog(b []byte) (*Catalog, error) {
	var c Catalog
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("decoding products: %w", err)
	}
	return &c, c.Validate()
}

// Validate reports every invalid field by product and name.
func (c *Catalog) Validate() error {
	var errs []error
	if len(c.Products) == 0 {
		errs = append(errs, errors.New("no products"))
	}
	seen := map[string]bool{}
	for i, p := range c.Products {
		where := fmt.Sprintf("products[%d] (%s)", i, p.ID)
		if !productIDPattern.MatchString(p.ID) {
			errs = append(errs, fmt.Errorf("%s: id %q must be lower-case letters, digits and dashes", where, p.ID))
		}
		if seen[p.ID] {
			errs = append(errs, fmt.Errorf("%s: id %q is used twice", where, p.ID))
		}
		seen[p.ID] = true
		if p.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", where))
		}
		if len(p.Paths) == 0 {
			errs = append(errs, fmt.Errorf("%s: paths: at least one is required", where))
		}
		for _, pp := range p.Paths {
			if err := validPathPattern(pp); err != nil {
				errs = append(errs, fmt.Errorf("%s: paths: %w", where, err))
			}
		}
		if len(p.Methods) == 0 {
			errs = append(errs, fmt.Errorf("%s: methods: at least one is required", where))
		}
		for _, m := range p.Methods {
			if m != strings.ToUpper(m) || m == "" || strings.ContainsAny(m, " *") {
				errs = append(errs, fmt.Errorf("%s: methods: %q must be one upper-case method", where, m))
			}
		}
		// Zero would read as "unlimited" to some and "nothing" to others:
		// both limits are required.
		if p.Quota.PerMinute <= 0 || p.Quota.PerDay <= 0 {
			errs = append(errs, fmt.Errorf("%s: quota: perMinute (%d) and perDay (%d) must both be positive",
				where, p.Quota.PerMinute, p.Quota.PerDay))
		} else if p.Quota.PerMinute > p.Quota.PerDay {
			errs = append(errs, fmt.Errorf("%s: quota: perMinute (%d) exceeds perDay (%d)",
				where, p.Quota.PerMinute, p.Quota.PerDay))
		}
	}
	return errors.Join(errs...)
}

func validPathPattern(p string) error {
	body := strings.TrimSuffix(p, "*")
	if !strings.HasPrefix(body, "/") || strings.Contains(body, "*") {
		return fmt.Errorf("%q must start with / and may end in one *", p)
	}
	if strings.Contains(body, "?") || strings.Contains(body, "#") {
		return fmt.Errorf("%q must not contain a query or fragment", p)
	}
	return nil
}

// Product returns the product with id.
func (c *Catalog) Product(id string) (Product, bool) {
	for _, p := range c.Products {
		if p.ID == id {
			return p, true
		}
	}
	return Product{}, false
}

// Covering returns the first of ids (in the catalog's order) whose product
// covers method and path.
func (c *Catalog) Covering(ids []string, method, path string) (Product, bool) {
	for _, p := range c.Products {
		if slices.Contains(ids, p.ID) && p.Covers(method, path) {
			return p, true
		}
	}
	return Product{}, false
}

// Covers reports whether the product covers a request. path is the request
// path without its query. A path that is not in canonical form ("//",
// "/./", "/../", or a percent-encoded byte) is covered by nothing: Envoy
// normalises paths before ext_authz sees them when configured to, and where
// it was not, refusing is the safe answer, as a prefix match on an
// unnormalised path is the classic way around path-based policy.
func (p Product) Covers(method, reqPath string) bool {
	if !slices.Contains(p.Methods, method) {
		return false
	}
	if !canonicalPath(reqPath) {
		return false
	}
	for _, pat := range p.Paths {
		if prefix, ok := strings.CutSuffix(pat, "*"); ok {
			if strings.HasPrefix(reqPath, prefix) {
				return true
			}
		} else if reqPath == pat {
			return true
		}
	}
	return false
}

func canonicalPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "%") || strings.Contains(p, "\\") {
		return false
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean == p
}
