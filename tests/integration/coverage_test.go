package integration

import (
	"bufio"
	"flag"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The REST routes the tests exercise, checked against gateway/http_rules.yaml
// and the routes docs/api.md documents for the reproduced APIs once every
// test has run: each route must have answered a success and, unless listed
// in noErrorStatus, an error.

const (
	rulesFile = "../../gateway/http_rules.yaml"
	apiDoc    = "../../docs/api.md"
	// compatSection is the heading of the reproduced APIs in apiDoc.
	compatSection = "## The reproduced APIs"
)

// noErrorStatus lists the routes that cannot fail on input.
var noErrorStatus = map[string]bool{
	"GET /users":    true, // seed 004's posters: no parameters, no token
	"GET /v1/stats": true, // server statistics: no parameters, no token
}

var (
	hitsMu sync.Mutex
	hits   = map[string][]int{} // "GET /v1/rooms" (method and request path) -> statuses
)

// recordHit notes the status of one REST request.
func recordHit(method, target string, status int) {
	u, err := url.Parse(target)
	if err != nil {
		return
	}
	path := u.Path
	// Seed 004: GET /messages without id is ListRecentMessages.
	if method == "GET" && path == "/messages" && !u.Query().Has("id") {
		path = "/messages (no id)"
	}
	hitsMu.Lock()
	defer hitsMu.Unlock()
	key := method + " " + path
	hits[key] = append(hits[key], status)
}

type httpRule struct {
	method, template string
	re               *regexp.Regexp
	section          string // the "### " heading a documented route is under
}

var ruleLineRE = regexp.MustCompile(`^\s*-?\s*(get|post|patch|delete|put):\s*(\S+)\s*$`)

func readRules() ([]httpRule, error) {
	f, err := os.Open(rulesFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rules []httpRule
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := ruleLineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		tmpl := m[2]
		pattern := regexp.QuoteMeta(tmpl)
		pattern = regexp.MustCompile(`\\\{[a-z_]+\\\}`).ReplaceAllString(pattern, `[^/]+`)
		if tmpl == "/messages" {
			pattern = `/messages` // the long poll; see recordHit
		}
		rules = append(rules, httpRule{method: strings.ToUpper(m[1]), template: tmpl, re: regexp.MustCompile("^" + pattern + "$")})
	}
	return rules, sc.Err()
}

// documentedRouteRE matches a route row of a table, e.g. "| `GET\|POST /chats/{room_id}/token/renew` |".
var documentedRouteRE = regexp.MustCompile("^\\| `((?:[A-Z]+\\\\\\|)*[A-Z]+) (/[^` ?]*)")

// readDocumentedRoutes reads the REST routes of the reproduced APIs from
// apiDoc's tables; WebSocket routes (ending in /ws) are the socket tests'.
func readDocumentedRoutes() ([]httpRule, error) {
	f, err := os.Open(apiDoc)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rules []httpRule
	in, section := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == compatSection
			continue
		}
		if heading, ok := strings.CutPrefix(line, "### "); ok {
			section = heading
			continue
		}
		m := documentedRouteRE.FindStringSubmatch(line)
		if !in || m == nil || strings.HasSuffix(m[2], "/ws") {
			continue
		}
		pattern := regexp.MustCompile(`\\\{[a-z_]+\\\}`).ReplaceAllString(regexp.QuoteMeta(m[2]), `[^/]+`)
		for _, method := range strings.Split(m[1], `\|`) {
			rules = append(rules, httpRule{method: method, template: m[2], re: regexp.MustCompile("^" + pattern + "$"), section: section})
		}
	}
	return rules, sc.Err()
}

// uncovered names the rules without a success or without an error status.
func uncovered(rules []httpRule) []string {
	hitsMu.Lock()
	defer hitsMu.Unlock()
	var missing []string
	for _, r := range rules {
		ok, failed := false, false
		for key, statuses := range hits {
			method, path, _ := strings.Cut(key, " ")
			if method != r.method {
				continue
			}
			if !r.re.MatchString(path) && !(r.template == "/v1/lobby/recent-messages" && path == "/messages (no id)") {
				continue
			}
			// A path such as /v1/rooms/x:subscribe also matches
			// /v1/rooms/{room}; the verb routes are the more specific.
			if !strings.Contains(r.template, ":") && strings.Contains(path[strings.LastIndex(path, "/"):], ":") {
				continue
			}
			for _, st := range statuses {
				ok = ok || (st >= 200 && st < 300)
				failed = failed || st >= 400
			}
		}
		name := r.method + " " + r.template
		switch {
		case !ok:
			missing = append(missing, name+": no success")
		case !failed && !noErrorStatus[name]:
			missing = append(missing, name+": no error status")
		}
	}
	slices.Sort(missing)
	return missing
}

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv("PARLEY_TEST_STORE") == "postgres" {
		p, err := startPostgres()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		sharedPostgres = p
	}
	code := m.Run()
	if sharedPostgres != nil {
		sharedPostgres.stop()
	}
	// Only a full run against the real binaries says anything about
	// coverage.
	if os.Getenv("PARLEY_SERVER_BIN") != "" && flag.Lookup("test.run").Value.String() == "" {
		rules, err := readRules()
		if err == nil && len(rules) == 0 {
			err = fmt.Errorf("no rules in %s", rulesFile)
		}
		if err == nil {
			var documented []httpRule
			if documented, err = readDocumentedRoutes(); err == nil && len(documented) == 0 {
				err = fmt.Errorf("no routes under %q in %s", compatSection, apiDoc)
			}
			rules = append(rules, documented...)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "route coverage:", err)
			os.Exit(1)
		}
		if missing := uncovered(rules); len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "route coverage: %d of %d HTTP rules and documented routes not exercised:\n  %s\n",
				len(missing), len(rules), strings.Join(missing, "\n  "))
			code = 1
		} else {
			fmt.Fprintf(os.Stderr, "route coverage: all %d HTTP rules and documented routes answered a success and an error\n", len(rules))
		}
	}
	os.Exit(code)
}
