package identity

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Hostile rows from the security review (issue 13). Each row failed before
// its fix; those that raced on map order repeat often enough that the old
// code could not pass them all by luck (2^-20 for twenty tries).

const takeoverTries = 20

func TestAUserCannotTakeAnotherUsersEmail(t *testing.T) {
	tests := []struct {
		name    string
		reveal  bool // RevealUnknownEmails: email enumeration protection off
		newMail string
		want    string
	}{
		{"with enumeration protection a user's email change must go through verification",
			false, "victim@example.com", "OPERATION_NOT_ALLOWED : Please verify the new email before changing email."},
		{"without enumeration protection another user's email is refused as taken",
			true, "victim@example.com", "EMAIL_EXISTS"},
		{"without enumeration protection another user's email in other letter case is refused as taken",
			true, "Victim@EXAMPLE.com", "EMAIL_EXISTS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newTestEmulator(t, func(c *Config) { c.RevealUnknownEmails = tt.reveal })
			victim := signUp(t, srv, "victim@example.com", "victim-password")
			attacker := signUp(t, srv, "attacker@example.com", "attacker-password")
			for range takeoverTries {
				code, out := call(t, srv, "POST", updatePath, map[string]any{
					"idToken": attacker["idToken"], "email": tt.newMail, "returnSecureToken": true})
				if code != 400 || errMessage(out) != tt.want {
					t.Fatalf("attacker's update to %s = %d %q; want 400 %s", tt.newMail, code, errMessage(out), tt.want)
				}
			}
			code, out := call(t, srv, "POST", signInPath, map[string]any{"email": "victim@example.com", "password": "attacker-password"})
			if code != 400 {
				t.Fatalf("sign-in as the victim with the attacker's password = %d %v; want 400", code, out)
			}
			code, out = call(t, srv, "POST", signInPath, map[string]any{"email": "victim@example.com", "password": "victim-password"})
			if code != 200 || out["localId"] != victim["localId"] {
				t.Fatalf("victim's sign-in = %d %v; want 200 as %v", code, out, victim["localId"])
			}
		})
	}
}

func TestTheAdminCannotGiveTwoAccountsOneEmailOrPhone(t *testing.T) {
	tests := []struct {
		name  string
		field string
		value string
		want  string
	}{
		{"an email another account holds is refused", "email", "Victim@Example.COM", "EMAIL_EXISTS"},
		{"a phone number another account holds is refused", "phoneNumber", "+15555550100", "PHONE_NUMBER_EXISTS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newTestEmulator(t)
			admin := []string{"Authorization", "Bearer owner"}
			call(t, srv, "POST", adminPath+"/accounts", map[string]any{"localId": "victim", "email": "victim@example.com", "phoneNumber": "+15555550100"}, admin...)
			call(t, srv, "POST", adminPath+"/accounts", map[string]any{"localId": "other", "email": "other@example.com"}, admin...)
			for range takeoverTries {
				code, out := call(t, srv, "POST", adminPath+"/accounts:update", map[string]any{"localId": "other", tt.field: tt.value}, admin...)
				if code != 400 || errMessage(out) != tt.want {
					t.Fatalf("admin update of %s to %s = %d %q; want 400 %s", tt.field, tt.value, code, errMessage(out), tt.want)
				}
			}
		})
	}
}

func TestConflictingSavedAccountsAreSetAsideAndTheRestStart(t *testing.T) {
	dir := t.TempDir()
	// What the takeover bug left behind: two accounts with one email.
	_, srv0 := newTestEmulator(t, func(c *Config) { c.StateDir = dir })
	signUp(t, srv0, "victim@example.com", "victim-password")
	signUp(t, srv0, "attacker@example.com", "attacker-password")
	signUp(t, srv0, "bystander@example.com", "bystander-password")
	srv0.Close()
	path := filepath.Join(dir, accountsFile)
	var disk accountsOnDisk
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &disk); err != nil {
		t.Fatal(err)
	}
	for _, a := range disk.Accounts {
		if a.Email == "attacker@example.com" {
			a.Email = "VICTIM@example.com"
		}
	}
	b, _ = json.Marshal(disk)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	e, srv := newTestEmulator(t, func(c *Config) { c.StateDir = dir })
	notices := strings.Join(e.Notices(), "\n")
	asides, _ := filepath.Glob(filepath.Join(dir, "accounts.conflict-*.json"))
	if len(asides) != 1 {
		t.Fatalf("set-aside files = %v; want one", asides)
	}
	for _, want := range []string{"2 accounts share the email victim@example.com", asides[0], "restart"} {
		if !strings.Contains(notices, want) {
			t.Errorf("Notices() = %q; want it to mention %q", notices, want)
		}
	}
	t.Run("neither conflicting account can sign in", func(t *testing.T) {
		for _, pw := range []string{"victim-password", "attacker-password"} {
			if code, out := call(t, srv, "POST", signInPath, map[string]any{"email": "victim@example.com", "password": pw}); code != 400 {
				t.Errorf("sign-in as victim@example.com = %d %v; want 400", code, out)
			}
		}
	})
	t.Run("every other account still signs in", func(t *testing.T) {
		if code, out := call(t, srv, "POST", signInPath, map[string]any{"email": "bystander@example.com", "password": "bystander-password"}); code != 200 {
			t.Errorf("bystander's sign-in = %d %v; want 200", code, out)
		}
	})
	t.Run("the set-aside file keeps both accounts", func(t *testing.T) {
		b, err := os.ReadFile(asides[0])
		if err != nil {
			t.Fatal(err)
		}
		var aside accountsOnDisk
		if err := json.Unmarshal(b, &aside); err != nil || len(aside.Accounts) != 2 {
			t.Fatalf("set-aside file = %v, %d accounts; want 2", err, len(aside.Accounts))
		}
	})
	t.Run("the next start is clean", func(t *testing.T) {
		srv.Close()
		again, _ := newTestEmulator(t, func(c *Config) { c.StateDir = dir })
		if n := again.Notices(); n != nil {
			t.Fatalf("Notices() after the repair = %q; want none", n)
		}
	})
}
