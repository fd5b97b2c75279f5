package apikeys_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"

	"google.golang.org/grpc"

	"github.com/acme/cloudrun-istio-gke/apikeys"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/serve"
)

// Example wires the service as devstack or a gateway stand-in would: the
// products file, a store, the ID-token verifier; then the gRPC check for
// Envoy and the HTTP handler for the management API (MetricsHandler, for
// /metrics, goes on a listener of its own). A demo app's key is printed once.
func Example() {
	ctx := context.Background()
	catalog, err := apikeys.LoadCatalog("deploy/kubernetes/apikeys/products.yaml")
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := idtoken.New(ctx, idtoken.Config{ProjectID: "demo-acme", EmulatorHost: "127.0.0.1:9099"})
	if err != nil {
		log.Fatal(err)
	}
	store := apikeys.NewMemoryStore()
	defer store.Close()
	svc, err := apikeys.New(apikeys.Config{Catalog: catalog, Store: store, Verifier: verifier})
	if err != nil {
		log.Fatal(err)
	}
	_, key, err := svc.CreateApp(ctx, "demo-user-uid", "Demo partner", []string{"secure-message"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("demo API key:", key)

	grpcLn, _ := net.Listen("tcp", "127.0.0.1:0")
	g := grpc.NewServer()
	svc.Register(g)
	go g.Serve(grpcLn)
	defer g.GracefulStop()

	httpLn, _ := net.Listen("tcp", "127.0.0.1:0")
	// Behind the project's server settings (timeouts, header limits).
	srv := serve.NewServer(svc.Handler(), slog.Default())
	go srv.Serve(httpLn)
	defer srv.Close()
}
