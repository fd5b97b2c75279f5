package apikeys

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMetricsHaveAHandlerOfTheirOwn: on GKE the metrics port is the one
// that accepts plaintext from a caller without a mesh identity, so its
// handler must offer GET /metrics and nothing else, and the management
// handler must no longer serve /metrics.
func TestMetricsHaveAHandlerOfTheirOwn(t *testing.T) {
	s := newService(t, NewMemoryStore(), testCatalog(t, 10, 100), nil)
	metricsSrv := httptest.NewServer(s.MetricsHandler())
	t.Cleanup(metricsSrv.Close)
	mgmtSrv := httptest.NewServer(s.Handler())
	t.Cleanup(mgmtSrv.Close)
	tests := []struct {
		name, method, url string
		wantStatus        int
		wantBody          string
	}{
		{"the metrics handler serves GET /metrics", http.MethodGet, metricsSrv.URL + "/metrics", http.StatusOK, "apikeys_check_duration_seconds"},
		{"the metrics handler refuses POST /metrics", http.MethodPost, metricsSrv.URL + "/metrics", http.StatusMethodNotAllowed, ""},
		{"the metrics handler has no management API", http.MethodGet, metricsSrv.URL + ManagementPrefix + "/products", http.StatusNotFound, ""},
		{"the metrics handler has no /healthz", http.MethodGet, metricsSrv.URL + "/healthz", http.StatusNotFound, ""},
		{"the management handler no longer serves /metrics", http.MethodGet, mgmtSrv.URL + "/metrics", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("%s %s: got %d, want %d", tt.method, tt.url, resp.StatusCode, tt.wantStatus)
			}
			if !strings.Contains(string(b), tt.wantBody) {
				t.Errorf("%s %s: body lacks %q", tt.method, tt.url, tt.wantBody)
			}
		})
	}
}
