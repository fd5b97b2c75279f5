package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"

	"github.com/acme/cloudrun-istio-gke/backend"
	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
)

// Documentation the rows below follow.
const (
	docOneToken = "RFC 6750 section 2 (clients MUST NOT use more than one method to transmit the token) and section 3.1 (invalid_request, 400); " +
		"https://istio.io/latest/docs/reference/config/security/jwt/#JWTRule (fromHeaders; the principal of a request with several tokens is undefined)"
	docJoined = "envoyproxy/envoy source/common/http/header_map_impl.cc insertByKey (a repeated inline header such as Authorization is appended to the first, joined by ','); " +
		"source/extensions/filters/http/jwt_authn/extractor.cc (the prefix is found anywhere in the value, the token is the rest)"
)

// TestGatewayAndBackendAgreeOnTheUser sends one request in every shape that
// can carry two identities, through a gateway built from istio/ to the real
// backend, and checks that whatever is served is served to the user the
// gateway authenticated: the principal the gateway hands upstream
// (x-jwt-claim-sub, set from the token it verified) and the uid in the
// backend's answer are the same, or nothing is served.
func TestGatewayAndBackendAgreeOnTheUser(t *testing.T) {
	st := requireLocal(t, "a gateway of its own in front of a backend of its own")
	alice := userTokens(t)
	bobUID, bob := verifiedUser(t, "e2e-bob-"+strings.ToLower(randomString(8))+"@example.com")

	// The upstream notes the principal the gateway passed, then lets the
	// real backend answer. It records before the backend writes a byte, so
	// a record is there by the time the client reads the answer.
	principals := make(chan []string, 1)
	be := newBackend(t, st.ProjectID, verifierFor(t, st.ProjectID, hostPort(t, st.IdentityURL)))
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		principals <- r.Header.Values("X-Jwt-Claim-Sub")
		be.Handler().ServeHTTP(w, r)
	}))
	defer upstream.Close()
	g := startOwnGateway(t, ownGatewayOptions{upstream: hostPort(t, upstream.URL)})

	a, b := alice.valid, bob
	tests := []struct {
		name   string
		query  string
		values []string // Authorization header values, one header each
		http2  bool
		// wantStatus is what the client gets; wantPrincipal the sub the
		// gateway passed upstream ("" when the request never got there or
		// had no token); wantUser the uid served ("" when nothing was).
		wantStatus                 int
		wantBody                   string
		wantPrincipal, wantUser    string
		wantNotReachingTheUpstream bool
		wantBackendsInvalidRequest bool
	}{
		{name: "one Bearer header is one user for both",
			values: []string{"Bearer " + a}, wantStatus: 200, wantPrincipal: alice.uid, wantUser: alice.uid},
		{name: "two Bearer headers are one joined value at the gateway, whose token is malformed",
			values: []string{"Bearer " + a, "Bearer " + b}, wantStatus: 401, wantBody: bodyBadFormat, wantNotReachingTheUpstream: true},
		{name: "a lowercase bearer header for Alice then a Bearer header for Bob: the gateway checks Bob, the backend refuses both",
			values: []string{"bearer " + a, "Bearer " + b}, wantStatus: 400, wantPrincipal: bobUID, wantBackendsInvalidRequest: true},
		{name: "a Basic header then a Bearer header: the gateway checks the Bearer one, the backend refuses both",
			values: []string{"Basic YWxpY2U6c2VjcmV0", "Bearer " + b}, wantStatus: 400, wantPrincipal: bobUID, wantBackendsInvalidRequest: true},
		{name: "two tokens joined by a comma in one header are malformed at the gateway",
			values: []string{"Bearer " + a + ", Bearer " + b}, wantStatus: 401, wantBody: bodyBadFormat, wantNotReachingTheUpstream: true},
		{name: "a Bearer header for Alice and ?access_token= for Bob: the gateway reads only the header, the backend refuses the query token",
			query: "access_token=" + url.QueryEscape(b), values: []string{"Bearer " + a},
			wantStatus: 400, wantPrincipal: alice.uid, wantBackendsInvalidRequest: true},
		{name: "a lowercase bearer header for Alice and ?access_token= for Bob: no token where the gateway looks, so no principal",
			query: "access_token=" + url.QueryEscape(b), values: []string{"bearer " + a},
			wantStatus: 403, wantBody: bodyRBACDenied, wantNotReachingTheUpstream: true},
		{name: "a Bearer header for Alice and an escaped access%5Ftoken for Bob: the backend refuses the query token however it is spelled",
			query: "access%5Ftoken=" + url.QueryEscape(b), values: []string{"Bearer " + a},
			wantStatus: 400, wantPrincipal: alice.uid, wantBackendsInvalidRequest: true},
		{name: "Bearer in the middle of a value: the gateway finds Bob's token, the backend refuses a value that is not a bearer credential",
			values: []string{"Token x, Bearer " + b}, wantStatus: 401, wantPrincipal: bobUID},
		{name: "only ?access_token= is no token at the gateway",
			query: "access_token=" + url.QueryEscape(b), wantStatus: 403, wantBody: bodyRBACDenied, wantNotReachingTheUpstream: true},
		{name: "over HTTP/2, two authorization fields are joined as over HTTP/1",
			values: []string{"Bearer " + a, "Bearer " + b}, http2: true, wantStatus: 401, wantBody: bodyBadFormat, wantNotReachingTheUpstream: true},
		{name: "over HTTP/2, a lowercase bearer field then a Bearer field: the backend refuses both",
			values: []string{"bearer " + a, "Bearer " + b}, http2: true, wantStatus: 400, wantPrincipal: bobUID, wantBackendsInvalidRequest: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log("follows", docOneToken, ";", docJoined)
			resp, proto := sendTo(t, g, "/api/secure.json?"+tt.query, tt.values, tt.http2)
			if tt.http2 && proto != 2 {
				t.Fatalf("the request went over HTTP/%d; want HTTP/2", proto)
			}
			var principal []string
			reached := false
			select {
			case principal = <-principals:
				reached = true
			default:
			}
			served := jsonAt(resp.body, "uid")
			if resp.status != http.StatusOK {
				served = ""
			}
			// The property, whatever the row expects: nothing is served to
			// anyone but the gateway's principal.
			if served != "" && (len(principal) != 1 || principal[0] != served) {
				t.Errorf("two identities: the gateway authenticated %q, the backend served %q", principal, served)
			}
			if resp.status != tt.wantStatus {
				t.Fatalf("answered %v; want %d", resp, tt.wantStatus)
			}
			if tt.wantBody != "" && resp.body != tt.wantBody {
				t.Errorf("body = %q; want %q", resp.body, tt.wantBody)
			}
			if reached == tt.wantNotReachingTheUpstream {
				t.Errorf("the request reached the upstream: %v; want %v", reached, !tt.wantNotReachingTheUpstream)
			}
			if reached && strings.Join(principal, ",") != tt.wantPrincipal {
				t.Errorf("the gateway passed principal %q; want %q", principal, tt.wantPrincipal)
			}
			if served != tt.wantUser {
				t.Errorf("the backend served %q; want %q", served, tt.wantUser)
			}
			if tt.wantBackendsInvalidRequest {
				if e := jsonAt(resp.body, "error"); e != "invalid_request" {
					t.Errorf("error = %q; want the backend's invalid_request (body %q)", e, resp.body)
				}
				if h := resp.header.Get("Www-Authenticate"); h != `Bearer realm="api", error="invalid_request"` {
					t.Errorf("WWW-Authenticate = %q; want the backend's invalid_request challenge", h)
				}
			}
		})
	}
}

// TestARevokedUserLosesTheAPIWithinTheBound shows what the tutorial promises
// about sign-out: the gateway checks no revocation (an ID token is good there
// until it expires, as on Istio), so it is the backend's check, one lookup
// per user per 30 s, that ends a revoked user's access, no later than 30 s
// after the revocation. The backend's clock is a fake one, moved across the
// bound; the revocation is the one sign-out makes (the account's validSince
// moved past the token's iat).
func TestARevokedUserLosesTheAPIWithinTheBound(t *testing.T) {
	st := requireLocal(t, "a backend of its own on a fake clock, behind a gateway of its own")
	uid, tok := verifiedUser(t, "e2e-carol-"+strings.ToLower(randomString(8))+"@example.com")
	clock := clocktest.New(time.Now())
	v, err := idtoken.New(t.Context(), idtoken.Config{ProjectID: st.ProjectID, EmulatorHost: hostPort(t, st.IdentityURL),
		Now: clock.Now, RevocationCheck: idtoken.DefaultRevocationCheck})
	if err != nil {
		t.Fatal(err)
	}
	be := newBackend(t, st.ProjectID, v)
	passed := make(chan string, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		passed <- r.Header.Get("X-Jwt-Claim-Sub")
		be.Handler().ServeHTTP(w, r)
	}))
	defer upstream.Close()
	g := startOwnGateway(t, ownGatewayOptions{upstream: hostPort(t, upstream.URL)})

	var claims struct {
		IAT int64 `json:"iat"`
	}
	if err := decodeSegment(strings.Split(tok, ".")[1], &claims); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name       string
		do         func(t *testing.T)
		wantStatus int
	}{
		{"before the revocation the user is served", nil, 200},
		{"the revocation: sign-out moves validSince past the token", func(t *testing.T) {
			revokeAt(t, st.IdentityURL, uid, claims.IAT+1)
		}, 200},
		{"a second inside the bound the earlier check still stands", func(*testing.T) { clock.Advance(idtoken.DefaultRevocationCheck - time.Second) }, 200},
		{"at the bound the backend refuses the token the gateway still passes", func(*testing.T) { clock.Advance(time.Second) }, 401},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.do != nil {
				s.do(t)
			}
			resp, err := g.get(t, "/api/secure.json", tok, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.status != s.wantStatus {
				t.Fatalf("answered %v; want %d", resp, s.wantStatus)
			}
			select {
			case sub := <-passed:
				if sub != uid {
					t.Errorf("the gateway passed principal %q; want %q", sub, uid)
				}
			default:
				t.Fatal("the gateway did not pass the request on; the revocation bound is the backend's to keep")
			}
			if s.wantStatus == 401 && jsonAt(resp.body, "error") != "unauthenticated" {
				t.Errorf("body %q; want the backend's unauthenticated", resp.body)
			}
		})
	}
}

// revokeAt revokes uid's tokens issued before the second validSince through
// the emulator's admin API: the field RevokeRefreshTokens sets, at a second
// the test chooses, so that no test waits for the clock to tick.
func revokeAt(t *testing.T, emulatorURL, uid string, validSince int64) {
	t.Helper()
	adminUpdate(t, emulatorURL, `{"localId":"`+uid+`","validSince":"`+strconv.FormatInt(validSince, 10)+`"}`)
}

// sendTo sends GET path to g with each of values as an Authorization header
// of its own, over HTTP/2 when asked, and returns the answer and the HTTP
// major version it went over.
func sendTo(t *testing.T, g ownGateway, path string, values []string, http2 bool) (gatewayResponse, int) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, g.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = env.gatewayServerName
	for _, v := range values {
		req.Header.Add("Authorization", v)
	}
	cfg := clientTLS(t, env.clientCertDir, true)
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	if http2 {
		cfg.NextProtos = []string{"h2"}
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		t.Fatal(err)
	}
	return gatewayResponse{status: resp.StatusCode, header: resp.Header, body: string(body)}, resp.ProtoMajor
}

// verifiedUser creates a user in the shared emulator whose email is verified
// (with the Admin SDK, as an operator would) and returns its uid and a fresh
// ID token.
func verifiedUser(t *testing.T, email string) (uid, idToken string) {
	t.Helper()
	st := requireLocal(t, "creating a user needs the local emulator")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	password := randomString(16)
	noteSecret(password)
	uid, err := st.Emulator.EnsureUser(ctx, email, password)
	if err != nil {
		t.Fatalf("creating %s: %v", email, err)
	}
	verifyEmail(t, uid)
	tok, err := st.Emulator.IDTokenFor(ctx, uid, time.Now())
	if err != nil {
		t.Fatalf("minting a token for %s: %v", email, err)
	}
	noteSecret(tok)
	return uid, tok
}

// adminClient is the Firebase Admin SDK pointed at the shared emulator (the
// stack set FIREBASE_AUTH_EMULATOR_HOST), made once: in emulator mode the SDK
// builds a transport of its own that nothing closes.
var adminClient = sync.OnceValues(func() (*auth.Client, error) {
	ctx := context.Background()
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: env.local.ProjectID})
	if err != nil {
		return nil, fmt.Errorf("firebase.NewApp: %w", err)
	}
	return app.Auth(ctx)
})

// verifyEmail marks uid's email verified, as the user's click on the
// verification link would: the gateway and the backend require it.
func verifyEmail(t testing.TB, uid string) {
	t.Helper()
	requireLocal(t, "the Admin SDK talks to the local emulator")
	c, err := adminClient()
	if err != nil {
		t.Fatalf("the Admin SDK: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.UpdateUser(ctx, uid, (&auth.UserToUpdate{}).EmailVerified(true)); err != nil {
		t.Fatalf("verifying the email of %s: %v", uid, err)
	}
}

// verifyEmailOf marks the email of the local emulator's user with that
// address verified, as following the verification link does (devstack's
// demo user should be seeded verified, issue 13; then this is a no-op).
func verifyEmailOf(email string) error {
	c, err := adminClient()
	if err != nil {
		return fmt.Errorf("the Admin SDK: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := c.GetUserByEmail(ctx, email)
	if err != nil {
		return fmt.Errorf("looking up the user %s: %w", email, err)
	}
	if u.EmailVerified {
		return nil
	}
	if _, err := c.UpdateUser(ctx, u.UID, (&auth.UserToUpdate{}).EmailVerified(true)); err != nil {
		return fmt.Errorf("verifying the email of %s: %w", email, err)
	}
	return nil
}

// verifyEmailAt marks uid's email verified at an emulator of a test's own,
// through its admin API: the call UpdateUser(...).EmailVerified(true) makes.
func verifyEmailAt(t *testing.T, emulatorURL, uid string) {
	t.Helper()
	adminUpdate(t, emulatorURL, `{"localId":"`+uid+`","emailVerified":true}`)
}

// adminUpdate posts body to the emulator's admin accounts:update, as the
// Admin SDK does ("Bearer owner" is the emulator's admin credential).
func adminUpdate(t *testing.T, emulatorURL, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		emulatorURL+"/identitytoolkit.googleapis.com/v1/projects/demo-acme/accounts:update", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer owner")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("updating an account through the emulator's admin API: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("updating an account through the emulator's admin API: %d %s", resp.StatusCode, b)
	}
}

// newBackend is the project's backend, as cmd/backend builds it, for a
// gateway of the test's own to send to.
func newBackend(t *testing.T, projectID string, v idtoken.Verifier) *backend.Server {
	t.Helper()
	b, err := backend.New(backend.Config{Addr: "127.0.0.1:0", ProjectID: projectID, Grace: time.Second,
		RevocationCheck: idtoken.DefaultRevocationCheck}, backend.Deps{Verifier: v})
	if err != nil {
		t.Fatalf("backend.New: %v", err)
	}
	return b
}
