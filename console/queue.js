// My queue: the caller's accounts in the order to work them on a channel, each with the
// reason it is there; why accounts are held back (and when calling hours open); and
// "next account", which claims the top one and opens it.

import { CHANNELS, HOLDS, REASONS, api } from "./api.js";
import { clear, h, localDate, money, select, zoned } from "./dom.js";

const named = (channel) => CHANNELS.find(([c]) => c === channel)?.[1] ?? channel;

// "08:00 EST" today, "26 Nov 2026, 08:00 EST" another day (each in its own zone).
function moment(date, zone) {
  const today = zone
    ? new Intl.DateTimeFormat("en-CA", { timeZone: zone }).format(date) === new Intl.DateTimeFormat("en-CA", { timeZone: zone }).format(new Date())
    : localDate(date) === localDate();
  return zoned(date, zone, { dateShown: !today });
}

// The sentence that says why accounts are missing from the queue, and the channels that
// have work now as buttons that switch to them.
function explain(explanation, total, switchTo) {
  if (!explanation) return [];
  const { channel, held_back: held, held_back_by: by, window_opens: opens, channels } = explanation;
  const out = [];
  if (held > 0) {
    const parts = by.map(({ hold, accounts }) => `${accounts} ${HOLDS[hold] ?? hold}`);
    out.push(h("p", { id: "held-back" },
      total ? "" : `Nothing can be worked on ${named(channel)} now: `,
      `${held} account${held === 1 ? " is" : "s are"} held back on ${named(channel)} (${parts.join("; ")}).`));
  }
  if (opens) {
    const at = new Date(opens.at);
    out.push(h("p", { id: "window-opens" },
      `The next debtor's hours open at ${moment(at)} your time, ${moment(at, opens.zone)} in ${opens.zone.replaceAll("_", " ")}.`));
  }
  const open = channels.filter((c) => c.channel !== channel && c.accounts > 0);
  if (!total && open.length) {
    out.push(h("div", { class: "row open-channels" },
      h("span", {}, "Open now:"),
      open.map((c) => h("button", { type: "button", onclick: () => switchTo(c.channel) }, `Work ${named(c.channel)} (${c.accounts})`))));
  }
  return out;
}

export function queueScreen(main, _args, params) {
  const channel = CHANNELS.some(([c]) => c === params.get("channel")) ? params.get("channel") : "call";
  const status = h("p", { role: "status", class: "muted" });
  const why = h("div", { class: "why", "aria-live": "polite" });
  // What Next account would do, under it.
  const nextWhy = h("div", { "aria-live": "polite" });
  const list = h("ol", { class: "results plain", "aria-label": "Queue" });
  const more = h("button", { type: "button", class: "more", hidden: true }, "More");
  const next = h("button", { type: "button", class: "primary big-button", id: "next-account", dataset: { shortcut: "next-account" } }, "Next account");
  const choice = select("channel", CHANNELS.map(([c, label]) => [c, label[0].toUpperCase() + label.slice(1)]), channel, { id: "queue-channel" });
  const switchTo = (to) => { location.hash = `#/queue?channel=${to}`; };
  choice.addEventListener("change", () => switchTo(choice.value));

  next.addEventListener("click", async () => {
    next.disabled = true;
    try {
      const claim = await api("POST", "/queue/next", { params: { channel } });
      if (claim) {
        location.hash = `#/account/${claim.account.id}`;
        return;
      }
      // The queue changed since it was shown: show it as it is now, and say so.
      await load();
      clear(status, `Nothing can be worked on ${named(channel)} now.`);
    } catch (error) {
      next.disabled = false;
      clear(status, error.message);
    }
  });

  // With nothing of the agent's own to work, "Next account" takes one of the team's
  // unassigned accounts; with none of those either it is disabled, and says why.
  function nextHint(explanation, total) {
    const team = explanation.team_contactable;
    const idle = !total && !team;
    next.disabled = idle;
    if (idle) {
      next.setAttribute("aria-describedby", "next-why");
      return h("p", { id: "next-why" }, `Next account is off: neither your queue nor the team's unassigned accounts hold one to work on ${named(channel)} now.`);
    }
    next.removeAttribute("aria-describedby");
    if (!total && team) return h("p", { id: "next-why" }, `Next account takes one of the team's ${team} unassigned account${team === 1 ? "" : "s"} that can be worked on ${named(channel)}.`);
    return null;
  }

  async function load(cursor) {
    const page = await api("GET", "/queue", { params: { page_size: 25, channel, cursor } });
    if (!cursor) clear(list);
    for (const { reason, account } of page.data) {
      list.append(h("li", {}, h("a", { href: `#/account/${account.id}`, class: "result" },
        h("span", { class: "name" }, account.debtor_name),
        h("span", { class: `badge reason ${reason}` }, REASONS[reason] ?? reason),
        h("span", { class: "balance" }, money(account.current_balance, account.currency)),
        h("span", { class: "muted" }, `${account.days_past_due ?? 0} days past due`))));
    }
    clear(status, `${page.total} account${page.total === 1 ? "" : "s"} to work on ${named(channel)}`);
    if (page.explanation) {
      clear(why, explain(page.explanation, page.total, switchTo));
      clear(nextWhy, nextHint(page.explanation, page.total));
      for (const option of choice.options) {
        const count = page.explanation.channels.find((c) => c.channel === option.value)?.accounts;
        const label = named(option.value);
        option.textContent = `${label[0].toUpperCase()}${label.slice(1)}${count === undefined ? "" : ` (${count} now)`}`;
      }
    }
    more.hidden = !page.next_cursor;
    more.onclick = () => load(page.next_cursor);
  }

  clear(
    main,
    h("section", { "aria-labelledby": "queue-title" },
      h("div", { class: "row" },
        h("h1", { id: "queue-title" }, "My queue"),
        h("div", { class: "queue-controls" }, h("label", { for: "queue-channel" }, "Channel"), choice, next)),
      nextWhy,
      status,
      why,
      list,
      more),
  );
  next.focus();
  load().catch((error) => clear(status, error.message));
}
