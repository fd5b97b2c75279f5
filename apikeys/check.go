package apikeys

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// Header names the check reads and writes.
const (
	HeaderAPIKey = "x-api-key"
	// HeaderAPIApp carries the app id to the upstream. Only this service
	// may set it: the check strips any copy the client sent.
	HeaderAPIApp = "x-api-app"
)

// Check implements envoy.service.auth.v3.Authorization/Check.
//
// The answer follows Envoy's ext_authz v3 API
// (https://www.envoyproxy.io/docs/envoy/v1.37.0/api-v3/service/auth/v3/external_auth.proto):
//   - An OK CheckResponse carries an OkHttpResponse: "headers" are set on the
//     upstream request (with append_action OVERWRITE_IF_EXISTS_OR_ADD, every
//     client-sent copy is replaced), "headers_to_remove" are removed from it,
//     and "response_headers_to_add" go to the client with the answer.
//   - Any other status denies; the DeniedHttpResponse's status (Envoy sends
//     403 when unset), headers and body become the client's answer.
//
// Envoy applies "headers" first and "headers_to_remove" after them
// (Filter::onComplete in
// https://github.com/envoyproxy/envoy/blob/main/source/extensions/filters/http/ext_authz/ext_authz.cc),
// so x-api-app must never be in both: when a key is accepted, the overwrite
// replaces any client copy; otherwise headers_to_remove drops it. Either way
// no client-sent x-api-app survives a request the check lets through. An
// accepted key is itself removed: the upstream has no use for it.
func (s *Service) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	now := s.now()
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	r := Request{Method: httpReq.GetMethod(), Path: httpReq.GetPath(), Keys: apiKeys(httpReq)}
	d := s.Decide(ctx, r, now)
	resp := checkResponse(d, now)
	elapsed := time.Since(start)
	s.observe(ctx, d, now, elapsed)
	return resp, nil
}

// apiKeys returns every x-api-key value the request carries. Envoy sends
// the headers as a map whose repeated headers are joined with ","
// (AttributeContext.HttpRequest.headers), or, with encode_raw_headers, as a
// list that keeps them apart (header_map): both are read.
func apiKeys(h *authv3.AttributeContext_HttpRequest) []string {
	var keys []string
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		if strings.EqualFold(hv.GetKey(), HeaderAPIKey) {
			v := hv.GetValue()
			if raw := hv.GetRawValue(); raw != nil {
				v = string(raw)
			}
			keys = append(keys, strings.Split(v, ",")...)
		}
	}
	if v, ok := h.GetHeaders()[HeaderAPIKey]; ok {
		keys = append(keys, strings.Split(v, ",")...)
	}
	for i := range keys {
		keys[i] = strings.TrimSpace(keys[i])
	}
	return keys
}

// ErrorBody is the JSON body of a refusal: the API's error format, as the
// backend answers ({"error": code, "message": text}).
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

var refusals = map[Outcome]struct {
	grpc    codes.Code
	code    string
	message string
}{
	OutcomeInvalidKey:    {codes.Unauthenticated, "unauthenticated", "A valid API key is required in the x-api-key header."},
	OutcomeRevoked:       {codes.Unauthenticated, "unauthenticated", "A valid API key is required in the x-api-key header."},
	OutcomeNotCovered:    {codes.PermissionDenied, "forbidden", "This API key's products do not cover this request."},
	OutcomeQuotaExceeded: {codes.ResourceExhausted, "quota_exceeded", "The quota of this API key is used up; retry after the time in Retry-After."},
	OutcomeUnavailable:   {codes.Unavailable, "unavailable", "The API key could not be checked right now; try again."},
}

func checkResponse(d Decision, now time.Time) *authv3.CheckResponse {
	switch d.Outcome {
	case OutcomeNoKey:
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				HeadersToRemove: []string{HeaderAPIApp},
			}},
		}
	case OutcomeAllowed:
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{header(HeaderAPIApp, d.AppID)},
				// The key has done its work; the upstream has no use for it
				// and should not be able to leak it.
				HeadersToRemove:      []string{HeaderAPIKey},
				ResponseHeadersToAdd: rateLimitHeaders(d.Quota, now, false),
			}},
		}
	}
	ref, ok := refusals[d.Outcome]
	if !ok {
		ref = refusals[OutcomeUnavailable]
	}
	body, _ := json.Marshal(ErrorBody{Error: ref.code, Message: ref.message})
	headers := []*corev3.HeaderValueOption{
		header("content-type", "application/json"),
		header("cache-control", "no-store"),
	}
	if d.Outcome == OutcomeQuotaExceeded {
		headers = append(headers, rateLimitHeaders(d.Quota, now, true)...)
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(ref.grpc), Message: string(d.Outcome)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Outcome.Status())},
			Headers: headers,
			Body:    string(body),
		}},
	}
}

// rateLimitHeaders describes the quota window. x-ratelimit-reset is in
// seconds from now, like retry-after (RFC 9110 section 10.2.3), not a
// timestamp: a client's clock may be wrong, a duration cannot be.
func rateLimitHeaders(q *QuotaStatus, now time.Time, retry bool) []*corev3.HeaderValueOption {
	if q == nil {
		return nil
	}
	reset := strconv.FormatInt(int64(math.Ceil(q.Reset.Sub(now).Seconds())), 10)
	h := []*corev3.HeaderValueOption{
		header("x-ratelimit-limit", strconv.FormatInt(q.Limit, 10)),
		header("x-ratelimit-remaining", strconv.FormatInt(q.Remaining, 10)),
		header("x-ratelimit-reset", reset),
	}
	if retry {
		h = append(h, header("retry-after", reset))
	}
	return h
}

func header(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}
