// Package web serves Parley's browser chat page: static files embedded in
// the gateway binary, so the page needs no build step and no other server.
//
// The page is plain HTML, CSS and JavaScript modules (static/); it talks to
// the gateway's own REST and WebSocket routes on the same origin.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var files embed.FS

// Prefix is where the page's assets are served: /static/style.css,
// /static/js/app.js, ...
const Prefix = "/static/"

// csp allows only this origin: scripts, styles, fetch and WebSocket.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

type asset struct {
	body        []byte
	etag        string
	contentType string
}

// Handler serves the page at / (and /index.html) and its assets under
// /static/. Anything else is 404. Responses carry an ETag, so a reload costs
// 304s; they are revalidated on every load (no-cache), so a new gateway's
// page is picked up at once.
func Handler() http.Handler {
	assets := map[string]asset{}
	err := fs.WalkDir(files, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := files.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype := mime.TypeByExtension(path.Ext(name))
		if ctype == "" {
			ctype = http.DetectContentType(body)
		}
		assets["/"+name] = asset{body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, contentType: ctype}
		return nil
	})
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := r.URL.Path
		switch {
		case name == "/" || name == "/index.html":
			name = "/static/index.html"
		case strings.HasPrefix(name, Prefix) && name != "/static/index.html":
		default:
			http.NotFound(w, r)
			return
		}
		a, ok := assets[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("ETag", a.etag)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if strings.HasSuffix(name, ".html") {
			h.Set("Content-Security-Policy", csp)
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}
