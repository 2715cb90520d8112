// The console's shell: sign in (with a second factor when the user has one), the header
// (navigation by role, live status, the notification bell, sign out) and hash routing to
// the screens; a user whose role requires a second factor they have not turned on sees
// only its enrolment.

import { api, atLeast, currentUser, resume, sessionEvents, signIn, signOut } from "./api.js";
import { clear, field, h, showProblem, when } from "./dom.js";
import { live, startLive, stopLive } from "./live.js";
import { searchScreen } from "./search.js";
import { accountScreen } from "./account.js";
import { queueScreen } from "./queue.js";
import { importsScreen } from "./imports.js";
import { dashboardScreen } from "./dashboard.js";
import { paymentsScreen } from "./payments.js";
import { adminScreen } from "./admin.js";
import { fieldsScreen } from "./fields.js";
import { portfoliosScreen } from "./portfolios.js";
import { systemScreen } from "./system.js";
import { secondFactorScreen } from "./second-factor.js";
import { meScreen, resetScreen } from "./me.js";
import { installKeys } from "./keys.js";
import "./calls.js";

const main = document.getElementById("main");
const top = document.getElementById("top");

// Each screen: the role it needs, its title, and a function that fills `main` and may
// return a cleanup function.
const SCREENS = {
  search: { role: "viewer", title: "Accounts", show: searchScreen },
  account: { role: "viewer", title: "Account", show: accountScreen, hidden: true },
  queue: { role: "agent", title: "My queue", show: queueScreen },
  imports: { role: "manager", title: "Imports", show: importsScreen },
  dashboard: { role: "manager", title: "Dashboard", show: dashboardScreen },
  payments: { role: "manager", title: "Payments", show: paymentsScreen },
  admin: { role: "manager", title: "Users", show: adminScreen },
  fields: { role: "manager", title: "Fields", show: fieldsScreen },
  portfolios: { role: "manager", title: "Portfolios", show: portfoliosScreen },
  system: { role: "admin", title: "System", show: systemScreen },
  // Linked from "My account".
  "second-factor": { role: "viewer", title: "Two-step sign-in", show: secondFactorScreen, hidden: true },
  // Every signed-in user, a pending one too; linked beside "Sign out".
  me: { role: "pending", title: "My account", show: meScreen, hidden: true },
};

// Said once on the sign-in screen (after a password was set with a reset link).
let notice = null;

let cleanup = null;
// The signed-in user's role requires a second factor they have not turned on: the API
// answers them nothing else, so neither does the console.
let mustEnrol = false;

// "#/account/<id>" -> {name: "account", args: [id]}; "#/search?q=x" -> {name: "search", params}.
function route() {
  const [path, queryText] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...args] = path.split("/");
  return { name, args, params: new URLSearchParams(queryText || "") };
}

async function render() {
  if (cleanup) cleanup();
  cleanup = null;
  const { name, args, params } = route();
  if (name === "reset") {
    if (!currentUser()) top.hidden = true;
    document.title = "Set a new password · Arrears";
    resetScreen(main, params, passwordSet);
    return;
  }
  if (!currentUser()) {
    if (name === "register") registerScreen();
    else loginScreen();
    return;
  }
  if (!atLeast("viewer") && name !== "me") {
    pendingScreen();
    return;
  }
  if (mustEnrol && name !== "second-factor") {
    location.replace("#/second-factor");
    return;
  }
  const screen = SCREENS[name];
  if (!screen || !atLeast(screen.role)) {
    location.replace(landing());
    return;
  }
  markNav(name);
  document.title = `${screen.title} · Arrears`;
  clear(main);
  cleanup = (await screen.show(main, args, params)) || null;
  // A screen that put the focus somewhere (its search box, its first button) keeps it.
  if (!main.contains(document.activeElement)) main.focus({ preventScroll: true });
}

// Where a user lands: managers and admins on the dashboard (their own queue is empty),
// agents on their queue, viewers on the accounts.
function landing() {
  if (atLeast("manager")) return "#/dashboard";
  return atLeast("agent") ? "#/queue" : "#/search";
}

// Unfolds (or folds) the phone's menu of screens.
function openMenu(open) {
  top.classList.toggle("menu-open", open);
  top.querySelector(".menu-toggle")?.setAttribute("aria-expanded", String(open));
}

function markNav(name) {
  openMenu(false);
  for (const link of top.querySelectorAll("nav a")) {
    if (link.dataset.screen === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function loginScreen() {
  top.hidden = true;
  document.title = "Sign in · Arrears";
  const form = h(
    "form",
    { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Arrears console"),
    h("p", { class: "muted" }, "Sign in to work your accounts."),
    notice ? h("p", { class: "notice", role: "status" }, notice) : null,
    h("div", { class: "form-alert", role: "alert" }),
    field("Email", h("input", { name: "email", type: "email", autocomplete: "username", required: true })),
    field("Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
    h("p", { class: "register-link", hidden: true }, h("a", { href: "#/register" }, "Create an account")),
  );
  // The link shows only when the server takes registrations.
  api("GET", "/auth/options").then((options) => {
    form.querySelector(".register-link").hidden = !options.registration;
  }, () => {});
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    const [email, password] = [form.elements.email.value, form.elements.password.value];
    try {
      await signIn(email, password);
      signedIn();
    } catch (error) {
      if (error.problem?.code === "second_factor_required") codeStep(email, password);
      else showProblem(form, error);
    } finally {
      button.disabled = false;
    }
  });
  clear(main, form);
  form.elements.email.focus();
}

// The second step of signing in: the code from the authenticator app, or a recovery code.
function codeStep(email, password) {
  let recovery = false;
  const input = h("input", { name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true, maxlength: 7 });
  const label = h("label", { for: "login-code" }, "Code from your authenticator app");
  input.id = "login-code";
  const switcher = h("button", { type: "button", class: "link" }, "Use a recovery code instead");
  const form = h(
    "form",
    { class: "card login", "aria-labelledby": "code-title" },
    h("h1", { id: "code-title" }, "Two-step sign-in"),
    h("p", { class: "muted" }, `Signing in as ${email}.`),
    h("div", { class: "form-alert", role: "alert" }),
    h("div", { class: "field" }, label, input),
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, "Sign in"), switcher),
    h("p", {}, h("button", { type: "button", class: "link", onclick: loginScreen }, "Back")),
  );
  switcher.addEventListener("click", () => {
    recovery = !recovery;
    input.value = "";
    input.name = recovery ? "recovery_code" : "code";
    input.setAttribute("inputmode", recovery ? "text" : "numeric");
    input.setAttribute("autocomplete", recovery ? "off" : "one-time-code");
    input.setAttribute("maxlength", recovery ? "64" : "7");
    clear(label, recovery ? "Recovery code" : "Code from your authenticator app");
    clear(switcher, recovery ? "Use a code from the app instead" : "Use a recovery code instead");
    showProblem(form, null);
    input.focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await signIn(email, password, { [input.name]: input.value });
      signedIn();
    } catch (error) {
      showProblem(form, error);
    } finally {
      button.disabled = false;
    }
  });
  notice = null;
  clear(main, form);
  input.focus();
}

// A reset link set the password: every session of the account ended, so sign in anew.
async function passwordSet() {
  notice = "Your password is set. Sign in with it.";
  if (currentUser()) {
    await signOut();
    return;
  }
  history.replaceState(null, "", location.pathname);
  render();
}

// Self-registration: the account waits for an administrator, so the pending screen
// follows at once.
function registerScreen() {
  top.hidden = true;
  document.title = "Create an account · Arrears";
  const form = h(
    "form",
    { class: "card login", "aria-labelledby": "register-title" },
    h("h1", { id: "register-title" }, "Create an account"),
    h("p", { class: "muted" }, "An administrator approves new accounts before they see anything."),
    h("div", { class: "form-alert", role: "alert" }),
    field("Name", h("input", { name: "name", autocomplete: "name", required: true })),
    field("Email", h("input", { name: "email", type: "email", autocomplete: "username", required: true })),
    field("Password", h("input", { name: "password", type: "password", autocomplete: "new-password", required: true }), "At least 10 characters"),
    h("button", { type: "submit", class: "primary" }, "Create account"),
    h("p", {}, h("a", { href: "#/" }, "Back to sign in")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    const { name, email, password } = form.elements;
    button.disabled = true;
    try {
      await api("POST", "/auth/register", { body: { name: name.value, email: email.value, password: password.value } });
    } catch (error) {
      showProblem(form, error);
      button.disabled = false;
      return;
    }
    try {
      await signIn(email.value, password.value);
      history.replaceState(null, "", location.pathname);
      signedIn();
    } catch {
      // The server answers a taken email like a new one (its owner is told), so only
      // signing in can fail here; the form says no more than that.
      clear(form, h("h1", { id: "register-title" }, "Request sent"),
        h("p", {}, "If this email is new, your account waits for an administrator's approval."),
        h("p", {}, h("a", { href: "#/" }, "Back to sign in")));
    }
  });
  clear(main, form);
  form.elements.name.focus();
}

// A signed-in user without a role sees nothing until an administrator gives one.
function pendingScreen() {
  top.hidden = true;
  document.title = "Waiting for approval · Arrears";
  clear(
    main,
    h("section", { class: "card login", "aria-labelledby": "pending-title" },
      h("h1", { id: "pending-title" }, "Waiting for approval"),
      h("p", {}, "An administrator must approve you before you can work in Arrears."),
      h("p", { class: "muted" }, "Sign in again once they have given your account a role."),
      h("button", { type: "button", class: "primary", onclick: () => signOut() }, "Sign out")),
  );
}

const bell = { count: 0, button: null, panel: null };

async function refreshUnread() {
  const answer = await api("GET", "/notifications/unread-count").catch(() => null);
  if (answer) setUnread(answer.unread_count);
}

function setUnread(count) {
  bell.count = count;
  clear(bell.button.querySelector(".count"), count > 0 ? String(count) : "");
  clear(bell.button.querySelector(".sr-only"), `, ${count} unread`);
}

async function openBell() {
  const open = !bell.panel.hidden;
  bell.panel.hidden = open;
  bell.button.setAttribute("aria-expanded", String(!open));
  if (!open) await fillBell();
}

function closeBell() {
  bell.panel.hidden = true;
  bell.button.setAttribute("aria-expanded", "false");
}

// Escape closes the panel from anywhere in it (or on the bell) and gives the focus back
// to the bell.
function closeOnEscape(event) {
  if (event.key !== "Escape" || bell.panel.hidden) return;
  event.preventDefault();
  closeBell();
  bell.button.focus();
}

// A notification leads to what it is about; following it marks it read.
function noteTitle(note) {
  const text = note.title || note.kind;
  if (!note.link) return h("span", {}, text);
  return h("a", {
    href: note.link,
    onclick: () => {
      closeBell();
      if (!note.read_at) api("POST", `/notifications/${note.id}/read`).then(refreshUnread, () => {});
    },
  }, text);
}

async function fillBell(cursor) {
  const list = bell.panel.querySelector("ul");
  if (!cursor) clear(list);
  const page = await api("GET", "/notifications", { params: { page_size: 10, cursor } });
  setUnread(page.unread_count);
  for (const note of page.data) {
    const item = h(
      "li",
      { class: note.read_at ? "" : "unread" },
      noteTitle(note),
      h("small", {}, when(note.created_at)),
    );
    if (!note.read_at) {
      item.append(
        h("button", {
          type: "button",
          class: "link",
          onclick: async () => {
            await api("POST", `/notifications/${note.id}/read`);
            item.classList.remove("unread");
            item.querySelector("button").remove();
            refreshUnread();
          },
        }, "Mark read"),
      );
    }
    list.append(item);
  }
  if (!cursor && !page.data.length) {
    list.append(h("li", { class: "empty" }, "No notifications yet. Payments on your accounts, accounts assigned to you and your finished jobs show here."));
  }
  const more = bell.panel.querySelector(".more");
  more.hidden = !page.next_cursor;
  more.onclick = () => fillBell(page.next_cursor);
}

function header() {
  const user = currentUser();
  bell.button = h(
    "button",
    { type: "button", class: "bell", "aria-expanded": "false", "aria-controls": "bell-panel", onclick: openBell, onkeydown: closeOnEscape },
    h("span", { class: "label" }, "Notifications"),
    h("span", { class: "count", "aria-hidden": "true" }),
    h("span", { class: "sr-only" }),
  );
  bell.panel = h(
    "section",
    { id: "bell-panel", class: "bell-panel card", hidden: true, "aria-label": "Notifications", onkeydown: closeOnEscape },
    h("div", { class: "row" },
      h("h2", {}, "Notifications"),
      h("button", {
        type: "button",
        class: "link",
        onclick: async () => {
          await api("POST", "/notifications/read-all");
          await fillBell();
        },
      }, "Mark all read")),
    h("ul", { class: "plain" }),
    h("button", { type: "button", class: "more", hidden: true }, "Older notifications"),
  );
  const links = Object.entries(SCREENS)
    .filter(([, screen]) => !mustEnrol && !screen.hidden && atLeast(screen.role))
    .map(([name, screen]) => h("a", { href: `#/${name}`, dataset: { screen: name } }, screen.title));
  // On a phone the screens, the user's name and "My account" fold behind "Menu", so the
  // header is one line.
  const menu = h("button", {
    type: "button",
    class: "menu-toggle",
    "aria-expanded": "false",
    "aria-controls": "screens",
    onclick: () => openMenu(!top.classList.contains("menu-open")),
  }, "Menu");
  clear(
    top,
    h("span", { class: "brand" }, "Arrears"),
    mustEnrol ? null : menu,
    h("nav", { "aria-label": "Screens", id: "screens" }, links),
    h("span", { class: "spacer" }),
    mustEnrol ? null : h("span", { class: "live", id: "live-status", role: "status" }, "offline"),
    mustEnrol ? null : h("div", { class: "bell-wrap" }, bell.button, bell.panel),
    // The signed-in user's name is the way to their account.
    h("a", { href: "#/me", class: "account-link", dataset: { screen: "me" }, "aria-label": `My account: ${user.name} (${user.role})` }, user.name),
    h("button", {
      type: "button",
      onclick: async () => {
        await signOut();
      },
    }, "Sign out"),
  );
  top.hidden = false;
  setUnread(0);
}

live.addEventListener("status", (event) => {
  const status = document.getElementById("live-status");
  if (status) clear(status, event.detail.connected ? "live" : "offline");
  status?.classList.toggle("on", event.detail.connected);
  if (event.detail.connected) refreshUnread();
});
// A batch that grows (a job's next chunk) is `notification.updated`: the panel re-reads.
for (const name of ["notification.created", "notification.updated"]) {
  live.addEventListener(name, () => {
    refreshUnread();
    if (!bell.panel.hidden) fillBell();
  });
}
live.addEventListener("replayed", refreshUnread);

async function signedIn() {
  const status = await api("GET", "/auth/second-factor").catch(() => null);
  mustEnrol = Boolean(status?.required && !status.enabled);
  header();
  if (!mustEnrol) {
    startLive();
    refreshUnread();
  }
  render();
}

sessionEvents.addEventListener("mustenrol", () => {
  if (mustEnrol) return;
  mustEnrol = true;
  stopLive();
  header();
  render();
});

// Enrolment done: the whole console, from its first screen.
sessionEvents.addEventListener("secondfactoron", () => {
  mustEnrol = false;
  history.replaceState(null, "", location.pathname);
  signedIn();
});

sessionEvents.addEventListener("signedout", () => {
  mustEnrol = false;
  stopLive();
  history.replaceState(null, "", location.pathname);
  render();
});

window.addEventListener("hashchange", render);

// The fragment routes screens, so the skip link moves the focus itself.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

// Shortcuts ("/" to the search box, "n" next account, "?" lists them) once signed in.
installKeys(() => Boolean(currentUser()) && atLeast("viewer"));

const user = await resume();
if (user) signedIn();
else render();
