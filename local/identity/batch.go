package identity

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// maxBatch is how many accounts one batchCreate or batchDelete may name, as
// on Identity Platform (the Admin SDK's ImportUsers and DeleteUsers limits).
const maxBatch = 1000

// batchDelete is accounts:batchDelete (the Admin SDK's DeleteUsers). Without
// force, enabled accounts are kept and reported, as Google does.
func (e *Emulator) batchDelete(c echo.Context) error {
	var req struct {
		LocalIDs []string `json:"localIds"`
		Force    bool     `json:"force"`
		TenantID string   `json:"tenantId"`
	}
	if err := decodeKnown(c, &req); err != nil {
		return err
	}
	if req.TenantID != "" {
		return badRequest("UNSUPPORTED_TENANT_OPERATION")
	}
	if len(req.LocalIDs) > maxBatch {
		return badRequest("INVALID_ARGUMENT : at most " + strconv.Itoa(maxBatch) + " localIds")
	}
	type failure struct {
		Index   int    `json:"index"`
		LocalID string `json:"localId"`
		Message string `json:"message"`
	}
	var failed []failure
	var deleted []string
	err := e.accounts.mutate(func(s *accountSet) error {
		failed, deleted = nil, nil
		for i, id := range req.LocalIDs {
			a, ok := s.byID[id]
			switch {
			case !ok:
				// A missing account counts as deleted, as on Google.
			case !req.Force && !a.Disabled:
				failed = append(failed, failure{i, id, "NOT_DISABLED : Disable the account before batch deletion."})
			default:
				delete(s.byID, id)
				deleted = append(deleted, id)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range deleted {
		e.sessions.dropUser(id)
	}
	resp := map[string]any{"kind": "identitytoolkit#BatchDeleteAccountsResponse"}
	if len(failed) > 0 {
		resp["errors"] = failed
	}
	return c.JSON(http.StatusOK, resp)
}

// importUser is one user of accounts:batchCreate.
type importUser struct {
	LocalID          string          `json:"localId"`
	Email            string          `json:"email"`
	EmailVerified    bool            `json:"emailVerified"`
	DisplayName      string          `json:"displayName"`
	PhotoURL         string          `json:"photoUrl"`
	PhoneNumber      string          `json:"phoneNumber"`
	Disabled         bool            `json:"disabled"`
	PasswordHash     string          `json:"passwordHash"`
	Salt             string          `json:"salt"`
	CustomAttributes string          `json:"customAttributes"`
	ProviderUserInfo []providerInfo  `json:"providerUserInfo"`
	MFAInfo          []mfaEnrollment `json:"mfaInfo"`
	CreatedAt        json.Number     `json:"createdAt"`
	LastLoginAt      json.Number     `json:"lastLoginAt"`
	TenantID         string          `json:"tenantId"`
}

// batchCreate is accounts:batchCreate (the Admin SDK's ImportUsers): each
// user is checked on its own and the failures are listed by index; the
// valid ones are stored together. Password hashes keep their algorithm
// (see hashes.go), so imported users sign in with their passwords.
func (e *Emulator) batchCreate(c echo.Context) error {
	var req struct {
		Users           []importUser `json:"users"`
		HashAlgorithm   string       `json:"hashAlgorithm"`
		SignerKey       string       `json:"signerKey"`
		SaltSeparator   string       `json:"saltSeparator"`
		Rounds          int          `json:"rounds"`
		MemoryCost      int          `json:"memoryCost"`
		CPUMemCost      int          `json:"cpuMemCost"`
		BlockSize       int          `json:"blockSize"`
		Parallelization int          `json:"parallelization"`
		DKLen           int          `json:"dkLen"`
		Order           string       `json:"passwordHashOrder"`
		SanityCheck     bool         `json:"sanityCheck"`
		AllowOverwrite  bool         `json:"allowOverwrite"`
		TenantID        string       `json:"tenantId"`
	}
	if err := decodeKnown(c, &req); err != nil {
		return err
	}
	if req.TenantID != "" {
		return badRequest("UNSUPPORTED_TENANT_OPERATION")
	}
	switch {
	case len(req.Users) == 0:
		return badRequest("MISSING_USER_ACCOUNT")
	case len(req.Users) > maxBatch:
		return badRequest("INVALID_ARGUMENT : at most " + strconv.Itoa(maxBatch) + " users")
	}
	template, aerr := hashTemplate(req.HashAlgorithm, req.SignerKey, req.SaltSeparator, req.Rounds, req.MemoryCost,
		req.CPUMemCost, req.BlockSize, req.Parallelization, req.DKLen, req.Order)
	if aerr != nil {
		return aerr
	}
	type failure struct {
		Index   int    `json:"index"`
		Message string `json:"message"`
	}
	var failed []failure
	now := e.now()
	var accounts []*account
	for i, u := range req.Users {
		a, msg := e.importedAccount(u, template, now)
		if msg != "" {
			failed = append(failed, failure{i, msg})
			continue
		}
		accounts = append(accounts, a)
	}
	err := e.accounts.mutate(func(s *accountSet) error {
		for _, a := range accounts {
			if old, ok := s.byID[a.LocalID]; ok && req.AllowOverwrite {
				delete(s.byID, old.LocalID)
			}
			if err := s.insert(a); err != nil {
				// Reported by its index; the others still go in.
				for i, u := range req.Users {
					if u.LocalID == a.LocalID {
						failed = append(failed, failure{i, err.Error()})
						break
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	resp := map[string]any{"kind": "identitytoolkit#UploadAccountResponse"}
	if len(failed) > 0 {
		resp["error"] = failed
	}
	return c.JSON(http.StatusOK, resp)
}

// hashTemplate checks the batch's hash settings once, for every user.
func hashTemplate(alg, signerKey, saltSep string, rounds, mem, cpuMem, block, par, dkLen int, order string) (importedHash, *apiError) {
	h := importedHash{Alg: alg, Rounds: rounds, Order: order}
	bad := func(msg string) (importedHash, *apiError) { return h, badRequest(msg) }
	if order != "" && order != "SALT_AND_PASSWORD" && order != "PASSWORD_AND_SALT" && order != "UNSPECIFIED_ORDER" {
		return bad("INVALID_ARGUMENT : passwordHashOrder " + order)
	}
	var ok bool
	switch alg {
	case "":
		// Only users without passwords, or none at all.
	case "BCRYPT":
	case "SCRYPT":
		if h.Key, ok = decodeB64(signerKey); !ok || len(h.Key) == 0 {
			return bad("MISSING_SIGNER_KEY")
		}
		if h.SaltSep, ok = decodeB64(saltSep); !ok {
			return bad("INVALID_ARGUMENT : saltSeparator is not base64")
		}
		if rounds < 1 || rounds > 8 {
			return bad("INVALID_ROUNDS : rounds must be between 1 and 8")
		}
		if mem < 1 || mem > 14 {
			return bad("INVALID_MEMORY_COST : memoryCost must be between 1 and 14")
		}
		h.Mem = mem
	case "STANDARD_SCRYPT":
		// Bounded so that one sign-in cannot take more than 64 MiB.
		if cpuMem < 2 || cpuMem&(cpuMem-1) != 0 || block < 1 || par < 1 || dkLen < 1 || dkLen > 128 ||
			int64(128)*int64(cpuMem)*int64(block) > 64<<20 || block*par >= 1<<30 {
			return bad("INVALID_ARGUMENT : standard scrypt needs cpuMemCost a power of two, blockSize, parallelization and dkLen, within 64 MiB")
		}
		h.Mem, h.Block, h.Par, h.DKLen = cpuMem, block, par, dkLen
	case "HMAC_SHA256", "HMAC_SHA512", "HMAC_SHA1", "HMAC_MD5":
		if h.Key, ok = decodeB64(signerKey); !ok || len(h.Key) == 0 {
			return bad("MISSING_SIGNER_KEY")
		}
	case "MD5", "SHA1", "SHA256", "SHA512":
		if rounds < 0 || rounds > 8192 {
			return bad("INVALID_ROUNDS : rounds must be between 0 and 8192")
		}
	case "PBKDF2_SHA256", "PBKDF_SHA1":
		if rounds < 1 || rounds > 120000 {
			return bad("INVALID_ROUNDS : rounds must be between 1 and 120000")
		}
	default:
		return bad("INVALID_HASH_ALGORITHM : " + alg + " is not supported by this emulator")
	}
	return h, nil
}

// importedAccount builds one imported user, or says why it is refused.
func (e *Emulator) importedAccount(u importUser, template importedHash, now time.Time) (*account, string) {
	if u.TenantID != "" {
		return nil, "UNSUPPORTED_TENANT_OPERATION"
	}
	if u.LocalID == "" || len(u.LocalID) > 128 {
		return nil, "INVALID_LOCAL_ID : localId must be 1 to 128 characters"
	}
	a := newAccount(u.LocalID, now)
	if u.Email != "" {
		email, err := normalizeEmail(u.Email)
		if err != nil || len(email) > maxEmailLen {
			return nil, "INVALID_EMAIL"
		}
		a.Email = email
	}
	if err := checkSizes(&u.DisplayName, &u.PhotoURL, &u.PhoneNumber); err != nil {
		return nil, err.Error()
	}
	a.EmailVerified, a.DisplayName, a.PhotoURL, a.PhoneNumber, a.Disabled = u.EmailVerified, u.DisplayName, u.PhotoURL, u.PhoneNumber, u.Disabled
	if u.CustomAttributes != "" {
		if msg := checkClaims(u.CustomAttributes); msg != "" {
			return nil, msg
		}
		a.CustomAttributes = u.CustomAttributes
	}
	for _, p := range u.ProviderUserInfo {
		if p.ProviderID == "password" || p.ProviderID == "phone" {
			continue // follow from the email, password and phone number
		}
		if p.ProviderID == "" || p.RawID == "" {
			return nil, "INVALID_ARGUMENT : providerUserInfo needs providerId and rawId"
		}
		a.Providers = append(a.Providers, p)
	}
	mfa, err := checkMFA(u.MFAInfo, now)
	if err != nil {
		return nil, err.Error()
	}
	a.MFA = mfa
	if ms, err := u.CreatedAt.Int64(); err == nil && ms > 0 {
		a.CreatedAt = ms
	}
	if ms, err := u.LastLoginAt.Int64(); err == nil && ms > 0 {
		a.LastLoginAt = ms
	}
	if u.PasswordHash != "" {
		if template.Alg == "" {
			return nil, "INVALID_HASH_ALGORITHM : a password hash needs the batch's hashAlgorithm"
		}
		h := template
		var ok bool
		if h.Hash, ok = decodeB64(u.PasswordHash); !ok || len(h.Hash) == 0 {
			return nil, "INVALID_PASSWORD_HASH : not base64"
		}
		if u.Salt != "" {
			if h.Salt, ok = decodeB64(u.Salt); !ok {
				return nil, "INVALID_ARGUMENT : salt is not base64"
			}
		}
		a.PasswordHash, a.PasswordUpdatedAt = h.encode(), now.UnixMilli()
	}
	return a, ""
}

// queryAccounts is accounts:query (the Admin SDK's QueryUsers): accounts
// matching any expression (all when none), sorted, then offset and limit.
func (e *Emulator) queryAccounts(c echo.Context) error {
	var req struct {
		ReturnUserInfo *bool       `json:"returnUserInfo"`
		Limit          json.Number `json:"limit"`
		Offset         json.Number `json:"offset"`
		SortBy         string      `json:"sortBy"`
		Order          string      `json:"order"`
		TenantID       string      `json:"tenantId"`
		Expression     []struct {
			Email       string `json:"email"`
			PhoneNumber string `json:"phoneNumber"`
			UserID      string `json:"userId"`
		} `json:"expression"`
	}
	if err := decodeKnown(c, &req); err != nil {
		return err
	}
	if req.TenantID != "" {
		return badRequest("UNSUPPORTED_TENANT_OPERATION")
	}
	limit, offset := int64(500), int64(0)
	if req.Limit != "" {
		n, err := req.Limit.Int64()
		if err != nil || n < 1 || n > 500 {
			return badRequest("INVALID_ARGUMENT : limit must be between 1 and 500")
		}
		limit = n
	}
	if req.Offset != "" {
		n, err := req.Offset.Int64()
		if err != nil || n < 0 {
			return badRequest("INVALID_ARGUMENT : offset must be non-negative")
		}
		offset = n
	}
	keys := map[string]func(a account) string{
		"": func(a account) string { return a.LocalID }, "USER_ID": func(a account) string { return a.LocalID },
		"NAME":          func(a account) string { return a.DisplayName },
		"CREATED_AT":    func(a account) string { return fmt.Sprintf("%020d", a.CreatedAt) },
		"LAST_LOGIN_AT": func(a account) string { return fmt.Sprintf("%020d", a.LastLoginAt) },
		"USER_EMAIL":    func(a account) string { return strings.ToLower(a.Email) },
	}
	key, ok := keys[req.SortBy]
	if !ok || (req.Order != "" && req.Order != "ASC" && req.Order != "DESC") {
		return badRequest("INVALID_ARGUMENT : sortBy " + req.SortBy + ", order " + req.Order)
	}
	all, _ := e.accounts.page("", maxAccountsLimit)
	var matched []account
	for _, a := range all {
		keep := len(req.Expression) == 0
		for _, x := range req.Expression {
			if (x.Email == "" || strings.EqualFold(x.Email, a.Email)) && (x.PhoneNumber == "" || x.PhoneNumber == a.PhoneNumber) &&
				(x.UserID == "" || x.UserID == a.LocalID) {
				keep = true
			}
		}
		if keep {
			matched = append(matched, a)
		}
	}
	slices.SortStableFunc(matched, func(x, y account) int {
		if req.Order == "DESC" {
			x, y = y, x
		}
		return strings.Compare(key(x), key(y))
	})
	count := len(matched)
	matched = matched[min(int(offset), len(matched)):]
	matched = matched[:min(int(limit), len(matched))]
	resp := map[string]any{"recordsCount": strconv.Itoa(count)}
	if req.ReturnUserInfo == nil || *req.ReturnUserInfo {
		users := make([]userInfo, len(matched))
		for i, a := range matched {
			users[i] = infoOf(a)
		}
		resp["userInfo"] = users
	}
	return c.JSON(http.StatusOK, resp)
}

// maxAccountsLimit is more than any store holds: page's "all of them".
const maxAccountsLimit = 1 << 30
