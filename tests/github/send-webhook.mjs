#!/usr/bin/env node
// Sends one webhook as GitHub sends it: the payload read from stdin, POSTed as JSON with GitHub's
// headers, signed with the shared secret by @octokit/webhooks-methods (X-Hub-Signature-256).
// Prints the HTTP status and the answer's body on one line; exits 0 on a 2xx, 1 on another
// status, 2 on bad arguments, 3 when no connection could be made.
//
//   send-webhook.mjs --url URL --secret-file FILE --event NAME --delivery ID [--signature KIND] < payload.json
//
// --signature, to test what the receiver accepts:
//   sha256     what GitHub sends with a secret: X-Hub-Signature-256 and the legacy SHA-1
//              X-Hub-Signature (default)
//   sha1-only  only the legacy X-Hub-Signature, correctly made
//   wrong      X-Hub-Signature-256 made with another secret
//   none       no signature header
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { sign } from "@octokit/webhooks-methods";

function usage(message) {
  console.error(`send-webhook: ${message}`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      url: { type: "string" },
      "secret-file": { type: "string" },
      event: { type: "string" },
      delivery: { type: "string" },
      signature: { type: "string", default: "sha256" },
    },
  }));
} catch (error) {
  usage(error.message);
}
for (const required of ["url", "secret-file", "event", "delivery"]) {
  if (!values[required]) usage(`--${required} is required`);
}

// GitHub signs the bytes it sends; send exactly the bytes read.
const payload = readFileSync(0, "utf8");
const secret = readFileSync(values["secret-file"], "utf8").replace(/\n$/, "");
const sha1 = (key) => `sha1=${createHmac("sha1", key).update(payload).digest("hex")}`;

const headers = {
  "Content-Type": "application/json",
  "User-Agent": "GitHub-Hookshot/stagectl-tests",
  "X-GitHub-Event": values.event,
  "X-GitHub-Delivery": values.delivery,
  "X-GitHub-Hook-ID": "1",
};
switch (values.signature) {
  case "sha256":
    headers["X-Hub-Signature-256"] = await sign(secret, payload);
    headers["X-Hub-Signature"] = sha1(secret);
    break;
  case "sha1-only":
    headers["X-Hub-Signature"] = sha1(secret);
    break;
  case "wrong":
    headers["X-Hub-Signature-256"] = await sign(`${secret}-not`, payload);
    break;
  case "none":
    break;
  default:
    usage(`--signature is sha256, sha1-only, wrong or none, not ${values.signature}`);
}

let response;
try {
  response = await fetch(values.url, { method: "POST", headers, body: payload });
} catch (error) {
  console.log(`no answer from ${values.url}: ${error.cause?.code ?? error.message}`);
  process.exit(3);
}
const body = (await response.text()).replace(/\s+/g, " ").trim();
console.log(`${response.status} ${body}`);
process.exit(response.ok ? 0 : 1);
