package web

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestServesThePageAtRoot(t *testing.T) {
	h := Handler()
	for _, target := range []string{"/", "/index.html"} {
		w := get(t, h, target)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", target, w.Code)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: Content-Type %q", target, ct)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", target, csp)
		}
		if !strings.Contains(w.Body.String(), `<script type="module" src="/static/js/app.js">`) {
			t.Errorf("GET %s: no module script in the page", target)
		}
	}
}

// Every asset the page names is served, modules as JavaScript (browsers
// refuse a module with another type).
func TestServesEveryAssetThePageNames(t *testing.T) {
	h := Handler()
	page := get(t, h, "/").Body.String()
	refs := regexp.MustCompile(`(?:href|src)="(/static/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("found %d asset references in the page", len(refs))
	}
	seen := map[string]bool{}
	for _, m := range refs {
		seen[m[1]] = true
	}
	// Modules the page only imports.
	for _, js := range []string{"api", "session", "feed", "timeline", "app"} {
		seen["/static/js/"+js+".js"] = true
	}
	for target := range seen {
		w := get(t, h, target)
		if w.Code != http.StatusOK {
			t.Errorf("GET %s: %d", target, w.Code)
			continue
		}
		ct := w.Header().Get("Content-Type")
		switch {
		case strings.HasSuffix(target, ".js") && !strings.HasPrefix(ct, "text/javascript"):
			t.Errorf("GET %s: Content-Type %q", target, ct)
		case strings.HasSuffix(target, ".css") && !strings.HasPrefix(ct, "text/css"):
			t.Errorf("GET %s: Content-Type %q", target, ct)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", target)
		}
	}
}

func TestRevalidatesWithETag(t *testing.T) {
	h := Handler()
	first := get(t, h, "/static/js/app.js")
	etag := first.Header().Get("ETag")
	if etag == "" || first.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, first.Header().Get("Cache-Control"))
	}
	again := get(t, h, "/static/js/app.js", "If-None-Match", etag)
	if again.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", again.Code)
	}
}

func TestRefusesWhatIsNotThePage(t *testing.T) {
	h := Handler()
	for _, target := range []string{"/static/", "/static/nope.js", "/nope", "/static/../web.go", "/static/index.html"} {
		if w := get(t, h, target); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", target, w.Code)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x"))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", w.Code)
	}
}
