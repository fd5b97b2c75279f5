package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/scrypt"
)

// Stored hashes read "$scrypt$ln=12,r=8,p=1$<salt>$<key>" (PHC string format,
// unpadded standard base64), so that each hash carries its own parameters.
const (
	scryptR      = 8
	scryptP      = 1
	scryptKeyLen = 32
	saltLen      = 16
)

// passwordHasher hashes with scrypt, at most one hash per CPU at a time: a
// burst of sign-ins then queues instead of multiplying scrypt's memory (4 MiB
// per hash at the default cost) and thrashing the caches.
type passwordHasher struct {
	cost  int
	slots chan struct{}
}

func newPasswordHasher(cost int) *passwordHasher {
	return &passwordHasher{cost: cost, slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

func (h *passwordHasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *passwordHasher) release() { <-h.slots }

func (h *passwordHasher) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, saltLen)
	rand.Read(salt) // never fails; see crypto/rand.Read
	key, err := h.derive(ctx, password, salt, h.cost)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("$scrypt$ln=%d,r=%d,p=%d$%s$%s", h.cost, scryptR, scryptP,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// verify reports whether password matches stored. An account without a
// password (created by the Admin SDK without one) matches nothing.
func (h *passwordHasher) verify(ctx context.Context, stored, password string) bool {
	cost, salt, want, ok := parseHash(stored)
	if !ok {
		imp, ok := parseImported(stored)
		if !ok || h.acquire(ctx) != nil {
			return false
		}
		defer h.release()
		return imp.verify(password)
	}
	got, err := h.derive(ctx, password, salt, cost)
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

func (h *passwordHasher) derive(ctx context.Context, password string, salt []byte, cost int) ([]byte, error) {
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	defer h.release()
	key, err := scrypt.Key([]byte(password), salt, 1<<cost, scryptR, scryptP, scryptKeyLen)
	if err != nil {
		return nil, fmt.Errorf("hashing password: %w", err)
	}
	return key, nil
}

func parseHash(s string) (cost int, salt, key []byte, ok bool) {
	parts := strings.Split(s, "$")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "scrypt" {
		return 0, nil, nil, false
	}
	var r, p int
	if _, err := fmt.Sscanf(parts[2], "ln=%d,r=%d,p=%d", &cost, &r, &p); err != nil ||
		r != scryptR || p != scryptP || cost < minPasswordHashCost || cost > maxPasswordHashCost {
		return 0, nil, nil, false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[3])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[4])
	if err1 != nil || err2 != nil || len(key) != scryptKeyLen {
		return 0, nil, nil, false
	}
	return cost, salt, key, true
}
