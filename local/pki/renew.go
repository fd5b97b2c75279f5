package pki

import (
	"context"
	"log/slog"
	"time"
)

// retryAfter is how long Renew waits after a failed Ensure.
const retryAfter = time.Minute

// Renew keeps the dev PKI current for as long as ctx lives, for processes
// that outlive a leaf certificate (devstack left running over a weekend): it
// calls Ensure at each Bundle.RenewAt, and the servers' tlsdir picks the new
// files up. It waits on real timers, measuring from cfg.Now. It returns when
// ctx ends; failures are logged and retried, since the current certificates
// stay valid for a while yet.
func Renew(ctx context.Context, cfg Config, log *slog.Logger) error {
	if _, err := cfg.withDefaults(); err != nil {
		return err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	for {
		wait := retryAfter
		b, err := Ensure(cfg)
		switch {
		case err != nil:
			log.Error("dev PKI renewal failed; retrying", "dir", cfg.Dir, "retryIn", retryAfter.String(), "error", err.Error())
		default:
			if len(b.Issued) > 0 {
				log.Info("dev PKI renewed", "dir", cfg.Dir, "issued", b.Issued, "nextRenewal", b.RenewAt.UTC().Format(time.RFC3339))
			}
			wait = max(b.RenewAt.Sub(now()), time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
