#!/usr/bin/env node
// A stand-in for GitHub's REST API, for the tests of `stagectl reconcile`: the few endpoints it
// calls, answering as api.github.com does. Every object it returns starts from the example in
// GitHub's own OpenAPI description (@octokit/openapi) and changes only the fields the state
// sets; standin.test.mjs validates its answers against that description's schemas. Test
// infrastructure, not part of stagectl.
//
//   node standin.mjs [--port N]     prints GITHUB_API_URL=http://127.0.0.1:PORT once it listens
//
// Served as GitHub does: authentication (a token, or a GitHub App's JWT exchanged for an
// installation token), the primary rate limit and its x-ratelimit-* headers (a 304 does not
// count), ETag and If-None-Match, pagination with per_page, page and the Link header.
//   GET  /repos/{owner}/{repo}/pulls?state=open|closed|all[&sort=updated&direction=desc]
//   GET  /repos/{owner}/{repo}/pulls/{number}/reviews
//   GET  /repos/{owner}/{repo}/commits/{sha}/check-suites
//   GET  /repos/{owner}/{repo}/actions/runs?head_sha={sha}
//   GET  /repos/{owner}/{repo}/issues/{number}/events   (its labeled events)
//   GET  /repos/{owner}/{repo}/pulls/{number}/commits
//   POST /app/installations/{id}/access_tokens
// The tests drive it through /_standin/:
//   PUT  /_standin/state     the whole state, JSON: {tokens: [..], app: {id, publicKey,
//                            installationId}, rateLimit: {limit, remaining, reset},
//                            repos: {"owner/repo": [{number, branch, labels: [..],
//                            reviews: [{reviewer, login, state, submittedAt (ms)}],
//                            state: open|closed, merged, updatedAt (ms), headSha,
//                            checkSuites: [{conclusion, updatedAt}], workflowRuns: [{name,
//                            conclusion, updatedAt}], labelEvents: [{label, at (ms)}],
//                            commits: [{at (ms)}]}]}}
//   GET  /_standin/requests  every API request so far: {method, path, status, at} (at: when it
//                            came, ms since the epoch); status 0 for a connection the stand-in
//                            dropped or left unanswered
//   POST /_standin/changes   {repository, task, kind}: what an agent did on GitHub, applied to
//                            the state as GitHub would: pr-opened opens a pull request (the next
//                            number of the repository, head branch task-ID-implementation,
//                            label task-ID, a commit), pushed adds a commit (a new head),
//                            ready-for-qa labels the task's open pull request (again: removed
//                            and added, a labeled event each time), approved and
//                            changes-requested add a review (reviewer 1), checks-passed and
//                            checks-failed complete a check suite and a workflow run ("CI") on
//                            its head with success or failure, merged merges it; each one logged
//   GET  /_standin/changes   that log: [{at, repository, task, kind, number}], ms since the epoch
//   POST /_standin/deliveries / GET: the webhook deliveries agents made and their answers, as
//                            GitHub's delivery log keeps them (each entry as posted, with `at`
//                            when it was recorded; agents add `sentAt`, when they sent it)
//   PUT  /_standin/faults    {next: [FAULT, ..]}: the next API requests, one each, meet these
//                            faults instead of their answer (replacing any still queued):
//                            a status such as 502 (GitHub's error body); "reset" (the
//                            connection dropped before any answer); "stall" (no answer until
//                            the client gives up); "secondary" (403, a secondary rate limit
//                            without Retry-After) or "secondary:N" (with Retry-After: N)
import { createHash, createVerify, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { parseArgs } from "node:util";

const api = JSON.parse(
  readFileSync(new URL("node_modules/@octokit/openapi/generated/api.github.com.json", import.meta.url)),
);
const example = (name) => structuredClone(api.components.examples[name].value);
const PULL = example("pull-request-simple-items")[0];
const REVIEW = example("pull-request-review-items")[0];
const CHECK_SUITE = example("check-suite-paginated").check_suites[0];
const ISSUE_EVENT = example("issue-event-for-issue-items")[0];
const COMMIT = example("commit-items")[0];
const WORKFLOW_RUN = example("workflow-run-paginated").workflow_runs[0];
const INSTALLATION_TOKEN = example("installation-token");
const LABEL = PULL.labels[0];

let state = { tokens: [], app: null, rateLimit: { limit: 5000, remaining: 5000, reset: 0 }, repos: {} };
const installationTokens = new Map();
const requests = [];
let faults = [];
const changes = [];
const deliveries = [];

// A repository's pull requests; GitHub's owner and repository names ignore case.
function pullsOf(repository, create = false) {
  const key = Object.keys(state.repos).find((name) => name.toLowerCase() === repository.toLowerCase());
  if (key !== undefined) return state.repos[key];
  return create ? (state.repos[repository] = []) : undefined;
}

// An agent's change on GitHub, applied to the state; the pull request's number, or an error.
function applyChange({ repository, task, kind }) {
  const pulls = pullsOf(repository, true);
  const label = `task-${task}`;
  const open = pulls.find((pull) => isOpen(pull) && (pull.labels ?? []).includes(label));
  if (kind === "pr-opened") {
    if (open) return open.number;
    const number = pulls.reduce((max, pull) => Math.max(max, pull.number), 0) + 1;
    const now = Date.now();
    pulls.push({ number, branch: `task-${task}-implementation`, labels: [label], reviews: [], updatedAt: now, commits: [{ at: now }] });
    return number;
  }
  if (!open) return { error: `no open pull request of task ${task} in ${repository}` };
  if (kind === "ready-for-qa") {
    if (!open.labels.includes("ready-for-qa")) open.labels.push("ready-for-qa");
    (open.labelEvents ??= []).push({ label: "ready-for-qa", at: Date.now() });
  } else if (kind === "pushed") {
    // A new commit at the head: what CI runs on next.
    (open.commits ??= []).push({ at: Date.now() });
    open.headSha = createHash("sha1").update(`${repository.toLowerCase()}#${open.number}@${open.commits.length}`).digest("hex");
  } else if (kind === "approved" || kind === "changes-requested") {
    const state = kind === "approved" ? "APPROVED" : "CHANGES_REQUESTED";
    (open.reviews ??= []).push({ reviewer: 1, login: "tess", state, submittedAt: Date.now() });
  } else if (kind === "checks-passed" || kind === "checks-failed") {
    const conclusion = kind === "checks-passed" ? "success" : "failure";
    (open.checkSuites ??= []).push({ conclusion, updatedAt: Date.now() });
    (open.workflowRuns ??= []).push({ name: "CI", conclusion, updatedAt: Date.now() });
  } else if (kind === "merged") {
    Object.assign(open, { state: "closed", merged: true });
  } else {
    return { error: `unknown change ${kind}` };
  }
  open.updatedAt = Date.now();
  return open.number;
}

const isOpen = (pull) => (pull.state ?? "open") === "open";

// The commit at a pull request's head: given, or one of its own for each pull request.
const headSha = (repo, pull) =>
  pull.headSha ?? createHash("sha1").update(`${repo.toLowerCase()}#${pull.number}`).digest("hex");

// GitHub's timestamps: seconds, no fraction.
const timestamp = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

function pullRequest(base, repo, pull) {
  const [owner] = repo.split("/");
  const object = structuredClone(PULL);
  const url = `${base}/repos/${repo}/pulls/${pull.number}`;
  Object.assign(object, {
    url,
    id: 1000 + pull.number,
    node_id: `PR_stagectl${pull.number}`,
    html_url: `https://github.com/${repo}/pull/${pull.number}`,
    number: pull.number,
    state: isOpen(pull) ? "open" : "closed",
    title: pull.title ?? `Pull request ${pull.number}`,
    updated_at: timestamp(pull.updatedAt ?? Date.UTC(2026, 0, 1)),
    closed_at: isOpen(pull) ? null : timestamp(pull.updatedAt ?? Date.UTC(2026, 0, 1)),
    merged_at: pull.merged ? timestamp(pull.updatedAt ?? Date.UTC(2026, 0, 1)) : null,
    labels: (pull.labels ?? []).map((name, i) => ({ ...LABEL, id: 2000 + i, name, default: false })),
    // Nobody asked to review: GitHub's example lists a team in a shape its own schema refuses.
    requested_reviewers: [],
    requested_teams: [],
  });
  object.head = { ...object.head, ref: pull.branch, label: `${owner}:${pull.branch}`, sha: headSha(repo, pull) };
  object.head.repo = { ...object.head.repo, full_name: repo, name: repo.split("/")[1] };
  object.base = { ...object.base, ref: "main" };
  object.base.repo = { ...object.base.repo, full_name: repo, name: repo.split("/")[1] };
  return object;
}

function review(repo, pull, item, index) {
  const object = structuredClone(REVIEW);
  Object.assign(object, {
    id: pull.number * 1000 + index,
    node_id: `PRR_stagectl${pull.number}_${index}`,
    state: item.state,
    html_url: `https://github.com/${repo}/pull/${pull.number}#pullrequestreview-${index}`,
    pull_request_url: `https://api.github.com/repos/${repo}/pulls/${pull.number}`,
    submitted_at: timestamp(item.submittedAt ?? Date.UTC(2026, 0, 1, 0, index)),
  });
  object.user = { ...object.user, id: item.reviewer, login: item.login ?? `reviewer${item.reviewer}` };
  return object;
}

// A check suite or workflow run (from GitHub's example of either) that completed on a pull
// request's head; `fields` are what only one of them has.
function completedOnHead(example, prefix, repo, pull, item, index, fields) {
  const id = pull.number * 1000 + index;
  return Object.assign(structuredClone(example), {
    id,
    node_id: `${prefix}_stagectl${pull.number}_${index}`,
    head_branch: pull.branch,
    head_sha: headSha(repo, pull),
    status: "completed",
    conclusion: item.conclusion,
    ...(item.updatedAt ? { updated_at: timestamp(item.updatedAt) } : {}),
    ...fields(id),
  });
}

// A label added to a pull request, as its issue's events list it.
function labeled(repo, pull, item, index) {
  return Object.assign(structuredClone(ISSUE_EVENT), {
    id: pull.number * 1000 + index,
    node_id: `LE_stagectl${pull.number}_${index}`,
    url: `https://api.github.com/repos/${repo}/issues/events/${pull.number * 1000 + index}`,
    event: "labeled",
    commit_id: null,
    commit_url: null,
    created_at: timestamp(item.at),
    label: { name: item.label, color: "0e8a16" },
  });
}

// A commit of a pull request, committed at `at`.
function commit(repo, pull, item, index) {
  const object = structuredClone(COMMIT);
  const sha = createHash("sha1").update(`${repo.toLowerCase()}#${pull.number}/${index}`).digest("hex");
  Object.assign(object, { sha, node_id: `C_stagectl${pull.number}_${index}` });
  object.commit = structuredClone(object.commit);
  object.commit.committer = { ...object.commit.committer, date: timestamp(item.at) };
  object.commit.author = { ...object.commit.author, date: timestamp(item.at) };
  return object;
}

const checkSuite = (repo, pull, item, index) =>
  completedOnHead(CHECK_SUITE, "CS", repo, pull, item, index, (id) => ({
    url: `https://api.github.com/repos/${repo}/check-suites/${id}`,
  }));

const workflowRun = (repo, pull, item, index) =>
  completedOnHead(WORKFLOW_RUN, "WFR", repo, pull, item, index, () => ({ name: item.name }));

function send(response, status, headers, body) {
  const text = body === undefined ? "" : JSON.stringify(body);
  response.writeHead(status, {
    ...headers,
    ...(body === undefined ? {} : { "content-type": "application/json; charset=utf-8" }),
  });
  response.end(text);
}

function rateHeaders() {
  const { limit, remaining, reset } = state.rateLimit;
  return {
    "x-ratelimit-limit": String(limit),
    "x-ratelimit-remaining": String(remaining),
    "x-ratelimit-reset": String(reset),
    "x-ratelimit-used": String(limit - remaining),
    "x-ratelimit-resource": "core",
  };
}

function error(response, status, message, headers = {}) {
  send(response, status, headers, {
    message,
    documentation_url: "https://docs.github.com/rest",
    status: String(status),
  });
}

// The caller's credential, or why not.
function authenticate(request) {
  const header = request.headers.authorization ?? "";
  const [scheme, credential] = header.split(" ");
  if (!["token", "Bearer", "bearer"].includes(scheme) || !credential) return null;
  if (state.tokens.includes(credential)) return { kind: "token" };
  const installation = installationTokens.get(credential);
  if (installation && installation.expires > Date.now()) return { kind: "installation" };
  if (state.app && verifyJwt(credential)) return { kind: "app" };
  return null;
}

// A GitHub App's JWT: RS256, issued by the app, not expired, at most 10 minutes long.
function verifyJwt(jwt) {
  const parts = jwt.split(".");
  if (parts.length !== 3) return false;
  const [header, payload, signature] = parts;
  const verifier = createVerify("RSA-SHA256");
  verifier.update(`${header}.${payload}`);
  if (!verifier.verify(state.app.publicKey, Buffer.from(signature, "base64url"))) return false;
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
  const now = Math.floor(Date.now() / 1000);
  return String(claims.iss) === String(state.app.id) && claims.exp > now && claims.exp - claims.iat <= 660;
}

function page(request, url, items) {
  const perPage = Math.min(Number(url.searchParams.get("per_page") ?? 30), 100);
  const number = Math.max(Number(url.searchParams.get("page") ?? 1), 1);
  const last = Math.max(Math.ceil(items.length / perPage), 1);
  const link = (n) => {
    const target = new URL(url);
    target.searchParams.set("per_page", String(perPage));
    target.searchParams.set("page", String(n));
    return `<${target}>`;
  };
  const links = [];
  if (number > 1) links.push(`${link(number - 1)}; rel="prev"`, `${link(1)}; rel="first"`);
  if (number < last) links.push(`${link(number + 1)}; rel="next"`, `${link(last)}; rel="last"`);
  return { items: items.slice((number - 1) * perPage, number * perPage), link: links.join(", ") };
}

// A fault queued by /_standin/faults, met instead of the answer; true when one was.
function fault(request, response, url) {
  const next = faults.shift();
  if (next === undefined) return false;
  const record = (status) =>
    requests.push({ method: request.method, path: url.pathname + url.search, status, at: Date.now(), fault: String(next) });
  if (next === "reset") {
    record(0);
    request.socket.destroy();
  } else if (next === "stall") {
    // Held open: the client's own timeout ends it.
    record(0);
  } else if (String(next).startsWith("secondary")) {
    const after = String(next).split(":")[1];
    record(403);
    error(response, 403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", {
      ...rateHeaders(),
      ...(after === undefined ? {} : { "retry-after": after }),
    });
  } else {
    record(Number(next));
    error(response, Number(next), Number(next) === 502 ? "Server Error" : "Service Unavailable");
  }
  return true;
}

function handleApi(request, response, url) {
  const base = `http://${request.headers.host}`;
  const caller = authenticate(request);
  if (!caller) return error(response, 401, "Bad credentials");

  const tokenPath = url.pathname.match(/^\/app\/installations\/(\d+)\/access_tokens$/);
  if (tokenPath && request.method === "POST") {
    if (caller.kind !== "app") return error(response, 401, "A JSON web token could not be decoded");
    if (Number(tokenPath[1]) !== Number(state.app.installationId)) return error(response, 404, "Not Found");
    const token = `ghs_${randomBytes(18).toString("hex")}`;
    const expires = Date.now() + 3600_000;
    installationTokens.set(token, { expires });
    return send(response, 201, {}, { ...structuredClone(INSTALLATION_TOKEN), token, expires_at: new Date(expires).toISOString().replace(/\.\d+Z$/, "Z") });
  }
  if (request.method !== "GET" || caller.kind === "app") return error(response, 404, "Not Found");

  const { remaining } = state.rateLimit;
  if (remaining <= 0) {
    return error(response, 403, "API rate limit exceeded for installation. If you reach out to GitHub Support for help, please include the request ID.", rateHeaders());
  }
  let body;
  let link = "";
  const pulls = url.pathname.match(/^\/repos\/([^/]+\/[^/]+)\/pulls$/);
  const reviews = url.pathname.match(/^\/repos\/([^/]+\/[^/]+)\/pulls\/(\d+)\/reviews$/);
  const suites = url.pathname.match(/^\/repos\/([^/]+\/[^/]+)\/commits\/([0-9a-f]+)\/check-suites$/);
  const runs = url.pathname.match(/^\/repos\/([^/]+\/[^/]+)\/actions\/runs$/);
  const issueEvents = url.pathname.match(/^\/repos\/([^/]+\/[^/]+)\/issues\/(\d+)\/events$/);
  const commits = url.pathname.match(/^\/repos\/([^/]+\/[^/]+)\/pulls\/(\d+)\/commits$/);
  const onHead = (repo, sha) => (pullsOf(repo) ?? []).filter((pull) => headSha(repo, pull) === sha);
  if (pulls && pullsOf(pulls[1])) {
    const wanted = url.searchParams.get("state") ?? "open";
    let all = pullsOf(pulls[1]).filter((pull) => wanted === "all" || (wanted === "open") === isOpen(pull));
    if (url.searchParams.get("sort") === "updated") {
      const newest = url.searchParams.get("direction") !== "asc";
      all = [...all].sort((a, b) => ((b.updatedAt ?? 0) - (a.updatedAt ?? 0)) * (newest ? 1 : -1));
    }
    ({ items: body, link } = page(request, url, all.map((pull) => pullRequest(base, pulls[1], pull))));
  } else if (suites && pullsOf(suites[1])) {
    const items = onHead(suites[1], suites[2]).flatMap((pull) =>
      (pull.checkSuites ?? []).map((item, i) => checkSuite(suites[1], pull, item, i)),
    );
    let page_;
    ({ items: page_, link } = page(request, url, items));
    body = { total_count: items.length, check_suites: page_ };
  } else if (runs && pullsOf(runs[1])) {
    const items = onHead(runs[1], url.searchParams.get("head_sha") ?? "").flatMap((pull) =>
      (pull.workflowRuns ?? []).map((item, i) => workflowRun(runs[1], pull, item, i)),
    );
    let page_;
    ({ items: page_, link } = page(request, url, items));
    body = { total_count: items.length, workflow_runs: page_ };
  } else if ((issueEvents || commits) && pullsOf((issueEvents ?? commits)[1])) {
    const [, repo, number] = issueEvents ?? commits;
    const pull = pullsOf(repo).find((p) => p.number === Number(number));
    if (!pull) return error(response, 404, "Not Found");
    const items = issueEvents
      ? (pull.labelEvents ?? []).map((item, i) => labeled(repo, pull, item, i))
      : (pull.commits ?? []).map((item, i) => commit(repo, pull, item, i));
    ({ items: body, link } = page(request, url, items));
  } else if (reviews && pullsOf(reviews[1])) {
    const pull = pullsOf(reviews[1]).find((p) => p.number === Number(reviews[2]));
    if (!pull) return error(response, 404, "Not Found");
    ({ items: body, link } = page(request, url, (pull.reviews ?? []).map((item, i) => review(reviews[1], pull, item, i))));
  } else {
    return error(response, 404, "Not Found");
  }
  const text = JSON.stringify(body);
  const etag = `W/"${createHash("sha256").update(text).digest("hex")}"`;
  const headers = { etag, ...(link ? { link } : {}) };
  // A conditional request answered 304 costs nothing of the rate limit.
  if (request.headers["if-none-match"] === etag) {
    return send(response, 304, { ...headers, ...rateHeaders() });
  }
  state.rateLimit.remaining -= 1;
  send(response, 200, { ...headers, ...rateHeaders() }, body);
}

const server = createServer((request, response) => {
  const url = new URL(request.url, `http://${request.headers.host}`);
  let chunks = "";
  request.on("data", (chunk) => (chunks += chunk));
  request.on("end", () => {
    if (url.pathname === "/_standin/state" && request.method === "PUT") {
      state = { ...state, ...JSON.parse(chunks) };
      installationTokens.clear();
      return send(response, 204, {});
    }
    if (url.pathname === "/_standin/requests") return send(response, 200, {}, requests);
    if (url.pathname === "/_standin/changes" && request.method === "POST") {
      const change = JSON.parse(chunks);
      const number = applyChange(change);
      if (typeof number !== "number") return send(response, 409, {}, number);
      changes.push({ at: Date.now(), ...change, number });
      return send(response, 201, {}, { number });
    }
    if (url.pathname === "/_standin/changes") return send(response, 200, {}, changes);
    if (url.pathname === "/_standin/deliveries" && request.method === "POST") {
      deliveries.push({ at: Date.now(), ...JSON.parse(chunks) });
      return send(response, 201, {}, {});
    }
    if (url.pathname === "/_standin/deliveries") return send(response, 200, {}, deliveries);
    if (url.pathname === "/_standin/faults" && request.method === "PUT") {
      faults = JSON.parse(chunks).next ?? [];
      return send(response, 204, {});
    }
    if (fault(request, response, url)) return;
    const before = response.writeHead.bind(response);
    response.writeHead = (status, headers) => {
      requests.push({ method: request.method, path: url.pathname + url.search, status, at: Date.now() });
      return before(status, headers);
    };
    handleApi(request, response, url);
  });
});

const { values } = parseArgs({ options: { port: { type: "string", default: "0" } } });
server.listen(Number(values.port), "127.0.0.1", () => {
  console.log(`GITHUB_API_URL=http://127.0.0.1:${server.address().port}`);
});
