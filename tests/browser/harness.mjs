// Starts the real parley_server and parley-gateway on free loopback ports,
// each with its own temp directory, and Debian's Chromium through
// playwright-core. The binaries come from PARLEY_SERVER_BIN and
// PARLEY_GATEWAY_BIN (mk/browser.mk sets them); Chromium from
// PARLEY_CHROMIUM (default /usr/bin/chromium).
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

export function binary(env) {
  const path = process.env[env];
  if (!path) throw new Error(`${env} is not set; run through \`make test-browser\``);
  if (!existsSync(path)) throw new Error(`${env}=${path} does not exist`);
  return path;
}

/** A started binary whose output goes to a log file. */
class Proc {
  constructor(name, bin, args, dir) {
    this.name = name;
    this.logPath = join(dir, `${name}.log`);
    const fd = openSync(this.logPath, 'w');
    this.child = spawn(bin, args, { cwd: dir, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => { this.exit = { code, signal }; resolve(this.exit); });
    });
  }

  log() {
    try { return readFileSync(this.logPath, 'utf8'); } catch { return ''; }
  }

  /** Polls for the port the binary writes once it listens (as the Go harness does). */
  async waitPortFile(path) {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (this.exit) throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}) before writing ${path}:\n${this.log()}`);
      try {
        const port = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
        if (port > 0) return port;
      } catch { /* not there yet */ }
      if (Date.now() > deadline) throw new Error(`${this.name} wrote no port to ${path} within ${START_TIMEOUT_MS} ms`);
      await delay(20);
    }
  }

  /** SIGTERM, then SIGKILL after STOP_TIMEOUT_MS. */
  async stop() {
    if (this.exit) return this.exit;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}

/** One server and one gateway in front of it; serverArgs are more server flags. */
export async function startStack({ serverArgs = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'parley-browser-'));
  const serverPort = join(dir, 'server.port');
  const server = new Proc('server', binary('PARLEY_SERVER_BIN'), [
    '--grpc_addr=127.0.0.1:0', `--port_file=${serverPort}`, `--data_dir=${join(dir, 'data')}`,
    '--password_hash_ops=1', '--password_hash_mem_kib=8', '--log_level=info', ...serverArgs,
  ], dir);
  const stack = { dir, server, gateway: null, url: '' };
  try {
    const grpcPort = await server.waitPortFile(serverPort);
    const gatewayPort = join(dir, 'gateway.port');
    stack.gateway = new Proc('gateway', binary('PARLEY_GATEWAY_BIN'), [
      `--grpc_server=127.0.0.1:${grpcPort}`, '--http_addr=127.0.0.1:0', `--port_file=${gatewayPort}`,
      '--log_level=debug',
    ], dir);
    const port = await stack.gateway.waitPortFile(gatewayPort);
    stack.url = `http://127.0.0.1:${port}`;
    await waitHealthy(stack.url);
  } catch (err) {
    await stopStack(stack, true);
    throw err;
  }
  return stack;
}

async function waitHealthy(url) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last;
  for (;;) {
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
      last = `status ${res.status}`;
    } catch (err) { last = err.message; }
    if (Date.now() > deadline) throw new Error(`gateway /healthz not 200 within ${START_TIMEOUT_MS} ms (last: ${last})`);
    await delay(20);
  }
}

/** Stops both; prints their logs when keepLogs (a failed test). */
export async function stopStack(stack, showLogs = false) {
  const exits = [];
  for (const p of [stack.gateway, stack.server]) if (p) exits.push([p, await p.stop()]);
  if (showLogs) {
    for (const [p] of exits) process.stderr.write(`--- ${p.name} log\n${p.log()}--- end of ${p.name} log\n`);
  }
  if (!process.env.PARLEY_KEEP_TMP) rmSync(stack.dir, { recursive: true, force: true });
  return exits;
}

// Chromium on a closed network: no first-run, sync, component updates or
// background fetches, which would only fail here (and slow every start).
export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox', // the tests run as root, where the sandbox cannot start
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--disable-default-apps',
  '--disable-extensions',
  '--disable-domain-reliability',
  '--disable-client-side-phishing-detection',
  '--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication,CertificateTransparencyComponentUpdater',
  '--metrics-recording-only',
  '--password-store=basic',
  '--use-mock-keychain',
];

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.PARLEY_CHROMIUM || '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    // playwright-core adds --headless itself; ours (--headless=new) wins.
    headless: true,
    timeout: START_TIMEOUT_MS,
  });
}
