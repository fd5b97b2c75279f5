package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLogStoryOfOneSignedInPage follows one signed-in page load through the
// local stack's logs, as an operator would in Cloud Logging: the frontend's,
// the gateway's and the backend's access lines for it share the trace and
// the request id, each hop in a span of its own, under the same keys; and
// no token, cookie or API key the page load used reached any line of any
// component.
func TestLogStoryOfOneSignedInPage(t *testing.T) {
	requireLocal(t, "it reads the local stack's logs")
	tk := userTokens(t) // signed in at the emulator with the page's API key

	session := boundSession(t, env.frontendURL, tk.valid)
	credentials := map[string]string{"the ID token": tk.valid, "the session cookie": session.Value, "the API key": pageConfig(t).APIKey}

	// The page load, with the trace Cloud Run's front end starts, and a
	// request id a client chose, which a public edge must not adopt.
	var b [16]byte
	rand.Read(b[:])
	traceID := hex.EncodeToString(b[:])
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, env.frontendURL+"/", nil)
	req.AddCookie(session)
	req.Header.Set("X-Cloud-Trace-Context", traceID+"/1;o=1")
	req.Header.Set("X-Request-Id", "chosen-by-the-client")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Hello World") {
		t.Fatalf("GET / answered %s without the secret message; want the signed-in page", resp.Status)
	}
	id := resp.Header.Get("X-Request-Id")
	if id == "" || id == "chosen-by-the-client" {
		t.Fatalf("the page's request id is %q: want one the frontend made", id)
	}

	// The lines are written as each hop finishes: wait for them.
	hops := []string{"frontend", "gateway", "backend"}
	access := map[string]map[string]any{}
	for _, hop := range hops {
		access[hop] = waitForAccessLine(t, hop, id)
	}
	var story []map[string]any
	all, err := env.logs.JSONLines()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range all {
		if l["requestId"] == id || strings.HasSuffix(str(l["logging.googleapis.com/trace"]), "/"+traceID) {
			story = append(story, l)
		}
	}
	if out, err := json.MarshalIndent(story, "", "  "); err == nil {
		writeOutput("log-story.json", out) // to read the story, pass or fail
	}

	t.Run("every hop's access line has the page's trace and request id, each hop its own span", func(t *testing.T) {
		spans := map[string]string{}
		for _, hop := range hops {
			l := access[hop]
			if got, want := l["logging.googleapis.com/trace"], "projects/"+env.local.ProjectID+"/traces/"+traceID; got != want {
				t.Errorf("the %s's line has trace %v, want %s: %v", hop, got, want, l)
			}
			span := str(l["logging.googleapis.com/spanId"])
			if other, ok := spans[span]; ok || span == "" {
				t.Errorf("the %s's span %q is empty or the %s's too: want a span per hop", hop, span, other)
			}
			spans[span] = hop
			if hr := httpRequest(l); hr["status"] != float64(http.StatusOK) {
				t.Errorf("the %s's line has status %v, want 200: %v", hop, hr["status"], l)
			}
		}
	})

	t.Run("every hop's access line uses the same keys", func(t *testing.T) {
		// The frontend adds nothing of its own to the layer's line: its keys
		// are the layer's, which every hop must write alike. What a hop adds
		// (the gateway's decision, the user) is camelCase too, and a key two
		// hops write means the same in both.
		layer := slices.Sorted(maps.Keys(access["frontend"]))
		layerHTTP := slices.Sorted(maps.Keys(httpRequest(access["frontend"])))
		for _, hop := range hops {
			l := access[hop]
			for _, k := range layer {
				if _, ok := l[k]; !ok {
					t.Errorf("the %s's line lacks %q, which every hop writes: %v", hop, k, l)
				}
			}
			if got := slices.Sorted(maps.Keys(httpRequest(l))); !slices.Equal(got, layerHTTP) {
				t.Errorf("the %s's httpRequest has keys %v, the frontend's %v: want identical", hop, got, layerHTTP)
			}
			for k := range l {
				if !ourKey.MatchString(k) && !strings.HasPrefix(k, "logging.googleapis.com/") {
					t.Errorf("the %s's line has key %q: want camelCase, or one of Cloud Logging's", hop, k)
				}
			}
			if l["component"] != hop {
				t.Errorf("the %s's line names component %v", hop, l["component"])
			}
		}
		want := "https://securetoken.google.com/" + env.local.ProjectID + "/" + tk.uid
		for _, hop := range []string{"gateway", "backend"} {
			if got := access[hop]["requestPrincipal"]; got != want {
				t.Errorf("the %s's line has requestPrincipal %v, want the user %s as Istio names it", hop, got, want)
			}
		}
	})

	t.Run("every line any component wrote spells its keys alike", func(t *testing.T) {
		for _, l := range all {
			for _, k := range keysOf(l, "") {
				if !strings.HasPrefix(k, "logging.googleapis.com/") && !ourPath.MatchString(k) {
					t.Errorf("the %v's line %q has key %q: want camelCase", l["component"], l["message"], k)
				}
			}
		}
	})

	t.Run("no token, cookie or API key reaches any line", func(t *testing.T) {
		logs := env.logs.String()
		for what, v := range credentials {
			if v == "" {
				t.Fatalf("%s is empty: the check would prove nothing", what)
			}
			if strings.Contains(logs, v) {
				t.Errorf("%s appears in the stack's logs", what)
			}
		}
		// Not even a token's signed part: payload or signature alone.
		parts := strings.Split(tk.valid, ".")
		for i, what := range []string{"", "payload", "signature"} {
			if i > 0 && strings.Contains(logs, parts[i]) {
				t.Errorf("the ID token's %s appears in the stack's logs", what)
			}
		}
	})
}

// ourKey is the house spelling of a key: camelCase.
var ourKey = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)

// ourPath is a dotted path of camelCase keys, as keysOf gives them.
var ourPath = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*(\.[a-z][a-zA-Z0-9]*)*$`)

// keysOf lists the keys of a JSON line, those of its groups as dotted paths.
func keysOf(m map[string]any, prefix string) []string {
	var keys []string
	for k, v := range m {
		keys = append(keys, prefix+k)
		if g, ok := v.(map[string]any); ok {
			keys = append(keys, keysOf(g, prefix+k+".")...)
		}
	}
	return keys
}

// waitForAccessLine waits for component's access line for request id.
func waitForAccessLine(t *testing.T, component, id string) map[string]any {
	t.Helper()
	return env.logs.WaitForJSON(t, "for the "+component+"'s access line of request "+id, func(m map[string]any) bool {
		return m["message"] == "request" && m["component"] == component && m["requestId"] == id
	})
}

func httpRequest(l map[string]any) map[string]any {
	hr, _ := l["httpRequest"].(map[string]any)
	return hr
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
