// The call the agent is on: one placed from an account ("Call") or a debtor's call that
// rang their phone and popped here. A bar under the header follows it (live
// `call.updated` events) until its wrap-up; the account's "Log contact" completes it.
// The bar is index.html's #call-bar. A debtor's call pops the caller's account, their accounts when they have several, or
// the lookup with the number filled in when no account has it.

import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { live } from "./live.js";

// What each state of a call reads as.
const STATES = {
  placed: "ringing your phone: answer it to reach the debtor",
  ringing: "ringing",
  connecting: "dialling the debtor",
  in_progress: "connected",
};
const RESULTS = {
  answered: "ended: wrap it up in Log contact",
  busy: "the debtor's line was busy",
  no_answer: "the debtor did not answer",
  failed: "the call failed",
  canceled: "the call was cancelled",
  refused: "stopped by the contact rules: the debtor was not dialled",
  agent_missed: "your phone was not answered: the debtor was not dialled",
  missed: "no one took the call",
};
// Results after which there is nothing to wrap up.
const UNREACHED = new Set(["refused", "agent_missed", "failed", "missed"]);

let current = null;
// "change" whenever the call followed changes (a form shows what it will complete).
export const callChanges = new EventTarget();

// The call a wrap-up on `accountId` completes, if the agent is on one about it (or about
// no account yet, as a caller with several accounts or an unknown number is).
export function callFor(accountId) {
  if (!current || current.wrapped_up_at || UNREACHED.has(current.result) || current.status === "placed") return null;
  return !current.account_id || current.account_id === accountId ? current : null;
}

// Places a call to `accountId`'s debtor from the agent's phone.
export async function placeCall(accountId) {
  const call = await api("POST", `/accounts/${accountId}/calls`);
  follow(call);
  return call;
}

// The call was wrapped up: the bar goes.
export function wrappedUp() {
  follow(null);
}

function words(call) {
  if (call.status === "ended") return RESULTS[call.result] ?? call.result;
  return STATES[call.status] ?? call.status;
}

function follow(call) {
  current = call;
  callChanges.dispatchEvent(new Event("change"));
  const bar = document.getElementById("call-bar");
  if (!bar) return;
  bar.hidden = !call;
  if (!call) return clear(bar);
  const who = call.direction === "inbound" ? `Call from ${call.debtor_number}` : `Call to ${call.debtor_number}`;
  const ended = call.status === "ended";
  clear(bar,
    h("strong", {}, who), " · ",
    h("span", { id: "call-state" }, words(call)),
    call.duration_seconds ? ` (${Math.round(call.duration_seconds / 60)} min)` : "",
    call.account_id ? [" · ", h("a", { href: `#/account/${call.account_id}` }, "Open the account")] : "",
    ended && UNREACHED.has(call.result)
      ? h("button", { type: "button", onclick: () => follow(null) }, "Dismiss")
      : null);
}

live.addEventListener("call.updated", (event) => {
  const call = event.detail;
  if (call.wrapped_up_at) {
    if (current?.id === call.id) follow(null);
    return;
  }
  if (!current || current.id === call.id) follow(call);
});

live.addEventListener("call.popped", (event) => {
  const { call_id: id, number, account_ids: ids } = event.detail;
  follow({ id, direction: "inbound", debtor_number: number, account_id: ids.length === 1 ? ids[0] : null, status: "in_progress" });
  location.hash = ids.length === 1 ? `#/account/${ids[0]}` : `#/search?q=${encodeURIComponent(number)}`;
});
