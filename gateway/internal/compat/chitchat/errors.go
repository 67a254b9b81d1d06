package chitchat

import (
	"net/http"

	"parley/gateway/internal/apierror"
)

// ChitChat's error body, {"status":false,"error":{"code","error","field"}}:
// a number by family (1xx the room, 2xx the request, 3xx authorization), a
// fixed text per number, and ChitChat's name of the field.

type errorBody struct {
	Status bool        `json:"status"`
	Error  errorDetail `json:"error"`
}

type errorDetail struct {
	Code  int    `json:"code"`
	Error string `json:"error"`
	Field string `json:"field"`
}

// chitchatError is a number and its text.
type chitchatError struct {
	code int
	text string
}

var (
	errRoomNotFound   = chitchatError{101, "Room error: Room not found"}
	errDuplicateRoom  = chitchatError{102, "Room error: Duplicate room"}
	errRoomField      = chitchatError{103, "Room error: Invalid field"}
	errPermanentRoom  = chitchatError{104, "Room error: The lobby cannot change"}
	errBadRequest     = chitchatError{201, "Request error: Invalid request"}
	errUnauthorized   = chitchatError{301, "Authorization required"}
	errTokenExpired   = chitchatError{302, "Authorization error: Token expired"}
	errInvalidToken   = chitchatError{303, "Authorization error: Invalid token"}
	errUnauthorizedOp = chitchatError{304, "Unauthorized operation"}
	errServer         = chitchatError{500, "Server error"}
)

// byReason numbers Parley's reasons.
var byReason = map[string]chitchatError{
	"ROOM_NOT_FOUND":           errRoomNotFound,
	"ROOM_NAME_TAKEN":          errDuplicateRoom,
	"ROOM_REQUIRED":            errRoomField,
	"INVALID_ROOM_NAME":        errRoomField,
	"INVALID_DESCRIPTION":      errRoomField,
	"INVALID_VISIBILITY":       errRoomField,
	"PASSWORD_REQUIRED":        errRoomField,
	"PASSWORD_TOO_SHORT":       errRoomField,
	"PASSWORD_TOO_LONG":        errRoomField,
	"PASSWORD_NOT_ALLOWED":     errRoomField,
	"LOBBY_IS_PERMANENT":       errPermanentRoom,
	"INVALID_NAME":             errBadRequest,
	"MESSAGE_REQUIRED":         errBadRequest,
	"MESSAGE_TOO_LONG":         errBadRequest,
	apierror.MalformedJSON:     errBadRequest,
	apierror.UnknownField:      errBadRequest,
	apierror.DuplicateField:    errBadRequest,
	apierror.InvalidFieldValue: errBadRequest,
	apierror.InvalidUTF8:       errBadRequest,
	apierror.RequestTooLarge:   errBadRequest,
	apierror.HeadersTooLarge:   errBadRequest,
	apierror.UnknownFrameType:  errBadRequest,
	"TOKEN_MISSING":            errUnauthorized,
	"TOKEN_EXPIRED":            errTokenExpired,
	"TOKEN_MALFORMED":          errInvalidToken,
	"TOKEN_BAD_ALGORITHM":      errInvalidToken,
	"TOKEN_BAD_SIGNATURE":      errInvalidToken,
	"TOKEN_REVOKED":            errInvalidToken,
	"USER_GONE":                errInvalidToken,
	"ROOM_GONE":                errInvalidToken,
	"WRONG_SECRET":             errUnauthorizedOp,
	"WRONG_PASSWORD":           errUnauthorizedOp,
	"NOT_ROOM_OWNER":           errUnauthorizedOp,
	"NOT_A_MEMBER":             errUnauthorizedOp,
	"NOT_ALLOWED":              errUnauthorizedOp,
	"USER_TOKEN_REQUIRED":      errUnauthorizedOp,
	"ROOM_TOKEN_REQUIRED":      errUnauthorizedOp,
	"ROOM_TOKEN_MISMATCH":      errUnauthorizedOp,
}

// fieldNames are ChitChat's names of Parley's request fields.
var fieldNames = map[string]string{
	"room": "room_id",
	"name": "title", // a room's; a token's name keeps its own (tokenFields)
}

// tokenFields are the field names of the token routes, where name is the
// token's display name.
var tokenFields = map[string]string{
	"room": "room_id",
}

// render is e in ChitChat's body, with its HTTP status: Parley's, but 400
// for a duplicate title, as ChitChat answers it.
func render(e apierror.Error, fields map[string]string) (int, errorBody) {
	ce, ok := byReason[e.Code]
	httpStatus := e.Status
	switch {
	case ok:
	case e.Status >= 500:
		ce = errServer
	case e.Status == http.StatusUnauthorized:
		ce = errInvalidToken
	case e.Status == http.StatusForbidden:
		ce = errUnauthorizedOp
	case e.Status == http.StatusNotFound:
		ce = errRoomNotFound
	default:
		ce = errBadRequest
	}
	if ce == errDuplicateRoom {
		httpStatus = http.StatusBadRequest
	}
	field := e.Field
	if f, ok := fields[field]; ok {
		field = f
	}
	return httpStatus, errorBody{Error: errorDetail{Code: ce.code, Error: ce.text, Field: field}}
}

func writeError(w http.ResponseWriter, e apierror.Error, fields map[string]string) {
	httpStatus, body := render(e, fields)
	apierror.SetRetryAfter(w.Header(), e)
	apierror.WriteJSON(w, httpStatus, body)
}
