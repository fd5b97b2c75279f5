package identity_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/acme/cloudrun-istio-gke/local/identity"
)

// An emulator serves the Identity Toolkit API, the Secure Token API and the
// signing keys on one handler. Point the Firebase JS SDK at its URL with
// connectAuthEmulator, the Admin Go SDK with FIREBASE_AUTH_EMULATOR_HOST
// (the URL without "http://"), and a JWT verifier at URL + identity.JWKSPath.
func Example() {
	dir, err := os.MkdirTemp("", "identity-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	e, err := identity.New(identity.Config{ProjectID: "demo-acme", StateDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()

	// Seed a user, as devstack does at every start.
	if _, err := e.EnsureUser(context.Background(), "demo@example.com", "demo password"); err != nil {
		log.Fatal(err)
	}

	// Sign in over REST, exactly as the JS SDK does.
	resp, err := http.Post(srv.URL+"/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=any",
		"application/json", strings.NewReader(`{"email":"demo@example.com","password":"demo password","returnSecureToken":true}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("sign-in:", resp.Status)
	fmt.Println("issuer:", e.Issuer())
	// Output:
	// sign-in: 200 OK
	// issuer: https://securetoken.google.com/demo-acme
}
