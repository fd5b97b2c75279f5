package identity

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Bounds on what one account may hold, so that no caller can grow the
// emulator's memory or its accounts.json without end. An email "should be
// less than 256 characters", as the v1 API's SetAccountInfoRequest.email
// says. The others are the emulator's own, generous for any real profile
// (Identity Platform's password policy has "no default max length":
// CustomStrengthOptions.maxPasswordLength in the v2 API).
const (
	maxEmailLen       = 255
	maxPasswordLen    = 4096
	maxDisplayNameLen = 256
	maxPhotoURLLen    = 2048
	// DefaultMaxAccounts is how many accounts an emulator holds unless
	// Config.MaxAccounts says otherwise: every change rewrites
	// accounts.json, which stays a few MiB at this size.
	DefaultMaxAccounts = 10000
)

var errTooManyAccounts = errors.New("QUOTA_EXCEEDED : this emulator holds at most identity.Config.MaxAccounts accounts")

// checkSizes bounds the free-text profile fields and checks a phone number
// is E.164 (+ and at most 15 digits), as Identity Platform requires.
// checkCredentials bounds an email and a password before anything hashes
// or stores them.
func checkCredentials(email, password string) error {
	if len(email) > maxEmailLen {
		return badRequest("INVALID_EMAIL")
	}
	if utf8.RuneCountInString(password) > maxPasswordLen {
		return badRequest("PASSWORD_DOES_NOT_MEET_REQUIREMENTS : Password may contain at most " + strconv.Itoa(maxPasswordLen) + " characters")
	}
	return nil
}

func checkSizes(displayName, photoURL, phone *string) error {
	if displayName != nil && utf8.RuneCountInString(*displayName) > maxDisplayNameLen {
		return badRequest("INVALID_DISPLAY_NAME : at most " + strconv.Itoa(maxDisplayNameLen) + " characters")
	}
	if photoURL != nil && len(*photoURL) > maxPhotoURLLen {
		return badRequest("INVALID_PHOTO_URL : at most " + strconv.Itoa(maxPhotoURLLen) + " bytes")
	}
	if phone != nil && *phone != "" && !isE164(*phone) {
		return badRequest("INVALID_PHONE_NUMBER : Invalid format.")
	}
	return nil
}

func isE164(p string) bool {
	digits := strings.TrimPrefix(p, "+")
	if len(digits) == len(p) || len(digits) < 2 || len(digits) > 15 || digits[0] == '0' {
		return false
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Repeated failed sign-ins for one email are refused for a while, as
// Identity Platform answers TOO_MANY_ATTEMPTS_TRY_LATER. Google does not
// publish its thresholds; these are the emulator's: after maxFailures
// failures within failureWindow, every attempt (even with the right
// password) is refused until the window that began with the first failure
// ends. A success clears the count.
const (
	maxFailures     = 10
	failureWindow   = 10 * time.Minute
	maxThrottleKeys = 10000
	tooManyAttempts = "TOO_MANY_ATTEMPTS_TRY_LATER : Access to this account has been temporarily disabled due to many failed login attempts. You can immediately restore it by resetting your password or you can try again later."
)

type failures struct {
	first time.Time
	n     int
}

// throttle counts failed sign-ins by lowercased email, whether or not the
// email has an account, so that its answers reveal nothing about accounts.
type throttle struct {
	mu    sync.Mutex
	byKey map[string]failures
}

func newThrottle() *throttle { return &throttle{byKey: map[string]failures{}} }

func (t *throttle) allowed(email string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.byKey[strings.ToLower(email)]
	return !ok || f.n < maxFailures || now.Sub(f.first) >= failureWindow
}

func (t *throttle) failed(email string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := strings.ToLower(email)
	f, ok := t.byKey[key]
	if !ok || now.Sub(f.first) >= failureWindow {
		if !ok && len(t.byKey) >= maxThrottleKeys {
			t.prune(now)
		}
		f = failures{first: now}
	}
	f.n++
	t.byKey[key] = f
}

func (t *throttle) succeeded(email string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byKey, strings.ToLower(email))
}

// prune drops the counts whose window has passed and, if the table is still
// full, the oldest half: memory stays bounded even under a flood of
// distinct emails, at the price of forgetting some counts early.
func (t *throttle) prune(now time.Time) {
	for k, f := range t.byKey {
		if now.Sub(f.first) >= failureWindow {
			delete(t.byKey, k)
		}
	}
	if len(t.byKey) < maxThrottleKeys {
		return
	}
	cut := now
	for _, f := range t.byKey {
		if f.first.Before(cut) {
			cut = f.first
		}
	}
	mid := cut.Add(now.Sub(cut) / 2)
	for k, f := range t.byKey {
		if !f.first.After(mid) {
			delete(t.byKey, k)
		}
	}
}

// maxMFAEnrollments bounds second factors per account (the emulator's own).
const maxMFAEnrollments = 10

// checkMFA validates second factors as the Admin SDK sends them (phone
// factors only: TOTP enrollment needs a device) and gives each an id and an
// enrollment time when missing.
func checkMFA(in []mfaEnrollment, now time.Time) ([]mfaEnrollment, error) {
	if len(in) > maxMFAEnrollments {
		return nil, badRequest("INVALID_ARGUMENT : at most " + strconv.Itoa(maxMFAEnrollments) + " second factors")
	}
	out := make([]mfaEnrollment, 0, len(in))
	for _, m := range in {
		if m.PhoneInfo == "" || !isE164(m.PhoneInfo) {
			return nil, badRequest("INVALID_MFA_PHONE_NUMBER : phone second factors only, in E.164 format")
		}
		if utf8.RuneCountInString(m.DisplayName) > maxDisplayNameLen {
			return nil, badRequest("INVALID_DISPLAY_NAME : at most " + strconv.Itoa(maxDisplayNameLen) + " characters")
		}
		if m.MFAEnrollmentID == "" {
			m.MFAEnrollmentID = newUID()
		}
		at := now
		if m.EnrolledAt != "" {
			// The Go Admin SDK writes a stray "Z" after the zone
			// ("…+00:00Z"); the rest is RFC 3339.
			t, err := time.Parse(time.RFC3339, m.EnrolledAt)
			if err != nil {
				t, err = time.Parse(time.RFC3339, strings.TrimSuffix(m.EnrolledAt, "Z"))
			}
			if err != nil {
				return nil, badRequest("INVALID_ARGUMENT : mfaInfo.enrolledAt is not an RFC 3339 time")
			}
			at = t
		}
		m.EnrolledAt = at.UTC().Format(time.RFC3339)
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
