package apierror

import (
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestARefusalWithRetryInfoTellsWhenToRetry(t *testing.T) {
	st, err := status.New(codes.ResourceExhausted, "slow down").WithDetails(
		&errdetails.ErrorInfo{Reason: "RATE_LIMITED", Domain: Domain},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(1200 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	e := FromStatus(st)
	if e.Status != 429 || e.Code != "RATE_LIMITED" || e.RetryAfterSeconds != 2 {
		t.Fatalf("got %+v", e)
	}
	w := httptest.NewRecorder()
	Write(w, e)
	if got := w.Header().Get("Retry-After"); got != "2" {
		t.Fatalf("Retry-After %q", got)
	}
	plain := FromStatus(status.New(codes.NotFound, "no"))
	w = httptest.NewRecorder()
	Write(w, plain)
	if got := w.Header().Get("Retry-After"); got != "" || plain.RetryAfterSeconds != 0 {
		t.Fatalf("Retry-After %q on a refusal that says nothing", got)
	}
}
