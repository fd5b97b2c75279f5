package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/acme/cloudrun-istio-gke/internal/hopfacts"
)

// pathPanel is what the "How this request reached the backend" panel shows,
// and what the browser learned from the page's Server-Timing.
type pathPanel struct {
	Peer     string   `json:"peer"`
	PeerHash string   `json:"peerHash"` // the full hash, from the title
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience string   `json:"aud"`
	Expires  string   `json:"exp"`
	Timings  string   `json:"timings"`
	Metrics  []string `json:"metrics"` // Server-Timing names the navigation carried
	Widths   [2]int   `json:"widths"`  // document scroll width, viewport width
}

const pathPanelJS = `(() => {
	const text = (id) => { const el = document.getElementById(id); return el ? el.innerText.trim() : ''; };
	const peer = document.getElementById('path-peer');
	const hash = peer && peer.closest('li').querySelector('code[title]');
	const nav = performance.getEntriesByType('navigation')[0];
	return {
		peer: text('path-peer'),
		peerHash: hash ? hash.title : '',
		iss: text('path-iss'), sub: text('path-sub'), aud: text('path-aud'), exp: text('path-exp'),
		timings: (document.querySelector('.path-timings') || {innerText: ''}).innerText,
		metrics: nav && nav.serverTiming ? nav.serverTiming.map((m) => m.name) : [],
		widths: [document.documentElement.scrollWidth, window.innerWidth],
	};
})()`

// testRequestPath, a group of TestBrowser, signs in and reads the panel
// under the secret: every fact must be the one the hops really saw — the
// frontend's own certificate as the gateway forwarded it, the token in the
// session cookie as the backend verified it, and times from each hop — at
// 1280 px and at 320 px, and with JavaScript off.
func testRequestPath(t *testing.T, b *browser) {
	email, password := requireUser(t)
	tb := b.newTab(t)
	tb.signIn(t, email, password)
	claims := checkSessionCookie(t, tb.sessionCookie(t), email)
	wantURI, wantHash := frontendIdentity(t)

	read := func(t *testing.T) pathPanel {
		t.Helper()
		tb.do(t, "waiting for the panel", chromedp.WaitVisible(chromedp.ID("request-path")))
		ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
		defer cancel()
		p, err := chromedp.Run(ctx, chromedp.Evaluate[pathPanel](pathPanelJS))
		if err != nil {
			t.Fatalf("reading the panel: %v", err)
		}
		return p
	}
	check := func(t *testing.T, p pathPanel) {
		t.Helper()
		if wantURI != "" && (p.Peer != wantURI || p.PeerHash != wantHash) {
			t.Errorf("client certificate shown as %q (SHA-256 %q); want the frontend's own, %q (%q)", p.Peer, p.PeerHash, wantURI, wantHash)
		}
		if !strings.HasPrefix(p.Peer, "spiffe://") {
			t.Errorf("client certificate shown as %q; want a SPIFFE identity", p.Peer)
		}
		if p.Issuer != claims["iss"] || p.Subject != claims["sub"] || p.Audience != claims["aud"] {
			t.Errorf("token shown as iss %q sub %q aud %q; want the session's token: %v %v %v", p.Issuer, p.Subject, p.Audience, claims["iss"], claims["sub"], claims["aud"])
		}
		if !regexp.MustCompile(`^\d+ (min|s) left$`).MatchString(p.Expires) {
			t.Errorf("expiry shown as %q; want the time left", p.Expires)
		}
		for _, want := range []string{"measured by the frontend", "x-envoy-upstream-service-time", "Server-Timing"} {
			if !strings.Contains(p.Timings, want) {
				t.Errorf("timings %q: want a figure from %q", p.Timings, want)
			}
		}
		if p.Widths[0] > p.Widths[1] {
			t.Errorf("the page is %d px wide in a %d px viewport; want no horizontal scrolling", p.Widths[0], p.Widths[1])
		}
	}

	t.Run("at 1280 px the panel shows the hops' facts and the browser gets them in Server-Timing", func(t *testing.T) {
		p := read(t)
		check(t, p)
		if got := strings.Join(p.Metrics, ","); got != "backend-call,gateway,backend" {
			t.Errorf("Server-Timing metrics of the page: %q; want backend-call,gateway,backend", got)
		}
		fullScreenshot(t, tb, "request-path-1280px.png")
	})
	t.Run("at 320 px the panel fits the screen", func(t *testing.T) {
		tb.do(t, "emulating a 320 px wide phone", chromedp.EmulateViewport(320, 640, chromedp.EmulateMobile))
		tb.reload(t)
		check(t, read(t))
		fullScreenshot(t, tb, "request-path-320px.png")
	})
	t.Run("without JavaScript the panel is all there", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
		defer cancel()
		if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatalf("turning JavaScript off: %v", err)
		}
		tb.reload(t)
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("request-path")))
		if err != nil {
			t.Fatalf("reading the panel without JavaScript: %v", err)
		}
		for _, want := range []string{wantURI, claims["iss"].(string), "x-envoy-upstream-service-time"} {
			if !strings.Contains(text, want) {
				t.Errorf("panel without JavaScript %q: want %q", text, want)
			}
		}
	})
}

// TestAClientSentXFCCNeverReachesTheBackend sends, with the frontend's own
// certificate and a valid token, x-forwarded-client-cert values that claim
// another workload. The gateway (SANITIZE_SET, as Istio's) must replace
// them, so the backend reports the certificate really presented.
func TestAClientSentXFCCNeverReachesTheBackend(t *testing.T) {
	requireGateway(t)
	tk := userTokens(t)
	wantURI, wantHash := frontendIdentity(t)
	const forged = "spiffe://acme.internal/ns/admin/sa/admin"
	tests := []struct {
		name string
		xfcc []string
	}{
		{"one forged element naming an admin workload", []string{"Hash=00;URI=" + forged}},
		{"a forged chain the gateway would append to", []string{"URI=spiffe://evil", "By=" + wantURI + ";Hash=" + strings.Repeat("0", 64) + ";URI=" + forged}},
		{"a forged element with the frontend's identity but another hash", []string{"Hash=" + strings.Repeat("f", 64) + ";URI=" + wantURI}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is replaced by the certificate presented", func(t *testing.T) {
			h := http.Header{"Authorization": {"Bearer " + tk.valid}, "X-Forwarded-Client-Cert": tt.xfcc}
			resp, err := sendRaw(t, clientTLS(t, env.clientCertDir, true), "/api/secure.json", h)
			if err != nil {
				t.Fatal(err)
			}
			if resp.status != http.StatusOK {
				t.Fatalf("GET /api/secure.json: %v, want 200", resp)
			}
			r, ok := hopfacts.ReadReport(resp.header)
			if !ok {
				t.Fatalf("the backend reported nothing it verified: %v", resp.header)
			}
			if r.ClientCert.URI != wantURI || r.ClientCert.Hash != wantHash {
				t.Errorf("the backend saw client certificate %+v; want the one presented, %s (%s)", r.ClientCert, wantURI, wantHash)
			}
			if _, ok := hopfacts.ServerTimingDur(resp.header.Values("Server-Timing"), "backend"); !ok {
				t.Errorf("Server-Timing %q: want the backend's metric through the gateway", resp.header.Values("Server-Timing"))
			}
			if v := resp.header.Get("X-Envoy-Upstream-Service-Time"); v == "" {
				t.Errorf("no x-envoy-upstream-service-time on the gateway's answer")
			}
		})
	}
}

// fullScreenshot saves the whole page, panel and all, as a reviewer looks
// at it.
func fullScreenshot(t *testing.T, tb *tab, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := writeOutput(name, png); err != nil {
		t.Fatalf("writing %s: %v", name, err)
	}
}

// frontendIdentity is the URI SAN and SHA-256 of the frontend's client
// certificate, or "" when the suite has no copy of it.
func frontendIdentity(t *testing.T) (uri, hash string) {
	t.Helper()
	if env.clientCertDir == "" {
		return "", ""
	}
	b, err := os.ReadFile(filepath.Join(env.clientCertDir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("tls.crt: no PEM block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.URIs) != 1 {
		t.Fatalf("the frontend's certificate has URI SANs %v; want one SPIFFE identity", c.URIs)
	}
	sum := sha256.Sum256(c.Raw)
	return c.URIs[0].String(), hex.EncodeToString(sum[:])
}
