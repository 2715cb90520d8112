#!/bin/sh
# Imports the data views and the collections dashboard into Kibana (compose's
# kibana-setup runs it). Kibana's saved-objects import answers 200 even when it refused
# some objects: `"success":false` with an `errors` list (a conflict, a missing reference,
# an unsupported type), so the HTTP status alone would pass a half-done import. This
# fails on it, printing Kibana's answer.
#
#   KIBANA_URL       Kibana's base URL (default http://kibana:5601)
#   ELASTIC_PASSWORD the `elastic` user's password
#   OBJECTS          the file to import (default: saved-objects.ndjson beside this script)
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
answer="$(curl -fsS -u "elastic:${ELASTIC_PASSWORD:?set ELASTIC_PASSWORD}" -H 'kbn-xsrf: true' \
    -F "file=@${OBJECTS:-$here/saved-objects.ndjson}" \
    "${KIBANA_URL:-http://kibana:5601}/api/saved_objects/_import?overwrite=true")"
printf '%s\n' "$answer"
if ! printf '%s' "$answer" | grep -Eq '"success" *: *true'; then
    echo "Kibana did not import every saved object (its errors are above)" >&2
    exit 1
fi
