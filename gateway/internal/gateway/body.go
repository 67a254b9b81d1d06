package gateway

import (
	"errors"
	"io"
	"parley/gateway/internal/apierror"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
)

// bodyErrorPrefix starts the message of every request-body decoding error;
// grpc-gateway turns the error into InvalidArgument with this message, and
// errorHandler recognises it by the prefix.
const bodyErrorPrefix = "request body: "

// NewDecoder decodes a request body as exactly one JSON object: protojson
// with unknown fields refused, and nothing but white space after the object
// (json.Decoder alone would ignore trailing data). An empty body is io.EOF,
// which grpc-gateway takes as an empty request.
func (m *jsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		dw, ok := m.JSONPb.NewDecoder(r).(runtime.DecoderWrapper)
		if !ok {
			return errors.New("unexpected decoder type")
		}
		if err := dw.Decode(v); err != nil {
			if errors.Is(err, io.EOF) {
				return err
			}
			return errors.New(bodyErrorPrefix + strings.TrimPrefix(err.Error(), "proto: "))
		}
		if _, err := dw.Token(); !errors.Is(err, io.EOF) {
			return errors.New(bodyErrorPrefix + "unexpected data after the JSON object")
		}
		return nil
	})
}

// protojson's messages name the field at fault.
var (
	unknownFieldRE   = regexp.MustCompile(`unknown field "([^"]*)"`)
	duplicateFieldRE = regexp.MustCompile(`duplicate field "([^"]*)"`)
	invalidValueRE   = regexp.MustCompile(`invalid value for [A-Za-z0-9_.]+ field ([A-Za-z0-9_]+)`)
)

// bodyErrorReason gives the reason and field of a request-body decoding
// error from its message; empty when msg is not one.
func bodyErrorReason(msg string) (reason, field string) {
	detail, ok := strings.CutPrefix(msg, bodyErrorPrefix)
	if !ok {
		return "", ""
	}
	for _, c := range []struct {
		re     *regexp.Regexp
		reason string
	}{
		{unknownFieldRE, apierror.UnknownField},
		{duplicateFieldRE, apierror.DuplicateField},
		{invalidValueRE, apierror.InvalidFieldValue},
	} {
		if m := c.re.FindStringSubmatch(detail); m != nil {
			return c.reason, m[1]
		}
	}
	return apierror.MalformedJSON, ""
}
