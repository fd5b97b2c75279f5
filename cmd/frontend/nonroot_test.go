//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/local/pki"
	"sigs.k8s.io/yaml"
)

// nonroot is the user of the image's base, gcr.io/distroless/static:nonroot
// (skaffold.yaml), which Cloud Run runs the container as.
const nonroot = 65532

// cloudRunService is the part of deploy/cloudrun/frontend.yaml that decides
// how Cloud Run lays the client certificate's files out.
type cloudRunService struct {
	Spec struct {
		Template struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
			Spec struct {
				Containers []struct {
					Env []struct {
						Name  string `json:"name"`
						Value string `json:"value"`
					} `json:"env"`
					VolumeMounts []struct {
						Name      string `json:"name"`
						MountPath string `json:"mountPath"`
					} `json:"volumeMounts"`
				} `json:"containers"`
				Volumes []struct {
					Name   string `json:"name"`
					Secret *struct {
						DefaultMode *int32 `json:"defaultMode"`
						Items       []struct {
							Path string `json:"path"`
							Mode *int32 `json:"mode"`
						} `json:"items"`
					} `json:"secret"`
				} `json:"volumes"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

// secretOwner is who owns a secret volume's files and directories in an
// execution environment, for a service of one container: "In the first
// generation execution environment where you are deploying a single
// container, the secret volume is owned by the identity used for the
// container"; in the second generation, root
// (https://cloud.google.com/run/docs/configuring/services/secrets, "Volume
// ownership differs by execution environment and deployment type").
func secretOwner(env string) int {
	if env == "gen1" {
		return nonroot
	}
	return 0
}

// secretMode is the mode Cloud Run gives a secret file: the item's mode, else
// the volume's defaultMode, else 0444, with a umask of 0222 applied
// (SecretVolumeSource.default_mode in the Cloud Run Admin API reference,
// https://cloud.google.com/run/docs/reference/rest/v2/Volume#SecretVolumeSource).
func secretMode(item, volume *int32) os.FileMode {
	mode := os.FileMode(0o444)
	switch {
	case item != nil:
		mode = os.FileMode(*item)
	case volume != nil:
		mode = os.FileMode(*volume)
	}
	return mode &^ 0o222
}

// TestFrontendReadsItsKeyAsTheNonrootUser starts the real frontend binary as
// uid/gid 65532 against its client certificate laid out as Cloud Run lays
// out deploy/cloudrun/frontend.yaml's secret volumes: owner and modes in the
// service's execution environment, and in the other one for contrast. Where
// the user can read the files it must start and serve; where it cannot, it
// must refuse to start with an error that names the file and the permission
// it lacks.
func TestFrontendReadsItsKeyAsTheNonrootUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give the files other owners and start the frontend as uid 65532 (CI runs as root): sudo go test -run NonrootUser ./cmd/frontend")
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "cloudrun", "frontend.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var svc cloudRunService
	if err := yaml.Unmarshal(b, &svc); err != nil {
		t.Fatalf("deploy/cloudrun/frontend.yaml: %v", err)
	}
	tmpl := svc.Spec.Template
	if len(tmpl.Spec.Containers) != 1 {
		t.Fatalf("frontend.yaml has %d containers; secretOwner knows the one-container layout only", len(tmpl.Spec.Containers))
	}
	configured := tmpl.Metadata.Annotations["run.googleapis.com/execution-environment"]
	if configured != "gen1" && configured != "gen2" {
		t.Fatalf("frontend.yaml's execution environment is %q: without gen1 or gen2 Cloud Run picks one, and who owns the secret files is unknown", configured)
	}
	other := map[string]string{"gen1": "gen2", "gen2": "gen1"}[configured]

	work := traversableTempDir(t)
	bin := filepath.Join(work, "frontend")
	build := exec.Command("go", "build", "-tags=disable_grpc_modules", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	certs, err := pki.Ensure(pki.Config{Dir: filepath.Join(work, "pki"), GatewayHosts: []string{"api.internal.example"}})
	if err != nil {
		t.Fatal(err)
	}

	for _, env := range []string{configured, other} {
		name := "in " + env + ", as frontend.yaml asks"
		if env != configured {
			name = "in " + env + ", which frontend.yaml does not ask for, with the same modes"
		}
		t.Run(name, func(t *testing.T) {
			root := filepath.Join(work, env)
			owner := secretOwner(env)
			key, keyReadable := layOut(t, root, svc, owner, certs.FrontendDir)
			if env == configured && !keyReadable {
				t.Errorf("in %s the key would be owned by uid %d with a mode uid %d cannot read: frontend.yaml's mode and execution environment do not fit together", env, owner, nonroot)
			}
			vars := map[string]string{
				"PATH": os.Getenv("PATH"),
				"HOME": root,
				// Loopback only, and nothing is contacted at start-up.
				"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9",
			}
			for _, e := range tmpl.Spec.Containers[0].Env {
				vars[e.Name] = e.Value
				if strings.HasPrefix(e.Value, "/") {
					vars[e.Name] = filepath.Join(root, e.Value)
				}
			}
			vars["GATEWAY_URL"] = "https://127.0.0.1:9"
			url, stderr, stop := startAsNonroot(t, bin, vars)
			if keyReadable {
				if url == "" {
					err := stop()
					t.Fatalf("the frontend did not start as uid %d with the key readable to it (%v); stderr:\n%s", nonroot, err, stderr())
				}
				resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url + "/healthz")
				if err != nil {
					t.Fatalf("GET /healthz: %v", err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET /healthz: %d, want 200", resp.StatusCode)
				}
				if err := stop(); err != nil {
					t.Errorf("the frontend did not shut down cleanly on SIGTERM: %v\n%s", err, stderr())
				}
				return
			}
			if url != "" {
				t.Fatalf("the frontend started although uid %d cannot read %s", nonroot, key)
			}
			err := stop()
			msg := stderr()
			if err == nil {
				t.Fatalf("the frontend exited 0 without serving; stderr:\n%s", msg)
			}
			for _, want := range []string{key, "permission denied", fmt.Sprintf("uid %d", nonroot), "needs read permission", "owned by uid 0"} {
				if !strings.Contains(msg, want) {
					t.Errorf("the start-up error does not say %q; it says:\n%s", want, msg)
				}
			}
		})
	}
}

// traversableTempDir is a t.TempDir that another user may enter: the
// testing package creates it and its parent 0700.
func traversableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	for d := filepath.Dir(filepath.Dir(dir)); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			t.Fatalf("uid %d cannot enter %s (mode %04o), above the test's temporary directory: set TMPDIR to a directory others may traverse, such as /tmp", nonroot, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return dir
}

// layOut writes the certificate files in src under root at the paths of
// frontend.yaml's secret volumes, with Cloud Run's modes and owner. It
// returns the key's path and whether uid 65532 can read it.
func layOut(t *testing.T, root string, svc cloudRunService, owner int, src string) (string, bool) {
	t.Helper()
	mounts := map[string]string{}
	for _, m := range svc.Spec.Template.Spec.Containers[0].VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	var key string
	readable := false
	for _, v := range svc.Spec.Template.Spec.Volumes {
		if v.Secret == nil {
			continue
		}
		// A secret volume is read-only; its directory belongs to the same
		// identity as its files.
		dir := filepath.Join(root, mounts[v.Name])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, it := range v.Secret.Items {
			data, err := os.ReadFile(filepath.Join(src, filepath.Base(it.Path)))
			if err != nil {
				t.Fatalf("volume %s item %s: %v", v.Name, it.Path, err)
			}
			f := filepath.Join(dir, it.Path)
			mode := secretMode(it.Mode, v.Secret.DefaultMode)
			if err := os.WriteFile(f, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f, mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(f, owner, owner); err != nil {
				t.Fatal(err)
			}
			if it.Path == "tls.key" {
				key = f
				readable = mode&0o004 != 0 || (owner == nonroot && mode&0o400 != 0)
			}
		}
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, owner, owner); err != nil {
			t.Fatal(err)
		}
	}
	if key == "" {
		t.Fatal("frontend.yaml mounts no tls.key")
	}
	return key, readable
}

// startAsNonroot starts bin as uid/gid 65532 with exactly vars as its
// environment, listening on a free loopback port, and waits for its
// "serving" line or its exit. It returns the URL ("" if it exited), its
// stderr so far, and a stop function that sends SIGTERM (if it still runs)
// and returns how it exited.
func startAsNonroot(t *testing.T, bin string, vars map[string]string) (url string, stderr func() string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, "-addr", "127.0.0.1:0")
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nonroot, Gid: nonroot}}
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	url = servingURL(out)
	drained := make(chan struct{})
	go func() { // keep reading the logs until it exits
		io.Copy(io.Discard, out)
		close(drained)
	}()
	var stopped bool
	var waitErr error
	stop = func() error {
		if !stopped {
			stopped = true
			if url != "" {
				cmd.Process.Signal(syscall.SIGTERM)
			}
			<-drained // Wait closes the pipe: read it to the end first
			waitErr = cmd.Wait()
		}
		return waitErr
	}
	t.Cleanup(func() { stop() })
	// Read stderr only after stop: until Wait returns it is still being copied.
	return url, func() string { return errBuf.String() }, stop
}

// servingURL reads log lines until the "serving" line and returns its URL,
// or "" if the output ends first.
func servingURL(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var line struct {
			Message string `json:"message"`
			URL     string `json:"url"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "serving" {
			return line.URL
		}
	}
	return ""
}
