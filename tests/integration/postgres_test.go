package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The store the stacks use. PARLEY_TEST_STORE=postgres runs every test
// against one PostgreSQL server started for the run (TestMain), each stack
// on a database of its own; otherwise stacks use the embedded SQLite store.
// Tests about PostgreSQL itself start a server of their own either way.
var sharedPostgres *pgServer

// pgServer is a throwaway PostgreSQL server on loopback, run by
// scripts/test-postgres.sh.
type pgServer struct {
	script string
	dir    string
	dsn    string // of its `parley` database

	mu  sync.Mutex
	dbs int
}

func postgresScript() string {
	if s := os.Getenv("PARLEY_TEST_POSTGRES_SCRIPT"); s != "" {
		return s
	}
	abs, _ := filepath.Abs("../../scripts/test-postgres.sh")
	return abs
}

// startPostgres starts a server in a fresh directory under /tmp (as root the
// server runs as the postgres user, which must reach it).
func startPostgres() (*pgServer, error) {
	dir, err := os.MkdirTemp("", "parley-pg-")
	if err != nil {
		return nil, err
	}
	os.Remove(dir) // the script makes it, owned by the server's user
	p := &pgServer{script: postgresScript(), dir: dir}
	out, err := exec.Command(p.script, "start", dir).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("start postgres: %v: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("start postgres: %v", err)
	}
	p.dsn = strings.TrimSpace(string(out))
	return p, nil
}

// postgresFor starts a server for one test, stopped when the test ends.
func postgresFor(t *testing.T) *pgServer {
	t.Helper()
	p, err := startPostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
			t.Logf("--- postgres log\n%s--- end of postgres log", b)
		}
		p.stop()
	})
	return p
}

func (p *pgServer) stop() {
	_ = exec.Command(p.script, "stop", p.dir).Run()
}

// control runs `test-postgres.sh CMD DIR` (restart, pause, resume, kill).
func (p *pgServer) control(t *testing.T, cmd string) {
	t.Helper()
	if out, err := exec.Command(p.script, cmd, p.dir).CombinedOutput(); err != nil {
		t.Fatalf("postgres %s: %v: %s", cmd, err, out)
	}
}

// newDatabase creates an empty database and returns its DSN.
func (p *pgServer) newDatabase(t *testing.T) string {
	t.Helper()
	p.mu.Lock()
	p.dbs++
	name := fmt.Sprintf("stack_%d", p.dbs)
	p.mu.Unlock()
	out, err := exec.Command("psql", p.dsn, "-v", "ON_ERROR_STOP=1", "-qc", "CREATE DATABASE "+name).CombinedOutput()
	if err != nil {
		t.Fatalf("create database %s: %v: %s", name, err, out)
	}
	return strings.Replace(p.dsn, "dbname=parley", "dbname="+name, 1)
}

// withPostgres puts the stack's server on a database of its own on p.
func withPostgres(p *pgServer) stackOption {
	return func(o *stackOptions) { o.postgres = p }
}

// A server started before its database (as docker compose starts them)
// keeps trying within --postgres_startup_wait and serves once the database
// is up.
func TestTheServerWaitsForItsDatabaseAtStart(t *testing.T) {
	binary(t, "PARLEY_SERVER_BIN")
	pg := postgresFor(t)
	s := &stack{dir: t.TempDir()}
	s.dataDir = filepath.Join(s.dir, "data")
	s.opts.postgres = pg
	s.postgresDSN = pg.newDatabase(t)
	pg.control(t, "pause")

	// Start the database again once the server says it is waiting for it.
	resumed := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(startTimeout)
		for {
			b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			if strings.Contains(string(b), "waiting for the database") {
				break
			}
			if time.Now().After(deadline) {
				resumed <- fmt.Errorf("the server never said it was waiting for the database")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		out, err := exec.Command(pg.script, "resume", pg.dir).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("postgres resume: %v: %s", err, out)
		}
		resumed <- err
	}()
	s.startServer(t)
	if err := <-resumed; err != nil {
		t.Fatal(err)
	}
	s.startGateway(t)
	owner := s.signUp(t, "early")
	rm := s.createRoom(t, owner.token, "late-database", "", "")
	if m := s.post(t, owner.token, rm.ID, "after the wait"); m.Sequence == 0 {
		t.Errorf("post after the wait: %+v", m)
	}
}
