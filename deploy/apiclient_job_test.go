package deploy

import (
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runv1 "google.golang.org/api/run/v1"

	"github.com/acme/cloudrun-istio-gke/apiclient"
)

const apiclientJob = "deploy/cloudrun/apiclient-job.yaml"

// readAPIClientJob strictly decodes the job's YAML into the Cloud Run Admin
// API v1 Job, the schema `gcloud run jobs replace` sends: an unknown or
// misplaced field fails.
func readAPIClientJob(t *testing.T) *runv1.Job {
	t.Helper()
	return readAPIClientJobAt(t, repoRoot)
}

// readAPIClientJobAt is readAPIClientJob in the repository copy at root.
func readAPIClientJobAt(t *testing.T, root string) *runv1.Job {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, apiclientJob))
	if err != nil {
		t.Fatal(err)
	}
	job, err := strict[runv1.Job](b)
	if err != nil {
		t.Fatalf("%s does not decode strictly into a Cloud Run v1 Job: %v", apiclientJob, err)
	}
	if job.ApiVersion != "run.googleapis.com/v1" || job.Kind != "Job" {
		t.Fatalf("%s is %s %s, want run.googleapis.com/v1 Job", apiclientJob, job.ApiVersion, job.Kind)
	}
	if job.Spec == nil || job.Spec.Template == nil || job.Spec.Template.Metadata == nil || job.Spec.Template.Spec == nil ||
		job.Spec.Template.Spec.Template == nil || job.Spec.Template.Spec.Template.Spec == nil {
		t.Fatalf("%s lacks spec.template.{metadata,spec.template.spec}", apiclientJob)
	}
	return job
}

func TestAPIClientJobRunsTheCallerAsItsServiceAccount(t *testing.T) {
	job := readAPIClientJob(t)
	project := projectID(t)
	exec := job.Spec.Template
	task := exec.Spec.Template.Spec
	t.Run("it lives in the project of istio/project.env and runs one task", func(t *testing.T) {
		if job.Metadata.Namespace != project {
			t.Errorf("metadata.namespace = %q, want the project id %q", job.Metadata.Namespace, project)
		}
		if exec.Spec.TaskCount != 1 || task.TimeoutSeconds <= 0 {
			t.Errorf("taskCount %d, timeoutSeconds %d: want one task with a timeout", exec.Spec.TaskCount, task.TimeoutSeconds)
		}
	})
	t.Run("it runs as the caller's own service account", func(t *testing.T) {
		if want := "reporter@" + project + ".iam.gserviceaccount.com"; task.ServiceAccountName != want {
			t.Errorf("serviceAccountName = %q, want %q", task.ServiceAccountName, want)
		}
	})
	t.Run("its egress is the frontend's", func(t *testing.T) {
		front := readCloudRunService(t).Spec.Template.Annotations
		for _, k := range []string{"run.googleapis.com/vpc-access-connector", "run.googleapis.com/vpc-access-egress", "run.googleapis.com/network-interfaces"} {
			if got := exec.Metadata.Annotations[k]; got != front[k] {
				t.Errorf("%s = %q on the job's execution template, want the frontend's %q", k, got, front[k])
			}
		}
	})
	if len(task.Containers) != 1 {
		t.Fatalf("got %d containers, want cmd/apiclient alone", len(task.Containers))
	}
	c := task.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Errorf("env %s comes from a secret: secrets are mounted as files", e.Name)
		}
		env[e.Name] = e.Value
	}
	t.Run("cmd/apiclient accepts its arguments and environment", func(t *testing.T) {
		o, err := apiclient.ParseFlags(c.Args, func(k string) string { return env[k] }, io.Discard)
		if err != nil {
			t.Fatalf("apiclient.ParseFlags(%q) with the env of %s: %v", c.Args, apiclientJob, err)
		}
		if o.TLSFiles.CertFile == "" || o.TLSFiles.KeyFile == "" || o.TLSFiles.CAFile == "" {
			t.Errorf("client certificate files %+v: want all three from Secret Manager", o.TLSFiles)
		}
		if o.Config.CredentialsFile != "" {
			t.Errorf("credentials file %q: on Cloud Run the metadata server is the identity; no key file", o.Config.CredentialsFile)
		}
		if !o.JSON {
			t.Error("-json is off: Cloud Logging parses one JSON line per run into fields")
		}
		if o.Config.ImpersonationHint != task.ServiceAccountName {
			t.Errorf("APICLIENT_SERVICE_ACCOUNT %q, want the job's account %q", o.Config.ImpersonationHint, task.ServiceAccountName)
		}
	})
	t.Run("it calls the frontend's gateway by its private address and name", func(t *testing.T) {
		front := map[string]string{}
		for _, e := range readCloudRunService(t).Spec.Template.Spec.Containers[0].Env {
			front[e.Name] = e.Value
		}
		u, err := url.Parse(env["API_URL"])
		gw, _ := url.Parse(front["GATEWAY_URL"])
		if err != nil || u.Scheme != "https" || u.Host != gw.Host || !isPrivate(u.Hostname()) || !strings.HasPrefix(u.Path, "/api/") {
			t.Errorf("API_URL = %q, want https://%s/api/...", env["API_URL"], gw.Host)
		}
		if env["GATEWAY_SERVER_NAME"] != front["GATEWAY_SERVER_NAME"] {
			t.Errorf("GATEWAY_SERVER_NAME = %q, want the frontend's %q", env["GATEWAY_SERVER_NAME"], front["GATEWAY_SERVER_NAME"])
		}
		if a, err := url.Parse(env["API_AUDIENCE"]); err != nil || a.Scheme != "https" || a.Host == "" {
			t.Errorf("API_AUDIENCE = %q, want the API's https audience", env["API_AUDIENCE"])
		}
	})
	t.Run("its client certificate, key and CA are mounted from Secret Manager", func(t *testing.T) {
		volumes := map[string]*runv1.Volume{}
		for _, v := range task.Volumes {
			volumes[v.Name] = v
		}
		files := map[string]bool{}
		for _, m := range c.VolumeMounts {
			v, ok := volumes[m.Name]
			if !ok || v.Secret == nil {
				t.Errorf("mount %s is not a secret volume", m.Name)
				continue
			}
			if !m.ReadOnly {
				t.Errorf("mount %s is writable", m.Name)
			}
			if strings.HasPrefix(v.Secret.SecretName, "frontend-") {
				t.Errorf("secret %s is the frontend's: the caller has an identity of its own", v.Secret.SecretName)
			}
			for _, it := range v.Secret.Items {
				if it.Key != "latest" {
					t.Errorf("secret %s item %s pins version %q: use latest so rotations apply", v.Secret.SecretName, it.Path, it.Key)
				}
				files[filepath.Join(m.MountPath, it.Path)] = true
				// Jobs run only in gen2, where root owns secret files
				// (https://cloud.google.com/run/docs/about-execution-environments,
				// https://cloud.google.com/run/docs/configuring/secrets): the
				// nonroot image (uid 65532) reads them by the others bit.
				mode := int64(0o444) // the API's default, when unset (0)
				if it.Mode != 0 {
					mode = it.Mode
				}
				if mode&0o004 == 0 {
					t.Errorf("%s mode %04o: root owns a job's secret files (jobs run only in gen2), so uid 65532 cannot read it", it.Path, mode)
				}
			}
		}
		for _, k := range []string{"CLIENT_TLS_CERT_FILE", "CLIENT_TLS_KEY_FILE", "CLIENT_TLS_CA_FILE"} {
			if !files[env[k]] {
				t.Errorf("%s=%s, which no secret volume provides (mounted: %v)", k, env[k], files)
			}
		}
	})
}
