package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

const accountsFile = "accounts.json"

// account is one user as stored on disk. Timestamps are Unix milliseconds,
// as the Identity Toolkit API reports them, except ValidSince (seconds).
type account struct {
	LocalID           string `json:"localId"`
	Email             string `json:"email,omitempty"`
	EmailVerified     bool   `json:"emailVerified,omitempty"`
	DisplayName       string `json:"displayName,omitempty"`
	PhotoURL          string `json:"photoUrl,omitempty"`
	PhoneNumber       string `json:"phoneNumber,omitempty"`
	PasswordHash      string `json:"passwordHash,omitempty"` // see password.go; never sent to clients
	PasswordUpdatedAt int64  `json:"passwordUpdatedAt,omitempty"`
	Disabled          bool   `json:"disabled,omitempty"`
	CustomAttributes  string `json:"customAttributes,omitempty"` // a JSON object of custom claims
	CreatedAt         int64  `json:"createdAt"`
	LastLoginAt       int64  `json:"lastLoginAt,omitempty"`
	LastRefreshAt     int64  `json:"lastRefreshAt,omitempty"`
	// ValidSince revokes: tokens issued before this Unix second are dead.
	ValidSince int64 `json:"validSince"`
	// Providers are linked federated identities (linkProviderUserInfo, or
	// imported); the password and phone providers follow from the fields above.
	Providers []providerInfo  `json:"providers,omitempty"`
	MFA       []mfaEnrollment `json:"mfaInfo,omitempty"`
}

// mfaEnrollment is a second factor as the API spells it (mfaInfo).
type mfaEnrollment struct {
	MFAEnrollmentID string `json:"mfaEnrollmentId"`
	DisplayName     string `json:"displayName,omitempty"`
	PhoneInfo       string `json:"phoneInfo,omitempty"`
	EnrolledAt      string `json:"enrolledAt,omitempty"` // RFC 3339
}

func newAccount(uid string, now time.Time) *account {
	return &account{LocalID: uid, CreatedAt: now.UnixMilli(), ValidSince: now.Unix()}
}

// accountSet is the whole user table. The store hands a copy to mutate, and
// commits it only once it is safely on disk, so a failed change changes nothing.
type accountSet struct {
	byID map[string]*account
	max  int // most accounts insert admits; 0 means no bound
}

func (s *accountSet) byEmail(email string) (*account, bool) {
	for _, a := range s.byID {
		if a.Email != "" && strings.EqualFold(a.Email, email) {
			return a, true
		}
	}
	return nil, false
}

func (s *accountSet) byPhone(phone string) (*account, bool) {
	for _, a := range s.byID {
		if a.PhoneNumber != "" && a.PhoneNumber == phone {
			return a, true
		}
	}
	return nil, false
}

var (
	errEmailExists = errors.New("EMAIL_EXISTS")
	errUIDExists   = errors.New("DUPLICATE_LOCAL_ID")
	errPhoneExists = errors.New("PHONE_NUMBER_EXISTS")
	// FEDERATED_USER_ID_ALREADY_LINKED: what linking an identity another
	// account holds answers (the Admin SDK's IsProviderAlreadyInUse... family).
	errFederatedExists = errors.New("FEDERATED_USER_ID_ALREADY_LINKED")
)

func (a *account) hasProvider(providerID, rawID string) bool {
	for _, p := range a.Providers {
		if p.ProviderID == providerID && p.RawID == rawID {
			return true
		}
	}
	return false
}

// insert adds a, refusing duplicates of the unique fields and an account
// beyond the store's bound.
func (s *accountSet) insert(a *account) error {
	if _, ok := s.byID[a.LocalID]; ok {
		return errUIDExists
	}
	if s.max > 0 && len(s.byID) >= s.max {
		return errTooManyAccounts
	}
	if err := s.checkUnique(a); err != nil {
		return err
	}
	s.byID[a.LocalID] = a
	return nil
}

// checkUnique reports whether a's email (compared without letter case, as
// Identity Platform compares them) or phone number belongs to another
// account. Every account is looked at: stopping at the first holder of the
// email would, in map order, sometimes find a itself and miss the other.
func (s *accountSet) checkUnique(a *account) error {
	for _, o := range s.byID {
		if o.LocalID == a.LocalID {
			continue
		}
		if a.Email != "" && strings.EqualFold(o.Email, a.Email) {
			return errEmailExists
		}
		if a.PhoneNumber != "" && o.PhoneNumber == a.PhoneNumber {
			return errPhoneExists
		}
		for _, p := range a.Providers {
			if o.hasProvider(p.ProviderID, p.RawID) {
				return errFederatedExists
			}
		}
	}
	return nil
}

func (s *accountSet) clone() *accountSet {
	c := &accountSet{byID: make(map[string]*account, len(s.byID)), max: s.max}
	for id, a := range s.byID {
		cp := *a
		// Deep, so that a change to a copy never reaches the committed table.
		cp.Providers, cp.MFA = slices.Clone(a.Providers), slices.Clone(a.MFA)
		c.byID[id] = &cp
	}
	return c
}

// accountStore is the account table in memory, mirrored to StateDir.
// Readers share a lock; writers are serialized and write the file before
// committing. The table is small (a development stack), so each change
// rewrites the whole file, which keeps the format obvious.
type accountStore struct {
	path string
	mu   sync.RWMutex
	set  *accountSet
	// emails indexes byID by lowercased email for the sign-in path.
	emails map[string]string
}

type accountsOnDisk struct {
	Accounts []*account `json:"accounts"`
}

// loadAccounts reads the saved accounts. Accounts that break uniqueness (two
// holding one email or phone number, two with one localId: state written
// before a bug was fixed, or edited by hand) are set aside rather than
// refused: the stack still starts, every other user keeps working, and the
// returned notice names the file they were moved to and what to do. None of
// the conflicting accounts is kept live, because which one is the rightful
// owner cannot be known; locking them out is the safe failure, a takeover is not.
func loadAccounts(dir string, now time.Time, max int) (*accountStore, []string, error) {
	st := &accountStore{path: filepath.Join(dir, accountsFile), set: &accountSet{byID: map[string]*account{}, max: max}}
	if err := removeAtomicLeftovers(st.path); err != nil {
		return nil, nil, fmt.Errorf("reading accounts: %w", err)
	}
	b, err := os.ReadFile(st.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st.reindex()
		return st, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("reading accounts: %w", err)
	}
	var disk accountsOnDisk
	if err := json.Unmarshal(b, &disk); err != nil {
		return nil, nil, fmt.Errorf("reading accounts %s: %w (move the file aside to start with no users)", st.path, err)
	}
	keep, conflicts, reasons := splitConflicts(disk.Accounts)
	for _, a := range keep {
		st.set.byID[a.LocalID] = a
	}
	st.reindex()
	if len(conflicts) == 0 {
		return st, nil, nil
	}
	// The set-aside copy is written before the live file loses them, so a
	// crash in between leaves them in both places, never in neither.
	aside := filepath.Join(dir, "accounts.conflict-"+now.UTC().Format("20060102T150405.000Z")+".json")
	ab, err := json.MarshalIndent(accountsOnDisk{Accounts: conflicts}, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("setting aside conflicting accounts: %w", err)
	}
	if err := writeFileAtomic(aside, ab, 0o600); err != nil {
		return nil, nil, fmt.Errorf("setting aside conflicting accounts in %s: %w", aside, err)
	}
	if err := st.save(st.set); err != nil {
		return nil, nil, err
	}
	notice := make([]string, 0, len(reasons)+1)
	for _, r := range reasons {
		notice = append(notice, r+": these accounts were moved from "+st.path+" to "+aside)
	}
	notice = append(notice, "to restore one, copy it from "+aside+" into the \"accounts\" list of "+
		st.path+" (keeping its email and phone number unique) and restart; to drop them, delete "+aside)
	return st, notice, nil
}

// splitConflicts separates the accounts whose localId, email (without letter
// case) or phone number another account also holds, and says why for each.
func splitConflicts(all []*account) (keep, conflicts []*account, reasons []string) {
	type key struct{ kind, value string }
	holders := map[key][]string{}
	for _, a := range all {
		holders[key{"localId", a.LocalID}] = append(holders[key{"localId", a.LocalID}], a.LocalID)
		if a.Email != "" {
			k := key{"email", strings.ToLower(a.Email)}
			holders[k] = append(holders[k], a.LocalID)
		}
		if a.PhoneNumber != "" {
			k := key{"phone number", a.PhoneNumber}
			holders[k] = append(holders[k], a.LocalID)
		}
	}
	bad := map[string]bool{}
	keys := slices.SortedFunc(maps.Keys(holders), func(x, y key) int {
		return strings.Compare(x.kind+"\x00"+x.value, y.kind+"\x00"+y.value)
	})
	for _, k := range keys {
		if ids := holders[k]; len(ids) > 1 {
			reasons = append(reasons, fmt.Sprintf("%d accounts share the %s %s (localIds %s)",
				len(ids), k.kind, k.value, strings.Join(ids, ", ")))
			for _, id := range ids {
				bad[id] = true
			}
		}
	}
	for _, a := range all {
		if bad[a.LocalID] {
			conflicts = append(conflicts, a)
		} else {
			keep = append(keep, a)
		}
	}
	return keep, conflicts, reasons
}

func (st *accountStore) reindex() {
	st.emails = make(map[string]string, len(st.set.byID))
	for id, a := range st.set.byID {
		if a.Email != "" {
			st.emails[strings.ToLower(a.Email)] = id
		}
	}
}

func (st *accountStore) len() int {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return len(st.set.byID)
}

// byUID returns a copy of the account, safe to read without the lock.
func (st *accountStore) byUID(uid string) (account, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	a, ok := st.set.byID[uid]
	if !ok {
		return account{}, false
	}
	return *a, true
}

func (st *accountStore) byEmailAddr(email string) (account, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	id, ok := st.emails[strings.ToLower(email)]
	if !ok {
		return account{}, false
	}
	return *st.set.byID[id], true
}

// find returns copies of the accounts matching any of the identifiers.
func (st *accountStore) find(uids, emails, phones []string, federated []providerKey) []account {
	st.mu.RLock()
	defer st.mu.RUnlock()
	seen := map[string]bool{}
	var out []account
	add := func(a *account, ok bool) {
		if ok && !seen[a.LocalID] {
			seen[a.LocalID] = true
			out = append(out, *a)
		}
	}
	for _, id := range uids {
		a, ok := st.set.byID[id]
		add(a, ok)
	}
	for _, e := range emails {
		id, ok := st.emails[strings.ToLower(e)]
		add(st.set.byID[id], ok)
	}
	for _, p := range phones {
		add(st.set.byPhone(p))
	}
	for _, f := range federated {
		for _, a := range st.set.byID {
			if a.hasProvider(f.ProviderID, f.RawID) {
				add(a, true)
			}
		}
	}
	return out
}

// providerKey names a federated identity: lookup's federatedUserId.
type providerKey struct {
	ProviderID string `json:"providerId"`
	RawID      string `json:"rawId"`
}

// page returns up to n accounts in localId order, starting after the
// localId after, and whether more follow.
func (st *accountStore) page(after string, n int) ([]account, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	var out []account
	for _, id := range slices.Sorted(maps.Keys(st.set.byID)) {
		if id <= after {
			continue
		}
		if len(out) == n {
			return out, true
		}
		out = append(out, *st.set.byID[id])
	}
	return out, false
}

// mutate applies f to a copy of the table and, if f succeeds, writes the copy
// to disk and only then makes it current.
func (st *accountStore) mutate(f func(*accountSet) error) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	next := st.set.clone()
	if err := f(next); err != nil {
		return err
	}
	if err := st.save(next); err != nil {
		return err
	}
	st.set = next
	st.reindex()
	return nil
}

// touch records a sign-in or refresh in memory only: it is bookkeeping that
// reaches disk with the next real change, so the hot paths never wait on fsync.
func (st *accountStore) touch(uid string, login, refresh time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	a, ok := st.set.byID[uid]
	if !ok {
		return
	}
	if !login.IsZero() {
		a.LastLoginAt = login.UnixMilli()
	}
	if !refresh.IsZero() {
		a.LastRefreshAt = refresh.UnixMilli()
	}
}

func (st *accountStore) save(s *accountSet) error {
	disk := accountsOnDisk{Accounts: make([]*account, 0, len(s.byID))}
	// Sorted so the file stays diffable between saves.
	for _, id := range slices.Sorted(maps.Keys(s.byID)) {
		disk.Accounts = append(disk.Accounts, s.byID[id])
	}
	b, err := json.MarshalIndent(disk, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding accounts: %w", err)
	}
	if err := writeFileAtomic(st.path, b, 0o600); err != nil {
		return fmt.Errorf("saving accounts: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new file, never a torn one: write a temp file in the same
// directory, fsync it, rename it over path, fsync the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeAtomicLeftovers deletes the temporary files writeFileAtomic leaves
// beside path when the process dies before its rename (a crash, a SIGKILL):
// they hold a copy of the data (here, password hashes) and would otherwise
// pile up in the state dir with every such death. Call it before the first
// write, while nothing else can be writing path.
func removeAtomicLeftovers(path string) error {
	left, err := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp"))
	if err != nil {
		return err
	}
	for _, f := range left {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the leftover of an interrupted write: %w", err)
		}
	}
	return nil
}

// normalizeEmail accepts a bare address (no display name, no angle brackets).
func normalizeEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return "", errInvalidEmail
	}
	return email, nil
}

var (
	errInvalidEmail = errors.New("INVALID_EMAIL")
	errWeakPassword = errors.New("WEAK_PASSWORD : Password should be at least 6 characters")
)

// checkPassword applies Identity Platform's default password policy.
func checkPassword(pw string) error {
	if len([]rune(pw)) < 6 {
		return errWeakPassword
	}
	return nil
}
