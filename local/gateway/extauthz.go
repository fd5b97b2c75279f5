package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Istio's defaults for an envoyExtAuthzGrpc provider
// (https://istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/#MeshConfig-ExtensionProvider-EnvoyExternalAuthorizationGrpcProvider):
// "default timeout: 600s"; statusOnError "The default status is 403".
const (
	defaultExtAuthzTimeout       = 600 * time.Second
	defaultExtAuthzStatusOnError = http.StatusForbidden
)

// LoadMeshConfig reads spec.meshConfig of the IstioOperator install file
// (deploy/istio/operator.yaml), strictly: an unknown field is an error naming
// its path, as istioctl would refuse it. The rest of the file is istioctl's.
func LoadMeshConfig(path string) (*meshv1alpha1.MeshConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the mesh config: %w", err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var op struct {
		APIVersion string                     `json:"apiVersion"`
		Kind       string                     `json:"kind"`
		Metadata   metav1.ObjectMeta          `json:"metadata"`
		Spec       map[string]json.RawMessage `json:"spec"`
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&op); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if op.APIVersion != "install.istio.io/v1alpha1" || op.Kind != "IstioOperator" {
		return nil, fmt.Errorf("%s: is %s %s, want install.istio.io/v1alpha1 IstioOperator", path, op.APIVersion, op.Kind)
	}
	mc := &meshv1alpha1.MeshConfig{}
	raw, ok := op.Spec["meshConfig"]
	if !ok {
		return mc, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("%s: spec.meshConfig: %w", path, err)
	}
	if err := checkFields(mc.ProtoReflect().Descriptor(), v, "spec.meshConfig"); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := protojson.Unmarshal(raw, mc); err != nil {
		return nil, fmt.Errorf("%s: spec.meshConfig: %w", path, err)
	}
	return mc, nil
}

// extAuthz is one envoyExtAuthzGrpc provider: Envoy's ext_authz HTTP filter
// with a gRPC service
// (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/ext_authz_filter).
type extAuthz struct {
	name, target  string // provider name; service:port as istio/ writes it
	conn          *grpc.ClientConn
	client        authv3.AuthorizationClient
	timeout       time.Duration
	failOpen      bool
	statusOnError int
}

// newExtAuthz builds the provider name from mc, reaching its service at the
// local address addrs["service:port"]. What the local gateway cannot honour
// is an error naming the field.
func newExtAuthz(mc *meshv1alpha1.MeshConfig, name string, addrs map[string]string) (*extAuthz, error) {
	if mc == nil {
		return nil, fmt.Errorf("CUSTOM provider %q: no mesh config (Config.MeshConfig, gateway.LoadMeshConfig of deploy/istio/operator.yaml)", name)
	}
	var p *meshv1alpha1.MeshConfig_ExtensionProvider
	for _, e := range mc.GetExtensionProviders() {
		if e.GetName() == name {
			p = e
			break
		}
	}
	where := fmt.Sprintf("meshConfig.extensionProviders[name=%s]", name)
	if p == nil {
		return nil, fmt.Errorf("CUSTOM provider %q is not in meshConfig.extensionProviders", name)
	}
	g := p.GetEnvoyExtAuthzGrpc()
	if g == nil {
		return nil, fmt.Errorf("%s: only envoyExtAuthzGrpc is supported by the local gateway", where)
	}
	if g.GetIncludeRequestBodyInCheck() != nil {
		return nil, fmt.Errorf("%s.envoyExtAuthzGrpc.includeRequestBodyInCheck: not supported by the local gateway", where)
	}
	if g.GetService() == "" || g.GetPort() == 0 || g.GetPort() > 65535 {
		return nil, fmt.Errorf("%s.envoyExtAuthzGrpc: service and port (1-65535) are required", where)
	}
	x := &extAuthz{
		name:          name,
		target:        net.JoinHostPort(g.GetService(), strconv.Itoa(int(g.GetPort()))),
		timeout:       defaultExtAuthzTimeout,
		failOpen:      g.GetFailOpen(),
		statusOnError: defaultExtAuthzStatusOnError,
	}
	if t := g.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil || t.AsDuration() <= 0 {
			return nil, fmt.Errorf("%s.envoyExtAuthzGrpc.timeout %v: want a positive duration", where, t)
		}
		x.timeout = t.AsDuration()
	}
	if s := g.GetStatusOnError(); s != "" {
		code, err := strconv.Atoi(s)
		if err != nil || code < 200 || code > 599 {
			return nil, fmt.Errorf("%s.envoyExtAuthzGrpc.statusOnError %q: want an HTTP status code", where, s)
		}
		x.statusOnError = code
	}
	addr, ok := addrs[x.target]
	if !ok {
		return nil, fmt.Errorf("%s: no local address for %s (Config.ExtAuthz)", where, x.target)
	}
	// Plaintext on loopback; in the cluster the sidecars' mTLS carries it.
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("%s: dialing %s: %w", where, addr, err)
	}
	x.conn, x.client = conn, authv3.NewAuthorizationClient(conn)
	return x, nil
}

// checkInput is what the filter knows of the request when it asks.
type checkInput struct {
	r         *http.Request
	path      string // normalized, with the client's query: Envoy's :path
	scheme    string
	requestID string
}

// extAuthzResult is the filter's conclusion. With allow, ok (nil after a
// fail-open error) says how to change the request and the response;
// otherwise status, header and body are the local reply.
type extAuthzResult struct {
	allow  bool
	ok     *authv3.OkHttpResponse
	status int
	header http.Header
	body   string
	reason string // Envoy's response code details
}

// check asks the provider about one request and reads its answer as Envoy's
// ext_authz filter does.
func (x *extAuthz) check(ctx context.Context, in checkInput) extAuthzResult {
	ctx, cancel := context.WithTimeout(ctx, x.timeout)
	defer cancel()
	resp, err := x.client.Check(ctx, checkRequest(in))
	if err != nil {
		// A transport failure, the timeout, or an error status instead of a
		// CheckResponse: failure_mode_allow decides (Istio's failOpen).
		if x.failOpen {
			return extAuthzResult{allow: true, reason: "ext_authz_failure_mode_allowed"}
		}
		return extAuthzResult{status: x.statusOnError, reason: "ext_authz_error"}
	}
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		return extAuthzResult{allow: true, ok: resp.GetOkResponse(), reason: "ext_authz_ok"}
	}
	// Denied: the DeniedHttpResponse's status ("If not set, Envoy sends 403
	// Forbidden"), headers ("append ... defaults to false") and body
	// (https://www.envoyproxy.io/docs/envoy/v1.37.0/api-v3/service/auth/v3/external_auth.proto).
	d := resp.GetDeniedResponse()
	res := extAuthzResult{status: int(d.GetStatus().GetCode()), header: http.Header{}, body: d.GetBody(), reason: "ext_authz_denied"}
	if res.status < 200 || res.status > 599 {
		res.status = http.StatusForbidden
	}
	applyHeaderValueOptions(res.header, d.GetHeaders())
	return res
}

// checkRequest is the CheckRequest Envoy sends
// (https://www.envoyproxy.io/docs/envoy/v1.37.0/api-v3/service/auth/v3/attribute_context.proto):
// the peers with their addresses and certificate identities, and the HTTP
// request: headers as a map with lower-case names (pseudo-headers included,
// repeated headers joined with ","), path with its query, host, scheme,
// method and protocol. No body: includeRequestBodyInCheck is not set.
func checkRequest(in checkInput) *authv3.CheckRequest {
	r := in.r
	headers := make(map[string]string, len(r.Header)+4)
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	headers[":authority"] = r.Host
	headers[":method"] = r.Method
	headers[":path"] = in.path
	headers[":scheme"] = in.scheme
	size := r.ContentLength
	if size < 0 {
		size = -1
	}
	source := &authv3.AttributeContext_Peer{Address: socketAddress(r.RemoteAddr), Principal: certIdentity(r.TLS)}
	dest := &authv3.AttributeContext_Peer{}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		dest.Address = socketAddress(a.String())
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      source,
		Destination: dest,
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:       in.requestID,
				Method:   r.Method,
				Headers:  headers,
				Path:     in.path,
				Host:     r.Host,
				Scheme:   in.scheme,
				Protocol: protocol(r),
				Size:     size,
			},
		},
	}}
}

// protocol is Envoy's name for the request's protocol: "HTTP/1.0",
// "HTTP/1.1" or "HTTP/2" (AttributeContext.HttpRequest.protocol).
func protocol(r *http.Request) string {
	if r.ProtoMajor == 2 {
		return "HTTP/2"
	}
	return r.Proto
}

// certIdentity is the client's principal as Envoy's ext_authz reports it:
// its certificate's first URI SAN (in full, spiffe:// included), else its
// first DNS SAN, else its subject; "" without a certificate.
func certIdentity(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	leaf := cs.PeerCertificates[0]
	switch {
	case len(leaf.URIs) > 0:
		return leaf.URIs[0].String()
	case len(leaf.DNSNames) > 0:
		return leaf.DNSNames[0]
	}
	return leaf.Subject.String()
}

func socketAddress(hostport string) *corev3.Address {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil
	}
	p, _ := strconv.ParseUint(port, 10, 32)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
	}}}
}

// applyOK changes the request as an OkHttpResponse asks, in Envoy's order
// (Filter::onComplete, source/extensions/filters/http/ext_authz/ext_authz.cc):
// headers are set or appended first, then headers_to_remove removed, then
// the query parameters changed. Pseudo-headers and host are never touched.
func applyOK(r *http.Request, ok *authv3.OkHttpResponse) {
	if ok == nil {
		return
	}
	applyHeaderValueOptions(r.Header, ok.GetHeaders())
	for _, k := range ok.GetHeadersToRemove() {
		if mutable(k) {
			r.Header.Del(k)
		}
	}
	if len(ok.GetQueryParametersToSet()) == 0 && len(ok.GetQueryParametersToRemove()) == 0 {
		return
	}
	q := r.URL.Query()
	for _, p := range ok.GetQueryParametersToSet() {
		q.Set(p.GetKey(), p.GetValue())
	}
	for _, k := range ok.GetQueryParametersToRemove() {
		q.Del(k)
	}
	r.URL.RawQuery = q.Encode()
}

// applyHeaderValueOptions applies Envoy HeaderValueOptions to h. The
// deprecated append field wins when set (true appends, false overwrites);
// otherwise append_action says what to do.
func applyHeaderValueOptions(h http.Header, opts []*corev3.HeaderValueOption) {
	for _, o := range opts {
		k := o.GetHeader().GetKey()
		if !mutable(k) {
			continue
		}
		v := o.GetHeader().GetValue()
		if raw := o.GetHeader().GetRawValue(); len(raw) > 0 {
			v = string(raw)
		}
		if a := o.GetAppend(); a != nil {
			if a.GetValue() {
				h.Add(k, v)
			} else {
				h.Set(k, v)
			}
			continue
		}
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			h.Add(k, v)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if len(h.Values(k)) == 0 {
				h.Add(k, v)
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h.Set(k, v)
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if len(h.Values(k)) > 0 {
				h.Set(k, v)
			}
		}
	}
}

// mutable: the authorization service may not change pseudo-headers or the
// host (Envoy's default header mutation rules).
func mutable(k string) bool {
	return k != "" && !strings.HasPrefix(k, ":") && !strings.EqualFold(k, "host")
}

// closeExtAuthz closes every provider's connection.
func closeExtAuthz(xs map[string]*extAuthz) error {
	var errs []error
	for _, x := range xs {
		if err := x.conn.Close(); err != nil && !errors.Is(err, grpc.ErrClientConnClosing) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
