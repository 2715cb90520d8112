//! The TwiML the voice webhooks answer with: what Twilio does next on a call. Every
//! value is escaped (text as Twilio's library escapes it: `<`, `>` and `&`; attributes
//! also their quotes); each document is what Twilio's own Node library (`twilio` on npm,
//! `twiml.VoiceResponse`) writes for the same verbs (tests/api/calls.rs compares them).

use quick_xml::escape::{escape, partial_escape};

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// How long a dialled phone rings, in seconds.
const DIAL_SECONDS: u32 = 30;

/// Nothing more: the call goes on as it is (the answering agent's leg is connected).
pub fn empty() -> String {
    format!("{HEAD}<Response/>")
}

/// Hangs up.
pub fn hang_up() -> String {
    format!("{HEAD}<Response><Hangup/></Response>")
}

/// Says `text` and hangs up.
pub fn say_and_hang_up(text: &str) -> String {
    format!("{HEAD}<Response><Say>{}</Say><Hangup/></Response>", partial_escape(text))
}

/// The `<Dial>` attributes both kinds of call share, in name order: where its end is
/// reported, how long it rings, and whether the answered call is recorded.
fn dial_open(action: &str, record: bool, caller_id: Option<&str>) -> String {
    let mut open = format!("<Dial action=\"{}\"", escape(action));
    if let Some(caller_id) = caller_id {
        open.push_str(&format!(" callerId=\"{}\"", escape(caller_id)));
    }
    open.push_str(" method=\"POST\"");
    if record {
        open.push_str(" record=\"record-from-answer-dual\"");
    }
    open.push_str(&format!(" timeout=\"{DIAL_SECONDS}\">"));
    open
}

/// Dials the debtor at `number`, showing `caller_id`; the end goes to `action`.
pub fn dial_debtor(number: &str, caller_id: &str, action: &str, record: bool) -> String {
    format!(
        "{HEAD}<Response>{}<Number>{}</Number></Dial></Response>",
        dial_open(action, record, Some(caller_id)),
        partial_escape(number)
    )
}

/// Rings every one of `agents` (their number, and the address Twilio calls on the leg of
/// the one who answers, before connecting them) at once: the first to answer takes the
/// call. The end goes to `action`.
pub fn ring_agents(agents: &[(String, String)], action: &str, record: bool) -> String {
    let mut twiml = format!("{HEAD}<Response>{}", dial_open(action, record, None));
    for (number, answered) in agents {
        twiml.push_str(&format!(
            "<Number method=\"POST\" url=\"{}\">{}</Number>",
            escape(answered.as_str()),
            partial_escape(number.as_str())
        ));
    }
    twiml.push_str("</Dial></Response>");
    twiml
}
