package google_test

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/acme/cloudrun-istio-gke/local/google"
)

// How devstack wires the stand-in: one loopback listener serves the metadata
// server and the OAuth side; the caller finds the first through
// GCE_METADATA_HOST and the second through its key file's token_uri.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	state, _ := os.MkdirTemp("", "google")
	defer os.RemoveAll(state)
	g, err := google.New(google.Config{
		ProjectID:       "demo-acme",
		StateDir:        state,
		URL:             "http://" + ln.Addr().String(),
		ServiceAccounts: []string{"reporter@demo-acme.iam.gserviceaccount.com"},
	})
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(ln, g.Handler())
	key, err := g.WriteKeyFile(filepath.Join(state, "keys"), g.DefaultServiceAccount())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("GCE_METADATA_HOST=" + ln.Addr().String())
	fmt.Println("GOOGLE_APPLICATION_CREDENTIALS=" + key)
	fmt.Println("certs (jwksUri for https://accounts.google.com): " + g.CertsURL())
}
