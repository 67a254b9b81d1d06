// Package apierror describes a failed call once for every HTTP surface of the
// gateway: its HTTP status, gRPC code, message, and the reason and field the
// server gave in the status's google.rpc.ErrorInfo detail. Parley's own
// routes write it as {"error":{...}} (Write); each reproduced API
// (internal/compat/...) renders the same Error in its own shape.
package apierror

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// Domain is the ErrorInfo domain of Parley's reasons.
	Domain = "parley"
	// FieldKey is the ErrorInfo metadata key of the request field at fault.
	FieldKey = "field"
)

// Reasons the gateway gives itself, for input it refuses before any call.
const (
	InvalidUTF8     = "INVALID_UTF8"
	RequestTooLarge = "REQUEST_TOO_LARGE"
	// Headers the gateway would forward that the server would not take.
	HeadersTooLarge = "REQUEST_HEADERS_TOO_LARGE"
	// A request body or frame that is not one JSON object.
	MalformedJSON = "MALFORMED_JSON"
	// A body field the request does not have.
	UnknownField = "UNKNOWN_FIELD"
	// A body field given twice.
	DuplicateField = "DUPLICATE_FIELD"
	// A field whose value has the wrong type or is out of range.
	InvalidFieldValue = "INVALID_FIELD_VALUE"
	// A WebSocket frame of a type the socket does not know.
	UnknownFrameType = "UNKNOWN_FRAME_TYPE"
)

// reasonHTTPStatus overrides the status derived from the gRPC code, where
// the reason says more than the code.
var reasonHTTPStatus = map[string]int{
	"MESSAGE_TOO_LONG": http.StatusRequestEntityTooLarge,
	RequestTooLarge:    http.StatusRequestEntityTooLarge,
	HeadersTooLarge:    http.StatusRequestHeaderFieldsTooLarge,
}

// Error is one failed call or refused request:
//
//	{"code":"NOT_JOINED","status":400,"grpc_code":"FAILED_PRECONDITION","message":"...","field":"id"}
type Error struct {
	// Code is the reason when there is one, else the gRPC code's name.
	Code string `json:"code"`
	// Status is the HTTP status, repeated for clients that only see the body.
	Status int `json:"status"`
	// GRPCCode is the canonical gRPC code name, e.g. INVALID_ARGUMENT.
	GRPCCode string `json:"grpc_code"`
	Message  string `json:"message"`
	// Field names the request field at fault, for bad input.
	Field string `json:"field,omitempty"`
	// RetryAfterSeconds says when a refusal by a limit may be tried again
	// (the server's google.rpc.RetryInfo, rounded up); also the Retry-After
	// header.
	RetryAfterSeconds int64 `json:"retry_after_seconds,omitempty"`
}

// Reason is the reason and field of st's ErrorInfo detail; empty when none.
func Reason(st *status.Status) (reason, field string) {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() != "" {
			return info.GetReason(), info.GetMetadata()[FieldKey]
		}
	}
	return "", ""
}

// Make is the Error of st with the given reason and field.
func Make(st *status.Status, reason, field string) Error {
	e := Error{
		Code:     reason,
		Status:   runtime.HTTPStatusFromCode(st.Code()),
		GRPCCode: code.Code(st.Code()).String(),
		Message:  st.Message(),
		Field:    field,
	}
	if e.Code == "" {
		e.Code = e.GRPCCode
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.RetryInfo); ok && info.GetRetryDelay() != nil {
			delay := info.GetRetryDelay().AsDuration()
			e.RetryAfterSeconds = int64((delay + time.Second - 1) / time.Second)
		}
	}
	if s, ok := reasonHTTPStatus[e.Code]; ok {
		e.Status = s
	}
	return e
}

// FromStatus is the Error of st, with the reason and field of its ErrorInfo.
func FromStatus(st *status.Status) Error {
	reason, field := Reason(st)
	return Make(st, reason, field)
}

// FromError is the Error of a failed call's error.
func FromError(err error) Error { return FromStatus(status.Convert(err)) }

// New is an error the gateway answers itself, without a call.
func New(httpStatus int, c codes.Code, reason, field, msg string) Error {
	e := Make(status.New(c, msg), reason, field)
	e.Status = httpStatus
	return e
}

// StatusError is a status error with reason and field in an ErrorInfo
// detail, as the server makes them.
func StatusError(c codes.Code, reason, field, msg string) error {
	info := &errdetails.ErrorInfo{Reason: reason, Domain: Domain}
	if field != "" {
		info.Metadata = map[string]string{FieldKey: field}
	}
	st, err := status.New(c, msg).WithDetails(info)
	if err != nil {
		return status.Error(c, msg)
	}
	return st.Err()
}

// Body is Parley's error response: {"error":{...}}.
type Body struct {
	Error Error `json:"error"`
}

// Write answers e as Parley's JSON error body with its HTTP status.
func Write(w http.ResponseWriter, e Error) {
	SetRetryAfter(w.Header(), e)
	WriteJSON(w, e.Status, Body{Error: e})
}

// SetRetryAfter sets the Retry-After header of a refusal that says when to
// try again; every error body, whatever its shape, sets it.
func SetRetryAfter(h http.Header, e Error) {
	if e.RetryAfterSeconds > 0 {
		h.Set("Retry-After", strconv.FormatInt(e.RetryAfterSeconds, 10))
	}
}

// WriteJSON answers body as JSON with httpStatus, for any error shape.
func WriteJSON(w http.ResponseWriter, httpStatus int, body any) {
	h := w.Header()
	// A stream that fails before its first message has already set these.
	h.Del("Trailer")
	h.Del("Transfer-Encoding")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpStatus)
	_ = json.NewEncoder(w).Encode(body)
}
