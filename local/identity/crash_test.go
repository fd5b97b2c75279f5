package identity

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/serve"
)

// childStateDirEnv, set in the environment of this test binary, makes it run
// only the emulator on that state dir instead of the tests (see TestMain): a
// process the crash test can SIGKILL without killing itself, and with no
// build step.
const childStateDirEnv = "IDENTITY_TEST_EMULATOR_STATE_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childStateDirEnv); dir != "" {
		if err := runEmulatorChild(dir, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "emulator child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runEmulatorChild serves the emulator on a free loopback port, prints the
// address, and shuts down gracefully on SIGTERM, as devstack does.
func runEmulatorChild(dir string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	e, err := New(Config{ProjectID: testProject, StateDir: dir, PasswordHashCost: minPasswordHashCost, Logger: log})
	if err != nil {
		return err
	}
	ln, err := serve.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, ln.Addr())
	return serve.Run(ctx, serve.Options{Name: "identity", Handler: e.Handler(), Listener: ln, Logger: log})
}

// emulatorChild is this test binary re-executed as an emulator.
type emulatorChild struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer // read only after Wait
	waited chan error
}

func startEmulatorChild(t *testing.T, dir string) *emulatorChild {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &emulatorChild{cmd: exec.Command(self), stderr: &bytes.Buffer{}, waited: make(chan error, 1)}
	c.cmd.Env = append(os.Environ(), childStateDirEnv+"="+dir)
	c.cmd.Stderr = c.stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		c.cmd.Process.Kill()
		t.Fatalf("the emulator did not start on %s: %v (exit: %v)\n%s", dir, err, c.cmd.Wait(), c.stderr)
	}
	c.url = "http://" + strings.TrimSpace(line)
	// Wait only once the pipe has been read; it closes it.
	go func() { c.waited <- c.cmd.Wait() }()
	t.Cleanup(func() {
		c.cmd.Process.Kill() // a no-op once it has exited
		c.wait()
	})
	return c
}

// wait returns the child's exit status once it has exited; after it, stderr
// is complete and safe to read.
func (c *emulatorChild) wait() error {
	select {
	case err := <-c.waited:
		c.waited <- err // for the next caller
		return err
	case <-time.After(15 * time.Second):
		return errors.New("still running after 15 s")
	}
}

// signUps runs sign-ups from several clients at once until the emulator stops
// answering, and keeps every one answered 200: email → localId.
type signUps struct {
	mu       sync.Mutex
	answered map[string]string
	started  chan struct{} // closed at the first answer
	wg       sync.WaitGroup
}

const crashPassword = "crash-test-password"

func startSignUps(url, prefix string, clients int) *signUps {
	s := &signUps{answered: map[string]string{}, started: make(chan struct{})}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	for w := range clients {
		s.wg.Go(func() {
			for n := 0; ; n++ {
				email := fmt.Sprintf("%s-%d-%d@example.com", prefix, w, n)
				uid, err := postSignUp(hc, url, email)
				if err != nil {
					return // killed or shut down; a sign-up with no answer proves nothing
				}
				s.mu.Lock()
				if len(s.answered) == 0 {
					close(s.started)
				}
				s.answered[email] = uid
				s.mu.Unlock()
			}
		})
	}
	return s
}

// wait returns the answered sign-ups once every client has stopped.
func (s *signUps) wait() map[string]string {
	s.wg.Wait()
	return s.answered
}

func postSignUp(hc *http.Client, url, email string) (string, error) {
	body, _ := json.Marshal(map[string]any{"email": email, "password": crashPassword})
	resp, err := hc.Post(url+signUpPath, "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ LocalID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || out.LocalID == "" {
		return "", fmt.Errorf("sign-up %s: %s", email, resp.Status)
	}
	return out.LocalID, nil
}

// tempFiles are writeFileAtomic's temporary files for the accounts file: one
// left behind means the process died between creating it and the rename.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "."+accountsFile+".*.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkStored loads the state dir as a restarted emulator does and checks
// that every answered sign-up is in it under the uid that was answered.
func checkStored(t *testing.T, dir, after string, answered map[string]string) {
	t.Helper()
	st, notice, err := loadAccounts(dir, time.Now(), 0)
	if err != nil || notice != nil {
		t.Fatalf("after %s the accounts do not load cleanly: %v, %q", after, err, notice)
	}
	var missing []string
	for email, uid := range answered {
		if a, ok := st.byEmailAddr(email); !ok || a.LocalID != uid {
			missing = append(missing, email)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("after %s, %d of %d sign-ups answered 200 are not stored, e.g. %s", after, len(missing), len(answered), missing[0])
	}
}

// TestAnsweredSignUpsSurviveSIGKILLMidWriteAndSIGTERM runs the emulator in a
// child process under concurrent sign-ups and SIGKILLs it at a random moment,
// round after round on the same state dir, until several kills have landed
// in the middle of a write (a temporary file is left). After each, the
// accounts must load and hold every sign-up that was answered 200. Then a
// SIGTERM under the same load must exit 0 keeping everything, and every
// account answered in any round must sign in.
//
// A SIGKILL loses only what the process held: it tests that a sign-up is
// answered after its write, and that the file is replaced atomically. It
// cannot lose the page cache, so it does not test the fsyncs; a power cut
// would, and writeFileAtomic syncs the file and the directory for that.
func TestAnsweredSignUpsSurviveSIGKILLMidWriteAndSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator in child processes, a dozen times")
	}
	const clients = 6
	dir := t.TempDir()
	all := map[string]string{}
	midWrite, rounds := 0, 0
	for ; rounds < 16 && (rounds < 4 || midWrite < 2); rounds++ {
		c := startEmulatorChild(t, dir)
		before := len(tempFiles(t, dir))
		load := startSignUps(c.url, fmt.Sprintf("kill%d", rounds), clients)
		<-load.started
		time.Sleep(rand.N(400 * time.Millisecond)) // not synchronisation: a random point among the writes
		if err := c.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		c.wait()
		// Look before the next start, which may tidy up.
		if len(tempFiles(t, dir)) > before {
			midWrite++
		}
		for e, u := range load.wait() {
			all[e] = u
		}
		checkStored(t, dir, fmt.Sprintf("SIGKILL %d", rounds+1), all)
	}
	t.Logf("%d SIGKILLs, %d of them mid-write; %d sign-ups answered", rounds, midWrite, len(all))
	if midWrite == 0 {
		t.Fatalf("none of %d SIGKILLs landed while the accounts file was being written: the test proved nothing", rounds)
	}

	c := startEmulatorChild(t, dir)
	if left := tempFiles(t, dir); len(left) > 0 {
		t.Errorf("a restart left %d temporary files of killed writes in the state dir: %v", len(left), left)
	}
	load := startSignUps(c.url, "term", clients)
	<-load.started // sign-ups are going on: some are in flight at the signal
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(); err != nil {
		t.Fatalf("the emulator exited with %v after SIGTERM, want 0\n%s", err, c.stderr)
	}
	if !strings.Contains(c.stderr.String(), `"msg":"stopped"`) {
		t.Errorf("no \"stopped\" log line after SIGTERM:\n%s", c.stderr)
	}
	for e, u := range load.wait() {
		all[e] = u
	}
	checkStored(t, dir, "SIGTERM", all)

	// Every account, from every round, signs in on a restarted emulator.
	c = startEmulatorChild(t, dir)
	hc := &http.Client{Timeout: 10 * time.Second}
	emails := make(chan string)
	failed := make(chan string, len(all))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for email := range emails {
				body, _ := json.Marshal(map[string]any{"email": email, "password": crashPassword})
				resp, err := hc.Post(c.url+signInPath, "application/json", bytes.NewReader(body))
				if err != nil {
					failed <- fmt.Sprintf("%s: %v", email, err)
					continue
				}
				var out struct{ LocalID string }
				err = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || err != nil || out.LocalID != all[email] {
					failed <- fmt.Sprintf("%s: %s %q, want 200 as %s", email, resp.Status, out.LocalID, all[email])
				}
			}
		})
	}
	for email := range all {
		emails <- email
	}
	close(emails)
	wg.Wait()
	close(failed)
	var fails []string
	for f := range failed {
		fails = append(fails, f)
	}
	if len(fails) > 0 {
		t.Fatalf("%d of %d stored accounts cannot sign in after the restarts, e.g. %s", len(fails), len(all), fails[0])
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(); err != nil {
		t.Errorf("the emulator exited with %v after SIGTERM, want 0\n%s", err, c.stderr)
	}
}
