// Drives one side of the peer comparison of bench/run.py, from Node with the `pg` driver:
//
//   node drive.mjs migrate --dsn URL --spec SPEC.json
//       runs the peer's migrations (stripe-experiment-sync) with the OpenAPI spec we give it.
//   node drive.mjs run --target peer|ours|floor --dsn URL --deliveries FILE.jsonl --secret S
//                      --concurrency N [--api-port P] [--timeout SECONDS]
//       delivers every payload of FILE (JSON Lines, {"payload": ...}; signatures are made here,
//       fresh) to the peer's processWebhook() or to stripe_sync.ingest_event(), with N callers,
//       and prints one JSON line: how long from the first delivery until every row is written
//       (peer: every processWebhook() resolved; ours: every ingest returned and the queue is empty).
//       floor: each payload plainly INSERTed, as text, into bench.node_floor (id text primary key, body text),
//       the id given (taken from the payload before the clock starts): the least any receiver that
//       commits each delivery durably can do per delivery, through this same driver.
//
// Both targets use the same runtime, driver, socket and concurrency model, so what differs is
// only what happens behind the call. Nothing here talks to the internet: the peer's Stripe client
// is pointed at --api-port on 127.0.0.1, where run.py listens and counts requests.

import crypto from 'node:crypto';
import fs from 'node:fs';
import readline from 'node:readline';
import pg from 'pg';

function parseArgs(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      out[a.slice(2)] = argv[i + 1];
      i++;
    } else {
      out._.push(a);
    }
  }
  return out;
}

const silent = { info() {}, warn() {}, error() {} };

async function readPayloads(file) {
  const payloads = [];
  const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  for await (const line of rl) {
    if (line.trim()) payloads.push(JSON.parse(line).payload);
  }
  return payloads;
}

function sign(payload, secret, t) {
  const mac = crypto.createHmac('sha256', secret).update(`${t}.${payload}`).digest('hex');
  return `t=${t},v1=${mac}`;
}

// Runs fn(i) for i in [0, n) with `concurrency` callers, in order of i.
async function fanOut(n, concurrency, fn) {
  let next = 0;
  const callers = [];
  for (let c = 0; c < concurrency; c++) {
    callers.push((async () => {
      for (;;) {
        const i = next++;
        if (i >= n) return;
        await fn(i);
      }
    })());
  }
  await Promise.all(callers);
}

async function migrate(args) {
  const { runMigrations } = await import('stripe-experiment-sync');
  const started = performance.now();
  await runMigrations({ databaseUrl: args.dsn, openApiSpecPath: args.spec, logger: silent });
  return { ok: true, seconds: (performance.now() - started) / 1000 };
}

async function runPeer(args, payloads, concurrency) {
  const { StripeSync } = await import('stripe-experiment-sync');
  const sync = await StripeSync.create({
    poolConfig: { connectionString: args.dsn, max: concurrency + 2 },
    stripeSecretKey: 'sk_test_stripe_sync_bench',
    // Given, so create() does not ask the Stripe API which account the key belongs to.
    stripeAccountId: 'acct_stripe_sync_bench',
    stripeWebhookSecret: args.secret,
    logger: silent,
  });
  // Any Stripe API call goes to run.py's counting stub on 127.0.0.1, never outside.
  sync.stripe._setApiField('host', '127.0.0.1');
  sync.stripe._setApiField('port', Number(args['api-port'] || 9));
  sync.stripe._setApiField('protocol', 'http');
  sync.stripe._setApiField('maxNetworkRetries', 0);
  // The peer warns on the console when its timestamp guard keeps a newer row (out-of-order
  // deliveries): count those instead of printing them.
  let staleSkips = 0;
  const warn = console.warn;
  console.warn = (...a) => {
    if (String(a[0]).includes('0 rows returned')) staleSkips++;
    else warn(...a);
  };
  const t = Math.floor(Date.now() / 1000);
  const signatures = payloads.map((p) => sign(p, args.secret, t));
  let errors = 0;
  const firstErrors = [];
  // Connect the pool before the clock starts, as ours does.
  await Promise.all(Array.from({ length: concurrency }, () => sync.postgresClient.pool.query('SELECT 1')));
  const started = performance.now();
  await fanOut(payloads.length, concurrency, async (i) => {
    try {
      await sync.webhook.processWebhook(payloads[i], signatures[i]);
    } catch (err) {
      errors++;
      if (firstErrors.length < 3) firstErrors.push(String(err && err.message || err).slice(0, 300));
    }
  });
  const seconds = (performance.now() - started) / 1000;
  console.warn = warn;
  await sync.close();
  return { target: 'peer', deliveries: payloads.length, concurrency, seconds, errors, first_errors: firstErrors, stale_skips: staleSkips };
}

// Delivers payload i through `call(i)` with N callers from a pool connected before the clock
// starts; counts what `call` resolves to and what it throws.
async function deliverAll(pool, n, concurrency, call) {
  const outcomes = {};
  let errors = 0;
  const firstErrors = [];
  await Promise.all(Array.from({ length: concurrency }, () => pool.query('SELECT 1')));
  const started = performance.now();
  await fanOut(n, concurrency, async (i) => {
    try {
      const o = await call(i);
      outcomes[o] = (outcomes[o] || 0) + 1;
    } catch (err) {
      errors++;
      if (firstErrors.length < 3) firstErrors.push(String(err && err.message || err).slice(0, 300));
    }
  });
  return { started, seconds: (performance.now() - started) / 1000, outcomes, errors, first_errors: firstErrors };
}

async function runOurs(args, payloads, concurrency, timeoutS) {
  const pool = new pg.Pool({ connectionString: args.dsn, max: concurrency });
  const watcher = new pg.Client({ connectionString: args.dsn });
  await watcher.connect();
  const t = Math.floor(Date.now() / 1000);
  const signatures = payloads.map((p) => sign(p, args.secret, t));
  const d = await deliverAll(pool, payloads.length, concurrency, async (i) => {
    const r = await pool.query('SELECT stripe_sync.ingest_event($1, $2) AS r', [payloads[i], signatures[i]]);
    return r.rows[0].r;
  });
  const deadline = performance.now() + timeoutS * 1000;
  let pending = -1;
  for (;;) {
    const r = await watcher.query(
      "SELECT count(*)::int AS n FROM stripe_sync.events WHERE status = 'pending'");
    pending = r.rows[0].n;
    if (pending === 0 || performance.now() > deadline) break;
    await new Promise((res) => setTimeout(res, 10));
  }
  const seconds = (performance.now() - d.started) / 1000;
  await watcher.end();
  await pool.end();
  return { target: 'ours', deliveries: payloads.length, concurrency, seconds, ingest_seconds: d.seconds, pending_left: pending,
    outcomes: d.outcomes, errors: d.errors, first_errors: d.first_errors };
}

async function runFloor(args, payloads, concurrency) {
  const pool = new pg.Pool({ connectionString: args.dsn, max: concurrency });
  const ids = payloads.map((p) => JSON.parse(p).id);
  const d = await deliverAll(pool, payloads.length, concurrency, async (i) => {
    const r = await pool.query(
      'INSERT INTO bench.node_floor (id, body) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING',
      [ids[i], payloads[i]]);
    return r.rowCount === 1 ? 'inserted' : 'duplicate';
  });
  await pool.end();
  return { target: 'floor', deliveries: payloads.length, concurrency, seconds: d.seconds,
    outcomes: d.outcomes, errors: d.errors, first_errors: d.first_errors };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const cmd = args._[0];
  let result;
  if (cmd === 'migrate') {
    result = await migrate(args);
  } else if (cmd === 'run') {
    const payloads = await readPayloads(args.deliveries);
    const concurrency = Number(args.concurrency || 1);
    const timeoutS = Number(args.timeout || 300);
    if (args.target === 'peer') result = await runPeer(args, payloads, concurrency);
    else if (args.target === 'ours') result = await runOurs(args, payloads, concurrency, timeoutS);
    else if (args.target === 'floor') result = await runFloor(args, payloads, concurrency);
    else throw new Error(`unknown --target ${args.target}`);
  } else {
    throw new Error('usage: drive.mjs migrate|run ...');
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(err && err.stack || err) }) + '\n');
  process.exit(1);
});
