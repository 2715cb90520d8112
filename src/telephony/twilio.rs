//! Calls through Twilio Programmable Voice: one
//! `POST {TWILIO_API_URL}/2010-04-01/Accounts/{AccountSid}/Calls.json` per call placed
//! (`CreateCall` in Twilio's published OpenAPI description; tests/api/providers.rs places
//! calls through Prism serving it), form-encoded, HTTP basic with the account SID and
//! auth token. The call rings the agent's own phone from TWILIO_VOICE_FROM; its `Url` is
//! the voice webhook that decides, once the agent answers, whether the debtor is dialled;
//! its `StatusCallback` reports how the agent's leg ended. Answers are read as the
//! messages' are (`messaging::twilio`): 2xx with a SID is placed, 4xx other than the
//! credentials' is final, the rest worth another try.
//!
//! The voice webhooks' parameters are read here too ([`read_voice`]), signed as every
//! Twilio webhook is (`messaging::twilio::signature_matches`).

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{Dialer, Placed, Placing, voice_url};
use crate::messaging::twilio::{is_sid, is_url, read_answer};
use crate::messaging::{SendFailure, api, is_e164};

/// How long the agent's phone rings before the call is given up, in seconds.
const RING_SECONDS: &str = "30";

/// What the Twilio dialer needs to know.
#[derive(Clone, Debug)]
pub struct VoiceConfig {
    /// `https://api.twilio.com`, or a stand-in's address in tests.
    pub api_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// The Twilio number calls come from (E.164).
    pub from: String,
    /// TWILIO_WEBHOOK_URL: the voice webhooks are under `{webhook_url}/voice/`.
    pub webhook_url: String,
}

pub struct TwilioDialer {
    client: reqwest::Client,
    config: VoiceConfig,
}

impl TwilioDialer {
    /// Refuses what Twilio would refuse on every call: an account SID that is not `AC`
    /// and 32 hex digits, an empty auth token, URLs that are not http(s).
    pub fn new(config: VoiceConfig) -> anyhow::Result<Self> {
        if !is_sid(&config.account_sid, "AC") {
            anyhow::bail!("TWILIO_ACCOUNT_SID must be AC and 32 hex digits");
        }
        if config.auth_token.trim().is_empty() {
            anyhow::bail!("TWILIO_AUTH_TOKEN is required");
        }
        if !is_url(&config.api_url) || !is_url(&config.webhook_url) {
            anyhow::bail!("TWILIO_API_URL and TWILIO_WEBHOOK_URL must be http(s) URLs");
        }
        Ok(Self {
            client: api::client()?,
            config,
        })
    }

    /// The form fields of `call`'s request, in the order sent. No `StatusCallbackEvent`:
    /// the one report sent without it (`completed`, with the final status: completed,
    /// busy, no-answer, failed or canceled) is all the service reads of the agent's leg.
    pub fn form(&self, call: &Placing) -> Vec<(&'static str, String)> {
        let webhook = &self.config.webhook_url;
        vec![
            ("To", call.agent_number.clone()),
            ("From", self.config.from.clone()),
            ("Url", voice_url(webhook, "connect", call.call_id)),
            ("Method", "POST".to_owned()),
            ("StatusCallback", voice_url(webhook, "status", call.call_id)),
            ("StatusCallbackMethod", "POST".to_owned()),
            ("Timeout", RING_SECONDS.to_owned()),
        ]
    }

    async fn post(&self, call: &Placing) -> Result<Placed, SendFailure> {
        let endpoint = format!(
            "{}/2010-04-01/Accounts/{}/Calls.json",
            self.config.api_url.trim_end_matches('/'),
            self.config.account_sid
        );
        let request = self
            .client
            .post(endpoint)
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .form(&self.form(call));
        let (status, answer) = api::exchange("Twilio", request).await?;
        let accepted = read_answer(status, &answer)?;
        Ok(Placed {
            provider_call_id: accepted.provider_message_id,
        })
    }
}

impl Dialer for TwilioDialer {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn place<'a>(&'a self, call: &'a Placing) -> BoxFuture<'a, Result<Placed, SendFailure>> {
        self.post(call).boxed()
    }
}

/// What a voice webhook says, in the words read (Twilio sends more).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VoiceReport {
    /// The call's SID (`CallSid`): the agent's leg of a call placed, the debtor's of one
    /// taken.
    pub call_sid: String,
    /// `ParentCallSid`, on a dialled leg's request: the call it was dialled from.
    pub parent_call_sid: Option<String>,
    /// `CallStatus`: queued, initiated, ringing, in-progress, completed, busy, no-answer,
    /// failed or canceled.
    pub call_status: Option<String>,
    /// `From`, on a call a debtor makes: their number, E.164 (none when withheld).
    pub from: Option<String>,
    /// `DialCallStatus`, on the end of a `<Dial>`: how the dialled leg went.
    pub dial_call_status: Option<String>,
    /// `DialCallDuration`: how long the dialled party was on the line, in seconds.
    pub dial_call_duration: Option<i32>,
    /// `RecordingUrl`, when the `<Dial>` was recorded.
    pub recording_url: Option<String>,
}

/// Reads a voice webhook's form parameters; `account_sid` must be ours.
pub fn read_voice(params: &[(String, String)], account_sid: &str) -> Result<VoiceReport, String> {
    let param = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if param("AccountSid") != Some(account_sid) {
        return Err("AccountSid is not this service's Twilio account".to_owned());
    }
    let word = |name: &str| -> Result<Option<String>, String> {
        match param(name) {
            None | Some("") => Ok(None),
            Some(w) if w.len() <= 40 && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') => Ok(Some(w.to_owned())),
            Some(_) => Err(format!("{name} is not a status word")),
        }
    };
    let is_sid = |sid: &&str| (1..=200).contains(&sid.len()) && sid.bytes().all(|b| b.is_ascii_alphanumeric());
    let call_sid = param("CallSid")
        .filter(is_sid)
        .ok_or("CallSid is missing or is not a call SID")?
        .to_owned();
    let parent_call_sid = match param("ParentCallSid") {
        None | Some("") => None,
        Some(sid) if is_sid(&sid) => Some(sid.to_owned()),
        Some(_) => return Err("ParentCallSid is not a call SID".to_owned()),
    };
    let from = param("From").filter(|f| is_e164(f)).map(str::to_owned);
    let dial_call_duration = match param("DialCallDuration") {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<i32>()
                .ok()
                .filter(|s| *s >= 0)
                .ok_or("DialCallDuration is not a number of seconds")?,
        ),
    };
    let recording_url = param("RecordingUrl").filter(|url| !url.is_empty()).map(str::to_owned);
    if recording_url
        .as_deref()
        .is_some_and(|url| !url.starts_with("https://") || url.len() > 500 || !is_url(url))
    {
        return Err("RecordingUrl is not an https URL".to_owned());
    }
    Ok(VoiceReport {
        call_sid,
        parent_call_sid,
        call_status: word("CallStatus")?,
        from,
        dial_call_status: word("DialCallStatus")?,
        dial_call_duration,
        recording_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_voice_webhook_is_read_for_our_account_only_and_its_words_are_checked() {
        let ours = format!("AC{}", "0a".repeat(16));
        let dialled = params(&[
            ("AccountSid", &ours),
            ("CallSid", "CA01"),
            ("CallStatus", "in-progress"),
            ("DialCallStatus", "completed"),
            ("DialCallDuration", "125"),
            ("RecordingUrl", "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE01"),
        ]);
        let report = read_voice(&dialled, &ours).unwrap();
        assert_eq!(report.dial_call_status.as_deref(), Some("completed"));
        assert_eq!(report.dial_call_duration, Some(125));
        assert!(report.recording_url.is_some());
        assert!(read_voice(&dialled, &format!("AC{}", "0b".repeat(16))).is_err());
        let withheld = params(&[("AccountSid", &ours), ("CallSid", "CA02"), ("From", "anonymous")]);
        assert_eq!(read_voice(&withheld, &ours).unwrap().from, None);
        for bad in [
            ("DialCallDuration", "-3"),
            ("CallStatus", "<b>"),
            ("RecordingUrl", "javascript:alert(1)"),
        ] {
            let mut form = params(&[("AccountSid", &ours), ("CallSid", "CA03")]);
            form.push((bad.0.to_owned(), bad.1.to_owned()));
            assert!(read_voice(&form, &ours).is_err(), "{bad:?}");
        }
    }
}
