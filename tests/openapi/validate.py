#!/usr/bin/env python3
"""Checks docs/openapi.yaml against the daemon it describes.

First the document alone: it loads as plain JSON data (YAML's implicit
booleans and dates would not), every $ref resolves, every schema is a valid
JSON Schema 2020-12, it lists exactly the operations of api.md (HEAD beside
every GET), the stable problem codes and the reason codes.

Then a tour: a database of its own on the test cluster
(CLAIMD_TEST_PGHOST, created from scratch and migrated with $CLAIMD_BIN), a
daemon of its own, and real requests covering every route and the common
error answers. Every answer must carry a status the document lists for that
path and method, in a media type it lists, with a body that validates
against its schema (Draft202012Validator, $refs resolved in the document)
and the headers it marks required; the request bodies the tour sends as
valid must validate against the request schema too. A 405 must name in
Allow exactly the methods the document gives the path; an unknown path must
answer the document's NotFound.

  validate.py [--doc docs/openapi.yaml] [--transcript FILE] [--keep-db]

Run by CTest as openapi_validate (tests/openapi/CMakeLists.txt). Needs
Debian's python3-yaml and python3-jsonschema. Exit 0 when everything
matches, 1 with one line per mismatch otherwise.
"""

import argparse
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DOC = os.path.join(HERE, "..", "..", "docs", "openapi.yaml")

REF_PATTERN = "^[A-Za-z0-9._:-]{1,64}$"
REF_RE = "[A-Za-z0-9._:-]{1,64}"

# The operations of api.md, HEAD beside every GET.
EXPECTED_OPERATIONS = {
    "/healthz": {"get", "head"},
    "/readyz": {"get", "head"},
    "/metrics": {"get", "head"},
    "/v1/policies": {"get", "head"},
    "/v1/subscriptions": {"post"},
    "/v1/subscriptions/{subscription_ref}": {"get", "head"},
    "/v1/subscriptions/{subscription_ref}/activate": {"post"},
    "/v1/subscriptions/{subscription_ref}/device": {"put"},
    "/v1/subscriptions/{subscription_ref}/cancel": {"post"},
    "/v1/subscriptions/{subscription_ref}/device-protection": {"post"},
    "/v1/subscriptions/{subscription_ref}/claims": {"get", "head"},
    "/v1/claims": {"post"},
    "/v1/claims/quote": {"post"},
    "/v1/claims/batch": {"post"},
    "/v1/claims/{claim_ref}": {"get", "head"},
    "/v1/claims/{claim_ref}/withdraw": {"post"},
}
UNAUTHENTICATED = {"/healthz", "/readyz", "/metrics"}
QUERY_PARAMETERS = {
    ("/v1/subscriptions/{subscription_ref}", "get"): {"on"},
    ("/v1/subscriptions/{subscription_ref}/claims", "get"): {"limit", "after"},
}

# Every stable code of api.md, and what the server emits besides.
PROBLEM_CODES = [
    "malformed_json", "unsupported_media_type", "invalid_field", "missing_field",
    "unknown_field", "invalid_imei", "incident_in_future", "invalid_batch", "not_found",
    "method_not_allowed", "payload_too_large", "headers_too_large", "bad_request",
    "unauthorized", "database_unavailable", "overloaded", "option_only_at_application",
    "duplicate_subscription", "option_not_enrolled", "not_activated",
    "registration_window_closed", "carrier_purchased_device", "reenrollment_forbidden",
    "imei_in_use", "device_already_registered", "option_cancelled",
    "registration_before_activation", "already_activated", "already_cancelled",
    "date_before_application", "claim_ref_reused", "claim_denied", "no_policy_in_force",
    "migrations_pending", "internal_error",
]
# policy.md's reason codes, in its order, and cap_exceeded.
REASONS = [
    "option_not_enrolled", "option_cancelled", "device_not_registered", "imei_mismatch",
    "incident_before_coverage", "natural_failure_expired", "exchange_not_offered_ios",
    "frequency_limit", "cap_exceeded",
]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# What must never appear in the daemon's stderr.
BAD_LOG = ("AddressSanitizer", "LeakSanitizer", "runtime error", "handles still open")


class Failures:
    def __init__(self):
        self.items = []

    def add(self, msg):
        self.items.append(msg)
        print("FAIL " + msg, flush=True)


FAIL = Failures()


# ----------------------------------------------------------------------------
# The document
# ----------------------------------------------------------------------------

def pointer(doc, ref):
    """The object a local "#/a/b" reference names, or None."""
    if not ref.startswith("#/"):
        return None
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def resolve(doc, obj):
    """Follows $ref until an object without one."""
    seen = set()
    while isinstance(obj, dict) and "$ref" in obj:
        ref = obj["$ref"]
        if ref in seen:
            raise ValueError("reference loop at " + ref)
        seen.add(ref)
        target = pointer(doc, ref)
        if target is None:
            raise ValueError("unresolvable $ref " + ref)
        obj = target
    return obj


def walk(node, path=""):
    """Yields (path, key, value) for every mapping entry of the tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from walk(v, "%s/%s" % (path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, "%s/%d" % (path, i))


def load_doc(path):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    for where, key, value in walk(doc):
        if not isinstance(key, str):
            FAIL.add("doc: non-string key %r under %s (quote it in YAML)" % (key, where or "/"))
    try:
        json.dumps(doc)
    except TypeError as e:
        FAIL.add("doc: a value is not JSON data (an unquoted YAML date?): %s" % e)
    return doc


def schema_validator(doc, schema):
    """A validator of schema whose "#/components/..." $refs resolve in doc."""
    root = dict(schema) if isinstance(schema, dict) else {"allOf": [schema]}
    root["components"] = doc.get("components", {})
    return Draft202012Validator(root, format_checker=FormatChecker())


def schema_errors(doc, schema, instance):
    v = schema_validator(doc, schema)
    errs = sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return ["%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(root)",
                        e.message[:300]) for e in errs]


def check_static(doc):
    """The document alone."""
    if not str(doc.get("openapi", "")).startswith("3.1."):
        FAIL.add("doc: openapi is %r, not 3.1.x" % doc.get("openapi"))
    for where, key, value in walk(doc):
        if key == "$ref" and isinstance(value, str) and pointer(doc, value) is None:
            FAIL.add("doc: %s: $ref %s does not resolve" % (where, value))
    # Every schema is a valid 2020-12 schema.
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as e:
            FAIL.add("doc: schema %s is not valid JSON Schema: %s" % (name, e.message))
    for where, key, value in walk(doc.get("paths", {}), "/paths"):
        if key == "schema" and isinstance(value, dict):
            try:
                Draft202012Validator.check_schema(value)
            except SchemaError as e:
                FAIL.add("doc: %s/schema is not valid JSON Schema: %s" % (where, e.message))

    schemes = doc.get("components", {}).get("securitySchemes", {})
    bearer = schemes.get("bearer", {})
    if bearer.get("type") != "http" or str(bearer.get("scheme", "")).lower() != "bearer":
        FAIL.add("doc: securitySchemes.bearer is not {type: http, scheme: bearer}")
    if doc.get("security") != [{"bearer": []}]:
        FAIL.add("doc: the global security requirement is not [{bearer: []}]")

    paths = doc.get("paths", {})
    if set(paths) != set(EXPECTED_OPERATIONS):
        FAIL.add("doc: paths differ from api.md: missing %s, extra %s" % (
            sorted(set(EXPECTED_OPERATIONS) - set(paths)),
            sorted(set(paths) - set(EXPECTED_OPERATIONS))))
    for path, item in paths.items():
        methods = {m for m in item if m in METHODS}
        want = EXPECTED_OPERATIONS.get(path)
        if want is not None and methods != want:
            FAIL.add("doc: %s has methods %s, api.md gives %s" % (path, sorted(methods), sorted(want)))
        for m in methods:
            check_operation(doc, path, item, m)


def check_operation(doc, path, item, method):
    op = item[method]
    where = "%s %s" % (method.upper(), path)
    security = op.get("security", doc.get("security"))
    if path in UNAUTHENTICATED and security != []:
        FAIL.add("doc: %s must have security: []" % where)
    if path not in UNAUTHENTICATED and security != [{"bearer": []}]:
        FAIL.add("doc: %s must require the bearer key" % where)
    params = [resolve(doc, p) for p in item.get("parameters", []) + op.get("parameters", [])]
    for name in re.findall(r"\{([^}]+)\}", path):
        ps = [p for p in params if p.get("in") == "path" and p.get("name") == name]
        if len(ps) != 1 or ps[0].get("required") is not True:
            FAIL.add("doc: %s: path parameter %s missing or not required" % (where, name))
        elif resolve(doc, ps[0].get("schema", {})).get("pattern") != REF_PATTERN:
            FAIL.add("doc: %s: path parameter %s lacks pattern %s" % (where, name, REF_PATTERN))
    query = {p.get("name") for p in params if p.get("in") == "query"}
    base = "get" if method == "head" else method
    if query != QUERY_PARAMETERS.get((path, base), set()):
        FAIL.add("doc: %s: query parameters %s, expected %s" % (
            where, sorted(query), sorted(QUERY_PARAMETERS.get((path, base), set()))))
    responses = op.get("responses", {})
    if not responses:
        FAIL.add("doc: %s has no responses" % where)
    for status, resp in responses.items():
        if not re.fullmatch(r"[1-5][0-9][0-9]", str(status)):
            FAIL.add("doc: %s: response key %r is not a status code" % (where, status))
        r = resolve(doc, resp)
        if not r.get("description"):
            FAIL.add("doc: %s %s: response without description" % (where, status))
        if method == "head" and r.get("content"):
            FAIL.add("doc: %s %s: a HEAD answer has no body" % (where, status))
    if method == "head":
        get = item.get("get", {}).get("responses", {})
        if set(get) != set(responses):
            FAIL.add("doc: HEAD %s lists statuses %s, GET %s" % (path, sorted(responses), sorted(get)))
    body = op.get("requestBody")
    if body is not None:
        schema = resolve(doc, resolve(doc, body).get("content", {}).get("application/json", {})
                         .get("schema", {}))
        if schema.get("additionalProperties") is not False:
            FAIL.add("doc: %s: the request schema must have additionalProperties: false" % where)
        if schema.get("properties") and not schema.get("required"):
            FAIL.add("doc: %s: the request schema names no required member" % where)


def check_enums(doc):
    schemas = doc.get("components", {}).get("schemas", {})
    codes = schemas.get("ProblemCode", {}).get("enum", [])
    if sorted(codes) != sorted(PROBLEM_CODES):
        FAIL.add("doc: ProblemCode enum: missing %s, extra %s" % (
            sorted(set(PROBLEM_CODES) - set(codes)), sorted(set(codes) - set(PROBLEM_CODES))))
    reasons = schemas.get("Reason", {}).get("enum", [])
    if reasons != REASONS:
        FAIL.add("doc: Reason enum %s is not policy.md's codes plus cap_exceeded %s" % (
            reasons, REASONS))


# ----------------------------------------------------------------------------
# Matching answers against the document
# ----------------------------------------------------------------------------

class Matcher:
    def __init__(self, doc):
        self.doc = doc
        # Literal paths first, as the server routes them ("quote" is no claim_ref).
        self.routes = []
        for path in sorted(doc["paths"], key=lambda p: p.count("{")):
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", REF_RE, re.escape(path)) + "$"
            self.routes.append((re.compile(rx), path))
        self.seen = set()

    def find(self, path):
        for rx, template in self.routes:
            if rx.match(path):
                return template
        return None

    def check(self, label, method, url, status, headers, body):
        """Checks one answer; returns the decoded body (or None)."""
        path = url.split("?", 1)[0]
        template = self.find(path)
        m = method.lower()
        if template is None:
            resp = self.doc["components"]["responses"]["NotFound"]
            if status != 404:
                FAIL.add("%s: %s %s matches no documented path but answered %d" % (
                    label, method, url, status))
                return None
            return self.check_response(label, "unknown path", resp, method, status, headers, body)
        item = self.doc["paths"][template]
        op = item.get(m)
        if op is None:
            allowed = {x.upper() for x in item if x in METHODS}
            if status != 405:
                FAIL.add("%s: %s is not documented for %s but answered %d" % (
                    label, method, template, status))
                return None
            got = {x.strip() for x in headers.get("allow", "").split(",") if x.strip()}
            if got != allowed:
                FAIL.add("%s: 405 Allow is %r, the document gives %s %s" % (
                    label, headers.get("allow"), template, sorted(allowed)))
            resp = self.doc["components"]["responses"]["MethodNotAllowed"]
            return self.check_response(label, "405 " + template, resp, method, status, headers,
                                       body)
        resp = op.get("responses", {}).get(str(status))
        self.seen.add((template, m, status))
        where = "%s %s %d" % (method, template, status)
        if resp is None:
            FAIL.add("%s: %s answered %d, which the document does not list (it lists %s)" % (
                label, "%s %s" % (method, template), status, sorted(op.get("responses", {}))))
            return None
        return self.check_response(label, where, resp, method, status, headers, body)

    def check_response(self, label, where, resp, method, status, headers, body):
        resp = resolve(self.doc, resp)
        for name, h in resp.get("headers", {}).items():
            h = resolve(self.doc, h)
            if h.get("required") and name.lower() not in headers:
                FAIL.add("%s: %s: header %s is required but absent" % (label, where, name))
            elif name.lower() in headers and "schema" in h:
                value = headers[name.lower()]
                schema = resolve(self.doc, h["schema"])
                if schema.get("type") == "integer":
                    value = int(value) if value.isdigit() else value
                for e in schema_errors(self.doc, h["schema"], value):
                    FAIL.add("%s: %s: header %s: %s" % (label, where, name, e))
        content = resp.get("content")
        if method == "HEAD" or not content:
            if body:
                FAIL.add("%s: %s: the document gives no body, got %d bytes" % (
                    label, where, len(body)))
            return None
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in content:
            FAIL.add("%s: %s: Content-Type %r is not one of %s" % (
                label, where, ctype, sorted(content)))
            return None
        schema = content[ctype].get("schema", {})
        try:
            text = body.decode("utf-8")
            value = json.loads(text) if ctype.endswith("json") else text
        except (UnicodeDecodeError, ValueError) as e:
            FAIL.add("%s: %s: body is not %s: %s" % (label, where, ctype, e))
            return None
        for e in schema_errors(self.doc, schema, value):
            FAIL.add("%s: %s: body does not match the schema: %s" % (label, where, e))
        return value

    def request_errors(self, method, url, body):
        """Schema errors of a JSON request body against the operation's request schema."""
        template = self.find(url.split("?", 1)[0])
        op = self.doc["paths"].get(template, {}).get(method.lower(), {}) if template else {}
        rb = resolve(self.doc, op.get("requestBody", {}))
        media = rb.get("content", {}).get("application/json")
        if media is None:
            return ["the document gives %s %s no JSON request body" % (method, template)]
        return schema_errors(self.doc, media.get("schema", {}), body)


# ----------------------------------------------------------------------------
# The database and the daemon
# ----------------------------------------------------------------------------

def psql_bin():
    for p in ("/usr/lib/postgresql/15/bin/psql", shutil.which("psql")):
        if p and os.access(p, os.X_OK):
            return p
    sys.exit("validate.py: psql not found")


def admin_sql(pghost, sql):
    subprocess.run([psql_bin(), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                    "host=%s user=postgres dbname=postgres" % pghost, "-c", sql],
                   check=True, stdout=subprocess.DEVNULL)


def run(argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit("validate.py: %s exited %d: %s" % (" ".join(argv[:2]), r.returncode, r.stderr))
    return r.stdout


class Daemon:
    def __init__(self, binary, url):
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [binary, "serve", "--database-url", url, "--listen", "127.0.0.1:0", "--threads", "2"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log)
        self.port = self.read_port()

    def read_port(self):
        deadline = time.monotonic() + 15
        line = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if not ready:
                if self.proc.poll() is not None:
                    break
                continue
            c = os.read(self.proc.stdout.fileno(), 1)
            if not c:
                break
            line += c
            if c == b"\n":
                m = re.match(rb"listening on port (\d+)", line)
                if m:
                    return int(m.group(1))
                line = b""
        self.proc.kill()
        sys.exit("validate.py: claimd serve printed no port; stderr:\n" + self.log_text())

    def log_text(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                FAIL.add("daemon: no exit within 15 s of SIGTERM")
        if self.proc.returncode != 0:
            FAIL.add("daemon: exit status %s after SIGTERM" % self.proc.returncode)
        log = self.log_text()
        for bad in BAD_LOG:
            if bad in log:
                FAIL.add("daemon: stderr holds %r:\n%s" % (bad, log[-4000:]))
                break


# ----------------------------------------------------------------------------
# The tour
# ----------------------------------------------------------------------------

class Client:
    def __init__(self, port, matcher, transcript):
        self.port = port
        self.matcher = matcher
        self.conn = None
        self.transcript = transcript
        self.n = 0

    def connection(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        return self.conn

    def send(self, method, url, body=None, key=None, ctype="application/json", raw_body=None,
             headers=None):
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = "Bearer " + key
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None and ctype is not None:
            h["Content-Type"] = ctype
        conn = self.connection()
        try:
            conn.request(method, url, body=data, headers=h)
            r = conn.getresponse()
            payload = r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if r.will_close:
            conn.close()
            self.conn = None
        return r.status, hdrs, payload

    def call(self, method, url, body=None, expect=None, code=None, key=None, req=None, **kw):
        """One request of the tour, checked; returns the decoded answer.

        req: "valid" (default for a JSON body unless expect is 400) or
        "invalid": what the document's request schema must say of body;
        None skips that check.
        """
        self.n += 1
        label = "#%d %s %s" % (self.n, method, url)
        before = len(FAIL.items)
        if body is not None:
            want = req if req is not None else ("invalid" if expect == 400 else "valid")
            if want != "skip":
                errs = self.matcher.request_errors(method, url, body)
                if want == "valid" and errs:
                    FAIL.add("%s: the request the tour sends as valid fails the document's "
                             "request schema: %s" % (label, errs[0]))
                if want == "invalid" and not errs:
                    FAIL.add("%s: the request the server refuses passes the document's request "
                             "schema" % label)
        status, headers, payload = self.send(method, url, body=body, key=key, **kw)
        value = self.matcher.check(label, method, url, status, headers, payload)
        if expect is not None and status != expect:
            FAIL.add("%s: expected %d, got %d: %s" % (label, expect, status, payload[:300]))
        if code is not None:
            got = value.get("code") if isinstance(value, dict) else None
            if got != code:
                FAIL.add("%s: expected code %s, got %s" % (label, code, got))
        print("%-4s %-6s %-60s %d" % ("ok" if len(FAIL.items) == before else "bad", method,
                                      url[:60], status), flush=True)
        if self.transcript is not None:
            self.transcript.append({"method": method, "url": url, "body": body,
                                    "status": status, "answer": value if value is not None
                                    else payload.decode("utf-8", "replace")})
        return value

    def raw(self, data, expect, code):
        """A request the HTTP client library would not send as it is."""
        self.n += 1
        label = "#%d raw %r" % (self.n, data[:40])
        before = len(FAIL.items)
        s = socket.create_connection(("127.0.0.1", self.port), timeout=15)
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            head, sep, rest = out.partition(b"\r\n\r\n")
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if sep and m and len(rest) >= int(m.group(1)):
                break
        s.close()
        head, _, body = out.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        first = data.split(b"\r\n", 1)[0].decode("latin-1").split()
        value = self.matcher.check(label, first[0], first[1], status, headers, body)
        if status != expect:
            FAIL.add("%s: expected %d, got %d" % (label, expect, status))
        elif not isinstance(value, dict) or value.get("code") != code:
            FAIL.add("%s: expected code %s" % (label, code))
        print("%-4s raw    %-60s %d" % ("ok" if len(FAIL.items) == before else "bad",
                                      first[0] + " " + first[1], status), flush=True)


def claim(ref, incident, cause, remedy, estimate=None, damage=None, sub="L-1001",
          imei="356938035643809"):
    c = {"claim_ref": ref, "subscription_ref": sub, "imei": imei, "incident_on": incident,
         "cause": cause}
    if damage is not None:
        c["damage"] = damage
    c["remedy"] = remedy
    if estimate is not None:
        c["repair_estimate"] = estimate
    return c


PIXEL = {"imei": "356938035643809", "os": "android", "model": "Pixel 6",
         "release_date": "2022-01-20", "purchased_from": "other", "registered_on": "2024-04-10"}


def tour(c, key, other_key):
    # Operations: no key needed.
    c.call("GET", "/healthz", expect=200)
    c.call("HEAD", "/healthz", expect=200)
    c.call("GET", "/readyz", expect=200)
    c.call("GET", "/v1/policies", key=key, expect=200)
    c.call("HEAD", "/v1/policies", key=key, expect=200)

    # Subscriptions.
    l1001 = {"subscription_ref": "L-1001", "applied_on": "2024-04-01",
             "activated_on": "2024-04-03", "device_protection": True}
    c.call("POST", "/v1/subscriptions", l1001, key=key, expect=201)
    c.call("POST", "/v1/subscriptions", l1001, key=key, expect=200)
    c.call("POST", "/v1/subscriptions", dict(l1001, applied_on="2024-04-02"), key=key,
           expect=409, code="duplicate_subscription")
    c.call("POST", "/v1/subscriptions",
           {"subscription_ref": "L-9", "applied_on": "2024-04-01", "activated_on": "2024-03-31",
            "device_protection": True}, key=key, expect=422, code="date_before_application")
    c.call("POST", "/v1/subscriptions",
           {"subscription_ref": "L-9", "applied_on": "2024-13-01", "device_protection": "yes",
            "colour": "red"}, key=key, expect=400, code="invalid_field")
    c.call("POST", "/v1/subscriptions", {"subscription_ref": "L-2", "applied_on": "2024-04-01",
                                         "device_protection": True}, key=key, expect=201)
    c.call("PUT", "/v1/subscriptions/L-2/device", dict(PIXEL, imei="490154203237518"), key=key,
           expect=422, code="not_activated")
    c.call("POST", "/v1/subscriptions/L-2/activate", {"activated_on": "2024-04-03"}, key=key,
           expect=200)
    c.call("POST", "/v1/subscriptions/L-2/activate", {"activated_on": "2024-04-03"}, key=key,
           expect=200)
    c.call("POST", "/v1/subscriptions/L-2/activate", {"activated_on": "2024-04-04"}, key=key,
           expect=409, code="already_activated")
    c.call("POST", "/v1/subscriptions/L-1001/device-protection", key=key, expect=409,
           code="option_only_at_application")
    c.call("PUT", "/v1/subscriptions/L-1001/device", PIXEL, key=key, expect=200)
    c.call("PUT", "/v1/subscriptions/L-1001/device", PIXEL, key=key, expect=200)
    c.call("PUT", "/v1/subscriptions/L-1001/device", dict(PIXEL, model="Pixel 7"), key=key,
           expect=409, code="device_already_registered")
    c.call("PUT", "/v1/subscriptions/L-2/device", PIXEL, key=key, expect=409, code="imei_in_use")
    c.call("PUT", "/v1/subscriptions/L-2/device",
           dict(PIXEL, imei="490154203237518", registered_on="2024-04-18"), key=key, expect=422,
           code="registration_window_closed")
    c.call("PUT", "/v1/subscriptions/L-2/device", dict(PIXEL, imei="12345"), key=key,
           expect=400, code="invalid_imei")
    c.call("PUT", "/v1/subscriptions/L-404/device", PIXEL, key=key, expect=404, code="not_found")
    c.call("GET", "/v1/subscriptions/L-1001?on=2024-05-01", key=key, expect=200)
    c.call("HEAD", "/v1/subscriptions/L-1001?on=2024-05-01", key=key, expect=200)
    c.call("GET", "/v1/subscriptions/L-1001?on=2024-13-01", key=key, expect=400,
           code="invalid_field")
    c.call("GET", "/v1/subscriptions/L-1001?colour=red", key=key, expect=400,
           code="unknown_field")
    c.call("GET", "/v1/subscriptions/L-1001?on=2019-12-31", key=key, expect=422,
           code="no_policy_in_force")
    c.call("GET", "/v1/subscriptions/L-404", key=key, expect=404, code="not_found")

    # Claims: policy.md's worked examples 1-3, replay, reuse, a denial.
    c1 = claim("C-1", "2024-05-01", "natural_failure", "repair", 30000)
    c.call("POST", "/v1/claims", c1, key=key, expect=201)
    c.call("POST", "/v1/claims", dict(reversed(list(c1.items()))), key=key, expect=200)
    c.call("POST", "/v1/claims", dict(c1, repair_estimate=31000), key=key, expect=409,
           code="claim_ref_reused")
    c2 = claim("C-2", "2024-06-01", "physical_damage", "repair", 62000, damage="screen")
    c.call("POST", "/v1/claims", c2, key=key, expect=201)
    c.call("POST", "/v1/claims", claim("C-3", "2024-07-01", "physical_damage", "exchange",
                                       damage="screen"), key=key, expect=201)
    c.call("POST", "/v1/claims", claim("C-MM", "2024-07-02", "natural_failure", "exchange",
                                       imei="490154203237518"), key=key, expect=201)
    c.call("POST", "/v1/claims", claim("C-X", "2024-07-01", "natural_failure", "repair", 100,
                                       sub="L-404"), key=key, expect=404, code="not_found")
    c.call("POST", "/v1/claims", claim("C-OLD", "2019-12-31", "natural_failure", "repair", 100),
           key=key, expect=422, code="no_policy_in_force")
    c.call("POST", "/v1/claims", claim("C-F", "2999-01-01", "natural_failure", "repair", 100),
           key=key, expect=400, code="incident_in_future", req="skip")
    c.call("POST", "/v1/claims", claim("C-E", "2024-07-01", "natural_failure", "exchange", 100,
                                       damage="screen"), key=key, expect=400, code="invalid_field")
    c.call("POST", "/v1/claims", claim("quote", "2024-07-01", "natural_failure", "repair", 100),
           key=key, expect=400, code="invalid_field")

    # Quote (example 5): nothing recorded.
    q = claim("ignored", "2025-04-01", "physical_damage", "exchange", damage="water")
    c.call("POST", "/v1/claims/quote", q, key=key, expect=200)
    c.call("POST", "/v1/claims/quote", dict(q, subscription_ref="L-404"), key=key, expect=404,
           code="not_found")

    # A batch: a decision, a claim with invalid members, an unknown subscription, a replay.
    bad = claim("C-5", "2025-05-01", "natural_failure", "repair", imei="123")
    c.call("POST", "/v1/claims/batch",
           {"claims": [claim("C-4", "2025-04-01", "physical_damage", "exchange", damage="water"),
                       bad,
                       claim("C-6", "2025-05-01", "natural_failure", "repair", 1000, sub="L-404"),
                       c1]}, key=key, expect=200, req="skip")
    c.call("POST", "/v1/claims/batch", {"claims": []}, key=key, expect=400, code="invalid_batch")

    # History, page by page.
    url, seen = "/v1/subscriptions/L-1001/claims?limit=2", []
    while url is not None:
        page = c.call("GET", url, key=key, expect=200)
        if not isinstance(page, dict):
            break
        seen += [x["claim_ref"] for x in page.get("claims", [])]
        nxt = page.get("next_after")
        url = None if nxt is None else "/v1/subscriptions/L-1001/claims?limit=2&after=" + nxt
    if seen != ["C-4", "C-MM", "C-3", "C-2", "C-1"]:
        FAIL.add("history: claims %s, expected newest first C-4 C-MM C-3 C-2 C-1" % seen)
    c.call("HEAD", "/v1/subscriptions/L-1001/claims", key=key, expect=200)
    c.call("GET", "/v1/subscriptions/L-1001/claims?after=abc", key=key, expect=400,
           code="invalid_field")
    c.call("GET", "/v1/subscriptions/L-1001/claims?limit=101", key=key, expect=400,
           code="invalid_field")

    # Withdrawal (example 8), the recorded claim, a denied claim.
    c.call("POST", "/v1/claims/C-2/withdraw", key=key, expect=200)
    c.call("POST", "/v1/claims/C-2/withdraw", {}, key=key, expect=200)
    c.call("POST", "/v1/claims/C-2/withdraw", {"reason": "x"}, key=key, expect=400,
           code="unknown_field")
    c.call("GET", "/v1/claims/C-2", key=key, expect=200)
    c.call("HEAD", "/v1/claims/C-2", key=key, expect=200)
    c.call("POST", "/v1/claims", c2, key=key, expect=200)
    c.call("POST", "/v1/claims/C-3/withdraw", key=key, expect=409, code="claim_denied")
    c.call("POST", "/v1/claims", claim("C-7", "2024-07-01", "physical_damage", "repair", 10000,
                                       damage="other"), key=key, expect=201)
    c.call("GET", "/v1/claims/C-404", key=key, expect=404, code="not_found")
    c.call("GET", "/v1/claims/C-1", key=other_key, expect=404, code="not_found")

    # Cancellation.
    c.call("POST", "/v1/subscriptions/L-2/cancel", {"cancelled_on": "2024-03-01"}, key=key,
           expect=422, code="date_before_application")
    c.call("POST", "/v1/subscriptions/L-2/cancel", {"cancelled_on": "2024-06-01"}, key=key,
           expect=200)
    c.call("POST", "/v1/subscriptions/L-2/cancel", {"cancelled_on": "2024-06-01"}, key=key,
           expect=200)
    c.call("POST", "/v1/subscriptions/L-2/cancel", {"cancelled_on": "2024-06-02"}, key=key,
           expect=409, code="already_cancelled")

    # Protocol and key errors.
    c.call("GET", "/v1/policies", expect=401, code="unauthorized")
    c.call("GET", "/v1/policies", key="ck_not_a_key", expect=401, code="unauthorized")
    c.call("GET", "/v1/policies", headers={"Authorization": "Basic " + key}, expect=401,
           code="unauthorized")
    c.call("HEAD", "/v1/policies", expect=401)
    c.call("GET", "/v1/nothing", key=key, expect=404, code="not_found")
    c.call("GET", "/v1/subscriptions/bad%20ref", key=key, expect=404, code="not_found")
    c.call("DELETE", "/v1/claims/C-1", key=key, expect=405, code="method_not_allowed")
    c.call("GET", "/v1/claims/quote", key=key, expect=405, code="method_not_allowed")
    c.call("GET", "/v1/claims/batch", key=key, expect=405, code="method_not_allowed")
    c.call("PUT", "/v1/subscriptions", key=key, expect=405, code="method_not_allowed")
    c.call("POST", "/healthz", expect=405, code="method_not_allowed")
    c.call("POST", "/v1/claims", raw_body=json.dumps(c1).encode(), ctype="text/plain", key=key,
           expect=415, code="unsupported_media_type")
    c.call("POST", "/v1/claims", raw_body=b'{"claim_ref": ', key=key, expect=400,
           code="malformed_json")
    c.call("POST", "/v1/claims", raw_body=b"[1]", key=key, expect=400, code="malformed_json")
    c.call("POST", "/v1/claims", {}, key=key, expect=400, code="missing_field")
    auth = b"Authorization: Bearer " + key.encode() + b"\r\n"
    c.raw(b"POST /v1/claims HTTP/1.1\r\nHost: t\r\n" + auth +
          b"Content-Type: application/json\r\nContent-Length: 70000\r\n\r\n", 413,
          "payload_too_large")
    c.raw(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431,
          "headers_too_large")
    c.raw(b"POST /v1/claims HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
          b"Transfer-Encoding: chunked\r\n\r\n{}", 400, "bad_request")

    # Metrics last, with the tour's traffic in them.
    c.call("GET", "/metrics", expect=200)
    c.call("HEAD", "/metrics", expect=200)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--doc", default=DEFAULT_DOC)
    ap.add_argument("--transcript", help="write the tour's requests and answers (JSON) here")
    ap.add_argument("--keep-db", action="store_true", help="do not drop the database")
    args = ap.parse_args()

    doc = load_doc(args.doc)
    check_static(doc)
    check_enums(doc)
    print("document: %d paths checked" % len(doc.get("paths", {})), flush=True)
    if FAIL.items:
        print("validate.py: the document has %d problem(s); no tour" % len(FAIL.items))
        return 1

    pghost = os.environ.get("CLAIMD_TEST_PGHOST")
    binary = os.environ.get("CLAIMD_BIN")
    if not pghost or not binary:
        sys.exit("validate.py: CLAIMD_TEST_PGHOST and CLAIMD_BIN must be set (run it with ctest)")
    db = "openapi_%d" % os.getpid()
    owner = "postgresql:///%s?host=%s&user=claimd_owner" % (db, pghost)
    app = "postgresql:///%s?host=%s&user=claimd_app" % (db, pghost)
    admin_sql(pghost, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
    admin_sql(pghost, "CREATE DATABASE %s OWNER claimd_owner" % db)
    daemon = None
    transcript = [] if args.transcript else None
    try:
        run([binary, "migrate", "--database-url", owner])
        key = run([binary, "keys", "create", "--tenant", "openapi-a", "--database-url",
                   owner]).strip()
        other = run([binary, "keys", "create", "--tenant", "openapi-b", "--database-url",
                     owner]).strip()
        daemon = Daemon(binary, app)
        client = Client(daemon.port, Matcher(doc), transcript)
        tour(client, key, other)
        print("tour: %d requests" % client.n, flush=True)
    finally:
        if daemon is not None:
            daemon.stop()
        if not args.keep_db:
            admin_sql(pghost, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        if transcript is not None:
            with open(args.transcript, "w", encoding="utf-8") as f:
                json.dump(transcript, f, indent=1)
    if FAIL.items:
        print("validate.py: %d mismatch(es) between docs/openapi.yaml and the daemon"
              % len(FAIL.items))
        return 1
    print("validate.py: every answer matches docs/openapi.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
