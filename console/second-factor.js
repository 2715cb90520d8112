// Two-step sign-in (the TOTP second factor): its state, enrolling an authenticator app
// (a QR code the server drew, the secret as text and its otpauth:// URI; no QR service is
// called), confirming it with
// a code, the recovery codes shown once, and turning it off with the password and a code.

import { api, sessionEvents } from "./api.js";
import { clear, field, h, showProblem, toast } from "./dom.js";

// The secret in groups of four, as apps print it and people type it.
function grouped(secret) {
  return secret.match(/.{1,4}/g).join(" ");
}

// What a typed proof is: six digits (spaces allowed) are the app's code, anything else a
// recovery code.
function proofOf(typed) {
  return /^[0-9 ]{6,7}$/.test(typed) ? { code: typed } : { recovery_code: typed.trim() };
}

function codeInput() {
  return h("input", {
    name: "code",
    inputmode: "numeric",
    autocomplete: "one-time-code",
    pattern: "[0-9 ]{6,7}",
    maxlength: 7,
    required: true,
  });
}

export async function secondFactorScreen(main) {
  const status = await api("GET", "/auth/second-factor");
  const title = h("h1", {}, "Two-step sign-in");
  if (status.enabled) {
    clear(main, title, enabledCard(main, status));
    return;
  }
  const intro = h(
    "section",
    { class: "card", "aria-labelledby": "sf-intro" },
    h("h2", { id: "sf-intro" }, status.required ? "Your role requires two-step sign-in" : "Two-step sign-in is off"),
    h(
      "p",
      {},
      status.required
        ? "Set it up to continue: each sign-in will ask for your password and a code from an authenticator app on your phone."
        : "With it on, each sign-in asks for your password and a code from an authenticator app on your phone.",
    ),
    h("button", { type: "button", class: "primary", onclick: () => begin(main, title) }, status.pending ? "Start again" : "Set up"),
  );
  clear(main, title, intro);
  intro.querySelector("button").focus();
}

function enabledCard(main, status) {
  const card = h(
    "section",
    { class: "card", "aria-labelledby": "sf-on" },
    h("h2", { id: "sf-on" }, "On"),
    h("p", {}, "Signing in asks for a code from your authenticator app."),
    h("p", { class: "muted" }, `${status.recovery_codes_left} of 10 recovery codes left.`),
  );
  if (status.required) {
    card.append(h("p", {}, "Your role requires it, so it cannot be turned off."));
    return card;
  }
  const form = h(
    "form",
    { "aria-labelledby": "sf-off" },
    h("h3", { id: "sf-off" }, "Turn it off"),
    h("div", { class: "form-alert", role: "alert" }),
    field("Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    field(
      "Code from your app, or a recovery code",
      h("input", { name: "code", autocomplete: "one-time-code", spellcheck: "false", required: true }),
    ),
    h("button", { type: "submit" }, "Turn off"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("DELETE", "/auth/second-factor", {
        body: { password: form.elements.password.value, ...proofOf(form.elements.code.value) },
      });
      toast("Two-step sign-in is off.");
      await secondFactorScreen(main);
    } catch (error) {
      showProblem(form, error);
    }
  });
  card.append(form);
  return card;
}

async function begin(main, title) {
  const enrolment = await api("POST", "/auth/second-factor");
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "sf-confirm" },
    h("h2", { id: "sf-confirm" }, "2. Type the code the app shows"),
    h("div", { class: "form-alert", role: "alert" }),
    field("Code", codeInput(), "6 digits; a new one every 30 seconds"),
    h("button", { type: "submit", class: "primary" }, "Turn on"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const answer = await api("POST", "/auth/second-factor/confirm", { body: { code: form.elements.code.value } });
      showRecoveryCodes(main, title, answer.recovery_codes);
    } catch (error) {
      showProblem(form, error);
    } finally {
      button.disabled = false;
    }
  });
  clear(
    main,
    title,
    h(
      "section",
      { class: "card", "aria-labelledby": "sf-key" },
      h("h2", { id: "sf-key" }, "1. Add this key to your authenticator app"),
      h("p", {}, "Scan this code with the app:"),
      h("img", { src: enrolment.qr_code, id: "sf-qr", class: "qr", width: 200, height: 200, alt: "QR code of the key for your authenticator app" }),
      h("p", {}, "Or, in the app, choose to enter a setup key, and type:"),
      h("p", { class: "secret", id: "sf-secret" }, grouped(enrolment.secret)),
      h("p", { class: "muted" }, "Time-based, 6 digits, every 30 seconds. Or, on this phone, ",
        h("a", { href: enrolment.otpauth_uri }, "open the key in the app"),
        "."),
      h("details", {},
        h("summary", {}, "The key as a link (otpauth://)"),
        h("p", { class: "secret" }, enrolment.otpauth_uri)),
    ),
    form,
  );
  form.elements.code.focus();
}

function showRecoveryCodes(main, title, codes) {
  const done = h("button", {
    type: "button",
    class: "primary",
    onclick: () => sessionEvents.dispatchEvent(new Event("secondfactoron")),
  }, "I have saved them");
  clear(
    main,
    title,
    h(
      "section",
      { class: "card", "aria-labelledby": "sf-codes" },
      h("h2", { id: "sf-codes" }, "Two-step sign-in is on. Save your recovery codes"),
      h("p", {}, "Each code signs you in once if you lose your phone. They are shown only now: print them or keep them in a password manager."),
      h("ol", { class: "recovery-codes", id: "sf-recovery" }, codes.map((code) => h("li", {}, code))),
      done,
    ),
  );
  done.focus();
}
