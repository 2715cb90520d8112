"""Writes saved-objects.ndjson: the data views and the collections overview dashboard.

Kibana stores visualisation state and dashboard panels as JSON strings inside JSON;
this script keeps them readable. Run it after editing, then commit both files.
"""
import json

VERSION = "8.19.0"


def data_view(id_, name, labels, time_field=None):
    # The reporting aliases leave out tombstones (and deleted accounts); derived.* holds
    # the app's sort and search keys, not facts, so Discover hides it.
    attributes = {
        "title": id_,
        "name": name,
        "sourceFilters": json.dumps([{"value": "derived.*"}]),
        "fieldAttrs": json.dumps({field: {"customLabel": label} for field, label in labels.items()}),
    }
    if time_field:
        attributes["timeFieldName"] = time_field
    return {
        "type": "index-pattern",
        "id": id_,
        "attributes": attributes,
        "references": [],
        "typeMigrationVersion": "8.0.0",
        "coreMigrationVersion": VERSION,
    }


def visualization(id_, title, view, vis_type, aggs, query="", params=None):
    state = {"title": title, "type": vis_type, "params": params or {}, "aggs": aggs}
    search = {
        "query": {"query": query, "language": "kuery"},
        "filter": [],
        "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index",
    }
    return {
        "type": "visualization",
        "id": id_,
        "attributes": {
            "title": title,
            "visState": json.dumps(state),
            "uiStateJSON": "{}",
            "description": "",
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(search)},
        },
        "references": [
            {"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern", "id": view}
        ],
        "typeMigrationVersion": "8.5.0",
        "coreMigrationVersion": VERSION,
    }


def agg(id_, type_, schema, **params):
    return {"id": id_, "enabled": True, "type": type_, "schema": schema, "params": params}


OPEN = "not status:(paid or settled or closed) and not deleted_at:*"
# Amounts are in each account's currency; a sum adds them as they are.
MIXED = "Sum of %s (each in its account's currency, not converted)"
ACCOUNTS = "arrears-accounts-reporting"
PAYMENTS = "arrears-payments-reporting"

visualizations = [
    visualization(
        "arrears-balance-by-status",
        "Balance by status",
        ACCOUNTS,
        "histogram",
        [
            agg("1", "sum", "metric", field="current_balance", customLabel=MIXED % "current balance"),
            agg("2", "terms", "segment", field="status", size=10, order="desc", orderBy="1"),
        ],
        query="not deleted_at:*",
    ),
    visualization(
        "arrears-balance-by-portfolio",
        "Open balance by portfolio",
        ACCOUNTS,
        "histogram",
        [
            agg("1", "sum", "metric", field="current_balance", customLabel=MIXED % "current balance"),
            agg(
                "2",
                "terms",
                "segment",
                field="portfolio_name",
                size=20,
                order="desc",
                orderBy="1",
                missingBucket=True,
                missingBucketLabel="No portfolio",
            ),
        ],
        query=OPEN,
    ),
    visualization(
        "arrears-accounts-by-bucket",
        "Open accounts by delinquency bucket (days past due)",
        ACCOUNTS,
        "histogram",
        [
            agg("1", "count", "metric", customLabel="Open accounts"),
            agg(
                "2",
                "date_range",
                "segment",
                field="due_date",
                ranges=[
                    {"from": "now/d", "label": "current"},
                    {"from": "now/d-29d", "to": "now/d", "label": "1-29"},
                    {"from": "now/d-59d", "to": "now/d-29d", "label": "30-59"},
                    {"from": "now/d-89d", "to": "now/d-59d", "label": "60-89"},
                    {"from": "now/d-119d", "to": "now/d-89d", "label": "90-119"},
                    {"to": "now/d-119d", "label": "120+"},
                ],
            ),
        ],
        query=OPEN,
    ),
    visualization(
        "arrears-payments-per-day",
        "Completed payments per day",
        PAYMENTS,
        "histogram",
        [
            agg("1", "sum", "metric", field="amount", customLabel=MIXED % "completed payment amounts"),
            agg("2", "date_histogram", "segment", field="received_at", interval="d", min_doc_count=1),
        ],
        query="status:completed",
    ),
    visualization(
        "arrears-payment-methods",
        "Payment method split",
        PAYMENTS,
        "pie",
        [
            agg("1", "sum", "metric", field="amount", customLabel=MIXED % "completed payment amounts"),
            agg("2", "terms", "segment", field="method", size=10, order="desc", orderBy="1"),
        ],
        query="status:completed",
        params={"type": "pie", "isDonut": True, "addLegend": True, "legendPosition": "right"},
    ),
]

panels = []
references = []
for i, vis in enumerate(visualizations):
    panels.append(
        {
            "version": VERSION,
            "type": "visualization",
            "gridData": {"x": (i % 2) * 24, "y": (i // 2) * 15, "w": 24, "h": 15, "i": str(i + 1)},
            "panelIndex": str(i + 1),
            "embeddableConfig": {},
            "panelRefName": f"panel_{i}",
        }
    )
    references.append({"name": f"panel_{i}", "type": "visualization", "id": vis["id"]})

dashboard = {
    "type": "dashboard",
    "id": "arrears-collections-overview",
    "attributes": {
        "title": "Collections overview",
        "description": "Balance by status, open balance by portfolio, open accounts by delinquency bucket, completed payments per day, payment method split",
        "panelsJSON": json.dumps(panels),
        "optionsJSON": json.dumps({"useMargins": True, "syncColors": False, "hidePanelTitles": False}),
        "timeRestore": True,
        "timeFrom": "now-90d",
        "timeTo": "now",
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"}, "filter": []})},
    },
    "references": references,
    "typeMigrationVersion": "8.9.0",
    "coreMigrationVersion": VERSION,
}

# Accounts have no time field: the dashboard's time range filters payments only, and
# balances always cover every account.
objects = [
    data_view(
        ACCOUNTS,
        "Accounts",
        {"current_balance": "Current balance (account currency)", "original_balance": "Original balance (account currency)"},
    ),
    data_view(PAYMENTS, "Payments", {"amount": "Amount (payment currency)"}, "received_at"),
]
objects += visualizations + [dashboard]
with open("saved-objects.ndjson", "w") as out:
    for obj in objects:
        out.write(json.dumps(obj, separators=(",", ":")) + "\n")
