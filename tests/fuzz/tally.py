#!/usr/bin/env python3
"""What each role's fuzzing reached: counts, from schemathesis's own record of every
request it sent (its NDJSON report), the operations that answered a role 2xx, and holds
them to tests/fuzz/expected.txt both ways. Used by bin/fuzz:

    tally.py DESCRIPTION.json EXPECTED.txt ROLE=REPORT.ndjson ...

and beside each NDJSON report, its run's JSON report (REPORT.json): the cases generated
and the operations tested, for the summary line.

Fails (exit 1) when the list and the description name different operations, when an
operation a role is listed for answered it no 2xx, or when an operation answered 2xx to
a role it does not list (a privilege the permission table does not give, or a list gone
stale). Only the standard library: it runs on the machine's python3.
"""

import base64
import json
import sys
from collections import Counter, defaultdict

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def operations(description):
    """{(METHOD, path): operationId} for every described operation."""
    found = {}
    for path, item in description["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                found[(method.upper(), path)] = operation["operationId"]
    return found


def expectations(path, roles):
    """{operationId: (required roles, allowed roles, reason)}; errors for bad lines."""
    expected, errors = {}, []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            text, _, reason = line.partition("#")
            words = text.split()
            if not words:
                continue
            where = f"{path}:{number}"
            name, listed = words[0], words[1:]
            required, allowed = set(), set()
            for word in listed:
                role = word.rstrip("?")
                if word == "-":
                    continue
                if role not in roles:
                    errors.append(f"{where}: {word!r} is not a fuzzed role ({', '.join(roles)})")
                (allowed if word.endswith("?") else required).add(role)
            if not listed:
                errors.append(f"{where}: {name} names no role (write - for none, with the reason)")
            if (listed == ["-"] or allowed) and not reason.strip():
                errors.append(f"{where}: {name}: a '-' or 'role?' needs the reason after '#'")
            if name in expected:
                errors.append(f"{where}: {name} is listed twice")
            expected[name] = (required, allowed, reason.strip())
    return expected, errors


def recorded(report):
    """Every request schemathesis sent and what came back, from its NDJSON report:
    (METHOD, path template, status or None, request) per interaction."""
    with open(report, encoding="utf-8") as events:
        for line in events:
            if not line.startswith('{"ScenarioFinished"'):
                continue
            recorder = json.loads(line)["ScenarioFinished"]["recorder"]
            cases = recorder.get("cases", {})
            for case_id, interaction in recorder.get("interactions", {}).items():
                case = cases.get(case_id, {}).get("value", {})
                response = interaction.get("response") or {}
                yield (
                    str(case.get("method", "")).upper(),
                    case.get("path", ""),
                    response.get("status_code"),
                    interaction.get("request", {}),
                )


def summary(report):
    """The operations tested and cases generated, from the run's JSON report."""
    path = report.removesuffix(".ndjson") + ".json"
    try:
        with open(path, encoding="utf-8") as file:
            run = json.load(file)
    except OSError:
        return {"tested": "?", "cases": 0, "sign_ins": "?"}
    return {
        "tested": (run.get("operations") or {}).get("tested", "?"),
        "cases": run["test_cases"]["generated"],
        "sign_ins": (run.get("auth") or {}).get("reauth_count", 0),
    }


def text(body):
    """A recorded body as text (the report keeps bytes as base64)."""
    if isinstance(body, dict) and "$base64" in body:
        return base64.b64decode(body["$base64"]).decode("utf-8", "replace")
    return body if isinstance(body, str) else json.dumps(body)


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    with open(argv[1], encoding="utf-8") as file:
        described = operations(json.load(file))
    reports = dict(arg.split("=", 1) for arg in argv[3:])
    roles = list(reports)
    expected, problems = expectations(argv[2], roles)

    names = set(described.values())
    for name in sorted(names - set(expected)):
        problems.append(f"{name} is described but not in {argv[2]}: list the roles it answers 2xx")
    for name in sorted(set(expected) - names):
        problems.append(f"{argv[2]} lists {name}, which the description does not have")

    lines = []
    for role, report in reports.items():
        statuses = defaultdict(Counter)
        first_2xx = {}
        requests = 0
        for method, path, status, request in recorded(report):
            requests += 1
            name = described.get((method, path))
            if name is None:  # a method the path does not have (unsupported_method)
                continue
            statuses[name][status] += 1
            if status is not None and 200 <= status < 300:
                first_2xx.setdefault(name, request)
        answered = set(first_2xx)
        required = {n for n, (req, _, _) in expected.items() if role in req and n in names}
        allowed = {n for n, (req, opt, _) in expected.items() if role in req | opt and n in names}
        for name in sorted(required - answered):
            seen = ", ".join(f"{s}x{c}" for s, c in sorted(statuses[name].items(), key=str)) or "never sent"
            problems.append(f"{role}: {name} is listed for {role} but answered no 2xx ({seen})")
        for name in sorted(answered - allowed):
            request = first_2xx[name]
            body = request.get("body")
            seen = ", ".join(f"{s}x{c}" for s, c in sorted(statuses[name].items(), key=str))
            problems.append(
                f"{role}: {name} answered 2xx ({seen}) though {argv[2]} does not list {role} for it, e.g."
                f" {request.get('method')} {request.get('uri')}" + (f" with {text(body)[:300]!r}" if body else "")
            )
        run = summary(report)
        optional = allowed - required
        lines.append(
            f"{role:<8} {len(answered):>3} operations answered 2xx: {len(answered & required)} of {len(required)} required,"
            f" {len(answered & optional)} of {len(optional)} optional; {run['tested']} of {len(names)} tested,"
            f" {run['cases']:,} cases, {requests:,} requests, {run['sign_ins']} sign-ins again after a 401"
        )
    print("\n".join(lines))
    if problems:
        print("\n".join(["", "what the roles reached does not match " + argv[2] + ":"] + ["  " + p for p in problems]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
