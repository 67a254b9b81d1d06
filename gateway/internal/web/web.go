// Package web serves Parley's browser chat page: static files embedded in
// the gateway binary, so the page needs no build step and no other server.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Handler serves the page at / and its assets under /static/.
func Handler() http.Handler {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree always has "static"
	}
	return http.FileServer(http.FS(static))
}
