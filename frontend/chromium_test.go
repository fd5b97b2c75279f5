package frontend

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium is Debian's chromium, headless, for one browser test: its
// context, a timeout per step, screenshots when FRONTEND_SCREENSHOTS names a
// directory, and every console error or exception of the pages, reported as
// a test error when the test ends.
type chromium struct {
	ctx   context.Context
	shots string
}

func startChromium(t *testing.T) *chromium {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install -y chromium; .ci/run does)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	// The first Run starts the browser and must not carry a timeout.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}

	var mu sync.Mutex
	var problems []string
	cctx, stopConsole := context.WithCancel(bctx)
	messages := chromedp.Console(cctx)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			// Network lines are answers the tests expect (a refused
			// password's 400, the favicon's 404); the pages' own errors
			// come from their scripts.
			if m.Source == "network" {
				continue
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	// Registered last, so it runs before the browser is cancelled.
	t.Cleanup(func() {
		stopConsole()
		<-consoleDone
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("browser reported: %s", p)
		}
	})
	return &chromium{ctx: bctx, shots: os.Getenv("FRONTEND_SCREENSHOTS")}
}

// step is the browser's context for one subtest, bounded in time.
func (c *chromium) step(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// shot saves a full-page screenshot as name.png when screenshots are asked for.
func (c *chromium) shot(name string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		if c.shots == "" {
			return chromedp.Void{}, nil
		}
		png, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return chromedp.Void{}, err
		}
		return chromedp.Void{}, os.WriteFile(filepath.Join(c.shots, name+".png"), png, 0o644)
	}
}
