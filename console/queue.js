// My queue: the caller's accounts in the order to work them, and "next account", which
// claims the top one and opens it.

import { api } from "./api.js";
import { clear, h, money, words } from "./dom.js";

export function queueScreen(main) {
  const status = h("p", { role: "status", class: "muted" });
  const list = h("ol", { class: "results plain", "aria-label": "Queue" });
  const more = h("button", { type: "button", class: "more", hidden: true }, "More");
  const next = h("button", { type: "button", class: "primary big-button", id: "next-account" }, "Next account");

  next.addEventListener("click", async () => {
    next.disabled = true;
    try {
      const claim = await api("POST", "/queue/next", { params: { channel: "call" } });
      if (claim) location.hash = `#/account/${claim.account.id}`;
      else clear(status, "Nothing can be worked now: the queue is empty or every account is blocked for calls.");
    } catch (error) {
      clear(status, error.message);
    } finally {
      next.disabled = false;
    }
  });

  async function load(cursor) {
    const page = await api("GET", "/queue", { params: { page_size: 25, cursor } });
    if (!cursor) clear(list);
    for (const { reason, account } of page.data) {
      list.append(h("li", {}, h("a", { href: `#/account/${account.id}`, class: "result" },
        h("span", { class: "name" }, account.debtor_name),
        h("span", { class: "badge" }, words(reason)),
        h("span", { class: "balance" }, money(account.current_balance, account.currency)),
        h("span", { class: "muted" }, `${account.days_past_due ?? 0} days past due`))));
    }
    clear(status, `${page.total} account${page.total === 1 ? "" : "s"} to work`);
    more.hidden = !page.next_cursor;
    more.onclick = () => load(page.next_cursor);
  }

  clear(
    main,
    h("section", { "aria-labelledby": "queue-title" },
      h("div", { class: "row" }, h("h1", { id: "queue-title" }, "My queue"), next),
      status,
      list,
      more),
  );
  next.focus();
  load().catch((error) => clear(status, error.message));
}
