#!/usr/bin/env python3
"""bin/fuzz's calls to a server before schemathesis meets it, each one failing loudly
(exit 1 with what the server answered). Only the standard library.

    prepare.py team BASE EMAIL PASSWORD TEAM MEMBER_EMAIL...
        signs in as EMAIL (an admin) and puts each member in TEAM
    prepare.py user-id BASE EMAIL PASSWORD WHO
        signs in as EMAIL (an admin) and prints the id of the user WHO (an email)
    prepare.py move BASE EMAIL PASSWORD FROM_EMAIL TO_EMAIL
        signs in as EMAIL (an admin) and moves FROM_EMAIL's accounts to TO_EMAIL
    prepare.py dictionaries BASE EMAIL PASSWORD
        signs in as EMAIL (an admin) and prints, as schemathesis dictionaries (TOML), the
        ids of the accounts, payments, promises and users and the keys of the fields
    prepare.py register BASE EMAIL NAME PASSWORD
        registers a user the way anyone may (POST /api/v1/auth/register)
    prepare.py sign-in BASE EMAIL PASSWORD ROLE
        signs in; fails unless it gives an access token for a user of ROLE
"""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request


def call(base, method, path, body=None, token=None, want=200):
    request = urllib.request.Request(base + path, method=method)
    request.add_header("Accept", "application/json")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, data, timeout=30) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode(errors="replace")
    except OSError as error:
        sys.exit(f"{method} {base}{path}: no answer ({error})")
    if status != want:
        sys.exit(f"{method} {base}{path} answered {status}, not {want}: {text[:500]}")
    return json.loads(text) if text else None


def sign_in(base, email, password):
    return call(base, "POST", "/api/v1/auth/login", {"email": email, "password": password})


def every(base, path, token):
    """Every item of a list, page after page."""
    items, cursor = [], None
    while True:
        page = call(base, "GET", path + "?page_size=200" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else ""), token=token)
        items += page["data"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def user_ids(base, token):
    """{email: id} of every user, as an admin reads them."""
    return {user["email"]: user["id"] for user in every(base, "/api/v1/users", token)}


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    command, args = argv[1], argv[2:]
    if command == "user-id" and len(args) == 4:
        base, email, password, who = args
        users = user_ids(base, sign_in(base, email, password)["access_token"])
        if who not in users:
            sys.exit(f"{base} has no user {who}")
        print(users[who])
    elif command == "team" and len(args) >= 5:
        base, email, password, team, members = args[0], args[1], args[2], args[3], args[4:]
        token = sign_in(base, email, password)["access_token"]
        users = user_ids(base, token)
        for member in members:
            if member not in users:
                sys.exit(f"{base} has no user {member} to put in team {team}")
            call(base, "PATCH", f"/api/v1/users/{users[member]}", {"team": team}, token=token)
    elif command == "move" and len(args) == 5:
        base, email, password, source, to = args
        token = sign_in(base, email, password)["access_token"]
        users = user_ids(base, token)
        for who in (source, to):
            if who not in users:
                sys.exit(f"{base} has no user {who}")
        call(base, "POST", f"/api/v1/users/{users[source]}/accounts/move", {"to": users[to]}, token=token)
    elif command == "dictionaries" and len(args) == 3:
        base, email, password = args
        token = sign_in(base, email, password)["access_token"]
        accounts = [account["id"] for account in every(base, "/api/v1/accounts", token)]
        found = {
            "accounts": accounts,
            "payments": [payment["id"] for payment in every(base, "/api/v1/payments", token)],
            "promises": [p["id"] for a in accounts for p in every(base, f"/api/v1/accounts/{a}/promises", token)],
            "users": sorted(user_ids(base, token).values()),
            "fields": [field["key"] for field in every(base, "/api/v1/fields", token)],
        }
        for name, values in found.items():
            if not values:
                sys.exit(f"{base} has no {name} to fuzz with")
            print(f"[dictionaries.{name}]\nvalues = {json.dumps(values)}\n")
    elif command == "register" and len(args) == 4:
        base, email, name, password = args
        user = call(base, "POST", "/api/v1/auth/register", {"email": email, "name": name, "password": password}, want=201)
        if user["role"] != "pending":
            sys.exit(f"registered {email} as {user['role']}, not pending")
    elif command == "sign-in" and len(args) == 4:
        base, email, password, role = args
        answer = sign_in(base, email, password)
        if answer["user"]["role"] != role:
            sys.exit(f"{email} signed in as {answer['user']['role']}, not {role}")
        if not answer.get("access_token"):
            sys.exit(f"{email}: the sign-in gave no access token")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
