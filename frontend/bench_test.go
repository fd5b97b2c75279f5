package frontend

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/web/components"
)

// BenchmarkSignedInPage measures GET / for a signed-in user through the whole
// handler: session cookie verified (idtoken with the real Admin SDK, against
// the local emulator), the secret fetched from an in-process TLS server over a
// kept-alive connection, the page rendered with templ. It reports the p50
// and p99 of single requests besides the mean.
//
//	go test -run '^$' -bench SignedInPage -benchtime 2000x ./frontend
func BenchmarkSignedInPage(b *testing.B) {
	s := newStack(b)
	uid, err := s.emulator.EnsureUser(context.Background(), "ada@example.com", "correct horse battery")
	if err != nil {
		b.Fatal(err)
	}
	token, err := s.emulator.IDTokenFor(context.Background(), uid, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	h := s.front.Config.Handler // the Frontend itself, without a client socket in between
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
	req.AddCookie(&http.Cookie{Name: "session", Value: bindSession(s.sessionKey(), token)})

	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		durations = append(durations, time.Since(start))
		if rec.Code != http.StatusOK {
			b.Fatalf("GET /: %d", rec.Code)
		}
	}
	reportPercentiles(b, durations)
}

// BenchmarkHomePageRender measures the templ rendering alone.
//
//	go test -run '^$' -bench HomePageRender ./frontend
func BenchmarkHomePageRender(b *testing.B) {
	h := components.Home{
		Shell: components.Shell{Title: "Acme Vault", StylesheetURL: "/static/app.css", ScriptURL: "/static/signin.js",
			Session: components.SessionActive, Client: components.ClientConfig{APIKey: "k", AuthDomain: "d", ProjectID: "p", CSRFToken: "c"}},
		Account: &components.Account{Email: "ada@example.com", UID: "u"},
		Secret:  components.Secret{Message: "Hello World"},
	}
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		if err := components.HomePage(h).Render(context.Background(), rec); err != nil {
			b.Fatal(err)
		}
	}
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	at := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
