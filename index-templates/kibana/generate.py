"""Writes saved-objects.ndjson: the data views and the collections overview dashboard.

Kibana stores visualisation state and dashboard panels as JSON strings inside JSON;
this script keeps them readable. Run it after editing, then commit both files.
"""
import json

# What Kibana's own exports carry since 8.8; an import refuses a coreMigrationVersion newer
# than the Kibana it goes into, and the dashboard's typeMigrationVersion (8.9.0) needs 8.9.
VERSION = "8.8.0"


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
# Amounts are in their own currencies and never added across them: every money sum is
# split by currency.
PER_CURRENCY = "Sum of %s (per currency)"
ACCOUNTS = "arrears-accounts-reporting"
PAYMENTS = "arrears-payments-reporting"
ACTIVITIES = "arrears-activities-reporting"
PROMISES = "arrears-promises-reporting"
PLANS = "arrears-plans-reporting"
KPI_DAYS = "arrears-kpi-days-reporting"


def per_currency(id_):
    return agg(id_, "terms", "group", field="currency", size=20, order="asc", orderBy="_key")


def by_agent(id_, schema="group"):
    return agg(
        id_,
        "terms",
        schema,
        field="agent.name",
        size=50,
        order="desc",
        orderBy="1",
        missingBucket=True,
        missingBucketLabel="No agent",
    )


visualizations = [
    visualization(
        "arrears-balance-by-status",
        "Balance by status",
        ACCOUNTS,
        "histogram",
        [
            agg("1", "sum", "metric", field="current_balance", customLabel=PER_CURRENCY % "current balance"),
            agg("2", "terms", "segment", field="status", size=10, order="desc", orderBy="1"),
            per_currency("3"),
        ],
        query="not deleted_at:*",
    ),
    visualization(
        "arrears-balance-by-portfolio",
        "Open balance by portfolio",
        ACCOUNTS,
        "histogram",
        [
            agg("1", "sum", "metric", field="current_balance", customLabel=PER_CURRENCY % "current balance"),
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
            per_currency("3"),
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
            agg("1", "sum", "metric", field="amount", customLabel=PER_CURRENCY % "completed payment amounts"),
            agg("2", "date_histogram", "segment", field="received_at", interval="d", min_doc_count=1),
            per_currency("3"),
        ],
        query="status:completed",
    ),
    visualization(
        "arrears-payment-methods",
        "Payment method split (completed payments)",
        PAYMENTS,
        "pie",
        [
            agg("1", "count", "metric", customLabel="Completed payments"),
            agg("2", "terms", "segment", field="method", size=10, order="desc", orderBy="1"),
        ],
        query="status:completed",
        params={"type": "pie", "isDonut": True, "addLegend": True, "legendPosition": "right"},
    ),
    visualization(
        "arrears-attempts-by-local-hour",
        "Contact attempts by hour in the debtor's zone",
        ACTIVITIES,
        "histogram",
        [
            agg("1", "count", "metric", customLabel="Contact attempts"),
            agg(
                "2",
                "histogram",
                "segment",
                field="local_hour",
                interval=1,
                min_doc_count=True,
                has_extended_bounds=True,
                extended_bounds={"min": 0, "max": 23},
            ),
            agg("3", "terms", "group", field="right_party_contact", size=2, order="desc", orderBy="1"),
        ],
        query="contact_attempt:true",
    ),
    visualization(
        "arrears-attempts-per-day-by-agent",
        "Contact attempts per day by agent",
        ACTIVITIES,
        "line",
        [
            agg("1", "count", "metric", customLabel="Contact attempts"),
            agg("2", "date_histogram", "segment", field="occurred_at", interval="d", min_doc_count=1),
            by_agent("3"),
        ],
        query="contact_attempt:true",
    ),
    visualization(
        "arrears-promise-outcomes",
        "Promise kept rate (resolved promises: kept or broken)",
        PROMISES,
        "pie",
        [
            agg("1", "count", "metric", customLabel="Resolved promises"),
            agg("2", "terms", "segment", field="status", size=2, order="desc", orderBy="1"),
        ],
        query="status:(kept or broken)",
        params={"type": "pie", "isDonut": True, "addLegend": True, "legendPosition": "right", "labels": {"show": True, "values": True, "percentDecimals": 1}},
    ),
    visualization(
        "arrears-promises-by-agent",
        "Promises taken by agent, by outcome",
        PROMISES,
        "histogram",
        [
            agg("1", "count", "metric", customLabel="Promises"),
            by_agent("2", "segment"),
            agg("3", "terms", "group", field="status", size=4, order="desc", orderBy="1"),
        ],
    ),
    visualization(
        "arrears-promised-per-day",
        "Amount promised per day",
        PROMISES,
        "histogram",
        [
            agg("1", "sum", "metric", field="amount", customLabel=PER_CURRENCY % "amount promised"),
            agg("2", "date_histogram", "segment", field="created_at", interval="d", min_doc_count=1),
            per_currency("3"),
        ],
    ),
    visualization(
        "arrears-plan-outcomes",
        "Payment plans by status",
        PLANS,
        "pie",
        [
            agg("1", "count", "metric", customLabel="Payment plans"),
            agg("2", "terms", "segment", field="status", size=4, order="desc", orderBy="1"),
        ],
        params={"type": "pie", "isDonut": True, "addLegend": True, "legendPosition": "right"},
    ),
    visualization(
        "arrears-collected-per-day-by-agent",
        "Collected per day by agent",
        KPI_DAYS,
        "histogram",
        [
            agg("1", "sum", "metric", field="collected", customLabel=PER_CURRENCY % "money collected"),
            agg("2", "date_histogram", "segment", field="day", interval="d", min_doc_count=1),
            per_currency("3"),
            by_agent("4"),
        ],
        query="kind:collected",
    ),
    visualization(
        "arrears-roll-rates",
        "Roll rates: accounts by bucket in the day before's snapshot and how they moved",
        KPI_DAYS,
        "histogram",
        [
            agg("1", "sum", "metric", field="accounts", customLabel="Accounts"),
            agg("2", "terms", "segment", field="opening_bucket", size=10, order="asc", orderBy="_key"),
            agg("3", "terms", "group", field="roll", size=3, order="desc", orderBy="1"),
        ],
        query="kind:moves",
    ),
    visualization(
        "arrears-kpi-contacts-by-agent",
        "Contact attempts, right-party contacts and promises by agent",
        KPI_DAYS,
        "histogram",
        [
            agg("1", "sum", "metric", field="contact_attempts", customLabel="Contact attempts"),
            agg("2", "sum", "metric", field="right_party_contacts", customLabel="Right-party contacts"),
            agg("3", "sum", "metric", field="promises_made", customLabel="Promises made"),
            agg("4", "sum", "metric", field="promises_kept", customLabel="Promises kept"),
            by_agent("5", "segment"),
        ],
        query="kind:work",
    ),
    visualization(
        "arrears-message-delivery",
        "Messages by channel and delivery",
        ACTIVITIES,
        "histogram",
        [
            agg("1", "count", "metric", customLabel="Messages"),
            agg("2", "terms", "segment", field="message.channel", size=3, order="desc", orderBy="1"),
            agg("3", "terms", "group", field="message.status", size=3, order="desc", orderBy="1"),
        ],
        query="message.channel:*",
    ),
]

panels = []
references = []
# Panels by reference as Kibana's own extract writes them: the panel names `panel_<index>`
# and the reference `<index>:panel_<index>` supplies its type and saved object id.
for i, vis in enumerate(visualizations):
    index = str(i + 1)
    panels.append(
        {
            "type": "visualization",
            "gridData": {"x": (i % 2) * 24, "y": (i // 2) * 15, "w": 24, "h": 15, "i": index},
            "panelIndex": index,
            "embeddableConfig": {},
            "panelRefName": f"panel_{index}",
        }
    )
    references.append({"name": f"{index}:panel_{index}", "type": "visualization", "id": vis["id"]})

dashboard = {
    "type": "dashboard",
    "id": "arrears-collections-overview",
    "attributes": {
        "title": "Collections overview",
        "description": "Balances, buckets and payments per currency; collected per day by agent; roll rates; contact attempts by local hour and by agent; promise and plan outcomes; message delivery",
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

# Accounts have no time field: the dashboard's time range filters the others only, and
# balances always cover every account.
objects = [
    data_view(
        ACCOUNTS,
        "Accounts",
        {"current_balance": "Current balance (account currency)", "original_balance": "Original balance (account currency)"},
    ),
    data_view(PAYMENTS, "Payments", {"amount": "Amount (payment currency)"}, "received_at"),
    data_view(
        ACTIVITIES,
        "Activities",
        {"local_hour": "Hour in the debtor's zone", "local_weekday": "ISO weekday in the debtor's zone (1 = Monday)"},
        "occurred_at",
    ),
    data_view(PROMISES, "Promises", {"amount": "Amount (account currency)"}, "created_at"),
    data_view(PLANS, "Plans", {"total": "Total (account currency)"}, "created_at"),
    data_view(
        KPI_DAYS,
        "KPI days",
        {"collected": "Collected (in currency)", "roll": "Move since the day before (rolled, stayed, improved)"},
        "day",
    ),
]
objects += visualizations + [dashboard]
with open("saved-objects.ndjson", "w") as out:
    for obj in objects:
        out.write(json.dumps(obj, separators=(",", ":")) + "\n")
