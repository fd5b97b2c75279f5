// Package e2e holds the end-to-end tests of the whole flow: a real Chromium,
// driven with chromedp, signs in through the frontend's page, and real mTLS
// and JWT requests go to the gateway, exactly as the frontend and an attacker
// would send them.
//
// By default `go test ./e2e/` starts the local stack (package local/stack) in
// the test process, on free loopback ports with a temporary state directory.
// With -frontend-url (and -gateway-url, -gateway-server-name,
// -client-cert-dir, -email, -password) the same tests run against a deployed
// environment instead; the cases that need the local emulator's signing keys
// skip there and say why:
//
//	go test ./e2e/ -run . -args \
//	    -frontend-url https://frontend-xyz.a.run.app -email e2e@example.com -password ... \
//	    -gateway-url https://10.0.0.7 -gateway-server-name api.internal.example -client-cert-dir ./frontend-cert
//
// The browser tests need Debian's chromium (apt-get install -y chromium).
// Outside CI they skip without it; with CI set they fail, so CI never skips
// them silently. Screenshots go to e2e/testoutput/ (git-ignored).
//
// The package has no code besides its tests; the load driver the benchmarks
// use lives in loadtest/.
package e2e
