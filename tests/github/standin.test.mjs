// The GitHub stand-in answers as GitHub's OpenAPI description says GitHub answers: every body
// against the response schema of its operation and status, the headers GitHub documents, and
// the behaviours stagectl relies on (ETag → 304 free of the rate limit, pagination, App tokens).
//   node --test tests/github/
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { generateKeyPairSync, createSign } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import Ajv from "ajv";
import addFormats from "ajv-formats";

const api = JSON.parse(
  readFileSync(new URL("node_modules/@octokit/openapi/generated/api.github.com.deref.json", import.meta.url)),
);
// Error bodies: basic-error, as the description's components define it (no references inside).
const basicError = JSON.parse(
  readFileSync(new URL("node_modules/@octokit/openapi/generated/api.github.com.json", import.meta.url)),
).components.schemas["basic-error"];
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);

function assertFollowsSchema(path, method, status, body) {
  const operation = api.paths[path][method];
  const response = operation.responses[String(status)];
  assert.ok(response, `${method.toUpperCase()} ${path} has no ${status} response in GitHub's description`);
  const schema = response.content?.["application/json"]?.schema;
  if (!schema) {
    assert.equal(body, "", `${method} ${path} ${status} has no body in GitHub's description`);
    return;
  }
  const validate = ajv.compile(nullables(schema));
  assert.ok(validate(body), `${method.toUpperCase()} ${path} ${status}: ${ajv.errorsText(validate.errors)}`);
}

// OpenAPI 3.0's `nullable` beside no `type` (the description writes it so around an allOf or
// anyOf, e.g. an issue event's `performed_via_github_app`), which Ajv refuses: said as JSON
// Schema does, the schema or null.
function nullables(schema) {
  if (Array.isArray(schema)) return schema.map(nullables);
  if (schema === null || typeof schema !== "object") return schema;
  const out = Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, nullables(value)]));
  if (out.nullable === true && out.type === undefined) {
    delete out.nullable;
    return { anyOf: [out, { type: "null" }] };
  }
  return out;
}

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
let standin;
let base;

before(async () => {
  standin = spawn(process.execPath, [new URL("standin.mjs", import.meta.url).pathname], { stdio: ["ignore", "pipe", "inherit"] });
  base = await new Promise((resolve) => {
    standin.stdout.once("data", (line) => resolve(String(line).trim().replace("GITHUB_API_URL=", "")));
  });
  const reviews = [
    { reviewer: 11, state: "COMMENTED" },
    { reviewer: 11, state: "APPROVED" },
    { reviewer: 12, state: "CHANGES_REQUESTED" },
  ];
  const pulls = Array.from({ length: 130 }, (_, i) => ({
    number: i + 1,
    branch: `task-${i + 1}-work`,
    labels: i % 2 ? ["task-" + (i + 1), "ready-for-qa"] : [],
    reviews,
    labelEvents: [{ label: "ready-for-qa", at: Date.UTC(2026, 11, 7, 10, 0, 1) }],
    commits: [{ at: Date.UTC(2026, 11, 7, 9, 0) }, { at: Date.UTC(2026, 11, 7, 10, 5) }],
  }));
  const response = await fetch(`${base}/_standin/state`, {
    method: "PUT",
    body: JSON.stringify({
      tokens: ["ghp_test"],
      app: { id: 4242, publicKey: publicKey.export({ type: "spki", format: "pem" }), installationId: 99 },
      rateLimit: { limit: 5000, remaining: 5000, reset: 1893456000 },
      repos: { "acme/widgets": pulls },
    }),
  });
  assert.equal(response.status, 204);
});

after(() => standin.kill());

const get = (path, headers = {}) =>
  fetch(`${base}${path}`, { headers: { authorization: "Bearer ghp_test", accept: "application/vnd.github+json", ...headers } });

test("pull requests: the schema, the Link header, and ETag answers that cost nothing", async () => {
  const first = await get("/repos/acme/widgets/pulls?state=open&per_page=100");
  assert.equal(first.status, 200);
  const body = await first.json();
  assertFollowsSchema("/repos/{owner}/{repo}/pulls", "get", 200, body);
  assert.equal(body.length, 100);
  assert.equal(body[1].head.ref, "task-2-work");
  assert.deepEqual(body[1].labels.map((l) => l.name), ["task-2", "ready-for-qa"]);
  // GitHub's Link header: next and last, absolute URLs with per_page and page.
  assert.match(first.headers.get("link"), /^<http:\/\/[^>]+[?&]page=2[^>]*>; rel="next", <[^>]+page=2[^>]*>; rel="last"$/);
  const remaining = Number(first.headers.get("x-ratelimit-remaining"));
  for (const header of ["x-ratelimit-limit", "x-ratelimit-reset", "x-ratelimit-used", "x-ratelimit-resource", "etag"]) {
    assert.ok(first.headers.get(header), header);
  }

  const second = await get(new URL(first.headers.get("link").match(/<([^>]+)>; rel="next"/)[1]).pathname + "?state=open&per_page=100&page=2");
  const rest = await second.json();
  assertFollowsSchema("/repos/{owner}/{repo}/pulls", "get", 200, rest);
  assert.equal(rest.length, 30);
  assert.match(second.headers.get("link"), /rel="prev"/);

  const again = await get("/repos/acme/widgets/pulls?state=open&per_page=100", { "if-none-match": first.headers.get("etag") });
  assert.equal(again.status, 304);
  assertFollowsSchema("/repos/{owner}/{repo}/pulls", "get", 304, await again.text());
  assert.equal(Number(again.headers.get("x-ratelimit-remaining")), remaining - 1, "only the second page was counted");
});

test("reviews: the schema, oldest first, each with its reviewer", async () => {
  const response = await get("/repos/acme/widgets/pulls/3/reviews?per_page=100");
  assert.equal(response.status, 200);
  const body = await response.json();
  assertFollowsSchema("/repos/{owner}/{repo}/pulls/{pull_number}/reviews", "get", 200, body);
  assert.deepEqual(body.map((r) => [r.user.id, r.state]), [[11, "COMMENTED"], [11, "APPROVED"], [12, "CHANGES_REQUESTED"]]);
  const missing = await get("/repos/acme/widgets/pulls/999/reviews");
  assert.equal(missing.status, 404);
  assertFollowsSchema("/repos/{owner}/{repo}/pulls/{pull_number}/reviews", "get", 200, []);
});

test("a pull request's labeled events and commits: the schema, with their times", async () => {
  const events = await (await get("/repos/acme/widgets/issues/3/events?per_page=100")).json();
  assertFollowsSchema("/repos/{owner}/{repo}/issues/{issue_number}/events", "get", 200, events);
  assert.deepEqual(events.map((e) => [e.event, e.label.name, e.created_at]), [["labeled", "ready-for-qa", "2026-12-07T10:00:01Z"]]);
  const commits = await (await get("/repos/acme/widgets/pulls/3/commits?per_page=100")).json();
  assertFollowsSchema("/repos/{owner}/{repo}/pulls/{pull_number}/commits", "get", 200, commits);
  assert.deepEqual(commits.map((c) => c.commit.committer.date), ["2026-12-07T09:00:00Z", "2026-12-07T10:05:00Z"]);
  assert.equal(new Set(commits.map((c) => c.sha)).size, 2);
  assert.equal((await get("/repos/acme/widgets/pulls/999/commits")).status, 404);
});

test("a GitHub App's JWT is exchanged for an installation token that reads the API", async () => {
  const now = Math.floor(Date.now() / 1000);
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const unsigned = `${encode({ alg: "RS256", typ: "JWT" })}.${encode({ iat: now - 60, exp: now + 540, iss: "4242" })}`;
  const signature = createSign("RSA-SHA256").update(unsigned).sign(privateKey, "base64url");
  const response = await fetch(`${base}/app/installations/99/access_tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${unsigned}.${signature}` },
  });
  assert.equal(response.status, 201);
  const body = await response.json();
  assertFollowsSchema("/app/installations/{installation_id}/access_tokens", "post", 201, body);
  const pulls = await fetch(`${base}/repos/acme/widgets/pulls`, { headers: { authorization: `token ${body.token}` } });
  assert.equal(pulls.status, 200);

  const forged = await fetch(`${base}/app/installations/99/access_tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${unsigned}.${signature.slice(0, -4)}AAAA` },
  });
  assert.equal(forged.status, 401);
  assertFollowsSchema("/app/installations/{installation_id}/access_tokens", "post", 401, await forged.json());
});

test("a bad token is 401 and an exhausted rate limit 403, with GitHub's error body", async () => {
  const bad = await get("/repos/acme/widgets/pulls", { authorization: "Bearer wrong" });
  assert.equal(bad.status, 401);
  const body = await bad.json();
  // GitHub's description lists no 401 for this operation; its error bodies are basic-error.
  const validate = ajv.compile(basicError);
  assert.ok(validate(body), ajv.errorsText(validate.errors));

  await fetch(`${base}/_standin/state`, { method: "PUT", body: JSON.stringify({ rateLimit: { limit: 5000, remaining: 0, reset: 1893456000 } }) });
  const limited = await get("/repos/acme/widgets/pulls");
  assert.equal(limited.status, 403);
  assert.equal(limited.headers.get("x-ratelimit-remaining"), "0");
  assert.equal(limited.headers.get("x-ratelimit-reset"), "1893456000");
  assert.ok(validate(await limited.json()));
});

test("an agent's changes are applied as GitHub would and logged, with their deliveries", async () => {
  await fetch(`${base}/_standin/state`, {
    method: "PUT",
    body: JSON.stringify({ rateLimit: { limit: 5000, remaining: 5000, reset: 1893456000 }, repos: { "acme/soak": [] } }),
  });
  const change = (kind, task = "7") =>
    fetch(`${base}/_standin/changes`, { method: "POST", body: JSON.stringify({ repository: "acme/soak", task, kind }) });
  assert.equal((await change("ready-for-qa")).status, 409, "no pull request to label yet");
  const opened = await change("pr-opened");
  assert.equal(opened.status, 201);
  const { number } = await opened.json();
  assert.equal((await (await change("pr-opened")).json()).number, number, "opening again is the same pull request");
  assert.equal((await change("ready-for-qa")).status, 201);
  assert.equal((await change("approved")).status, 201);

  const pulls = await (await get("/repos/acme/soak/pulls")).json();
  assertFollowsSchema("/repos/{owner}/{repo}/pulls", "get", 200, pulls);
  assert.deepEqual(
    pulls.map((pull) => [pull.number, pull.head.ref, pull.labels.map((label) => label.name)]),
    [[number, "task-7-implementation", ["task-7", "ready-for-qa"]]],
  );
  const reviews = await (await get(`/repos/acme/soak/pulls/${number}/reviews`)).json();
  assert.deepEqual(reviews.map((review) => review.state), ["APPROVED"]);

  await fetch(`${base}/_standin/deliveries`, { method: "POST", body: JSON.stringify({ id: "d1", task: "7", answer: "200 success" }) });
  const log = await (await fetch(`${base}/_standin/changes`)).json();
  assert.deepEqual(log.map((entry) => entry.kind), ["pr-opened", "pr-opened", "ready-for-qa", "approved"]);
  assert.ok(log.every((entry) => entry.number === number && entry.at > 0));
  const delivered = await (await fetch(`${base}/_standin/deliveries`)).json();
  assert.deepEqual(delivered.map((entry) => [entry.id, entry.answer]), [["d1", "200 success"]]);
});

test("a gate's facts: check suites and workflow runs on the head, merged pull requests newest first", async () => {
  const changed = (kind) =>
    fetch(`${base}/_standin/changes`, { method: "POST", body: JSON.stringify({ repository: "acme/gates", task: "31", kind }) });
  assert.equal((await changed("pr-opened")).status, 201);
  assert.equal((await changed("checks-failed")).status, 201);
  assert.equal((await changed("checks-passed")).status, 201);
  const [pull] = await (await get("/repos/acme/gates/pulls?state=open")).json();
  assert.match(pull.head.sha, /^[0-9a-f]{40}$/);

  const suites = await (await get(`/repos/acme/gates/commits/${pull.head.sha}/check-suites?per_page=100`)).json();
  assertFollowsSchema("/repos/{owner}/{repo}/commits/{ref}/check-suites", "get", 200, suites);
  assert.deepEqual(suites.check_suites.map((suite) => [suite.status, suite.conclusion, suite.head_sha]), [
    ["completed", "failure", pull.head.sha],
    ["completed", "success", pull.head.sha],
  ]);
  const runs = await (await get(`/repos/acme/gates/actions/runs?head_sha=${pull.head.sha}&per_page=100`)).json();
  assertFollowsSchema("/repos/{owner}/{repo}/actions/runs", "get", 200, runs);
  assert.deepEqual(runs.workflow_runs.map((run) => [run.name, run.conclusion]), [["CI", "failure"], ["CI", "success"]]);
  const elsewhere = await (await get(`/repos/acme/gates/actions/runs?head_sha=${"0".repeat(40)}`)).json();
  assert.equal(elsewhere.total_count, 0);

  assert.equal((await changed("merged")).status, 201);
  assert.deepEqual(await (await get("/repos/acme/gates/pulls?state=open")).json(), []);
  const closed = await (await get("/repos/acme/gates/pulls?state=closed&sort=updated&direction=desc")).json();
  assertFollowsSchema("/repos/{owner}/{repo}/pulls", "get", 200, closed);
  assert.deepEqual(closed.map((p) => [p.number, p.state, p.merged_at !== null]), [[pull.number, "closed", true]]);
  assert.equal((await changed("checks-passed")).status, 409, "no open pull request is left to check");
});

test("queued faults: a 502, a dropped connection, a secondary rate limit with and without Retry-After", async () => {
  await fetch(`${base}/_standin/state`, { method: "PUT", body: JSON.stringify({ rateLimit: { limit: 5000, remaining: 5000, reset: 1893456000 } }) });
  await fetch(`${base}/_standin/faults`, { method: "PUT", body: JSON.stringify({ next: ["502", "reset", "secondary:3", "secondary"] }) });
  const validate = ajv.compile(basicError);
  const failed = await get("/repos/acme/widgets/pulls");
  assert.equal(failed.status, 502);
  await assert.rejects(get("/repos/acme/widgets/pulls"), /fetch failed/);
  const limited = await get("/repos/acme/widgets/pulls");
  assert.equal(limited.status, 403);
  assert.equal(limited.headers.get("retry-after"), "3");
  assert.notEqual(limited.headers.get("x-ratelimit-remaining"), "0", "not the primary limit");
  const body = await limited.json();
  assert.ok(validate(body), ajv.errorsText(validate.errors));
  assert.match(body.message, /secondary rate limit/);
  const plain = await get("/repos/acme/widgets/pulls");
  assert.equal(plain.status, 403);
  assert.equal(plain.headers.get("retry-after"), null);
  assert.equal((await get("/repos/acme/soak/pulls")).status, 200, "the queue is spent");
});
