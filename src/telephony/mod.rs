//! Who places the calls the console makes: a provider behind one interface, as the
//! message providers are (`messaging`). A call the console places rings the agent's own
//! phone first; when the agent answers, the provider asks the service what to do next
//! (the voice webhooks, `http::calls`), and the service has the debtor dialled only if
//! the contact guard still allows it. `local` (the default) rings nothing and writes each
//! call under `DATA_DIR/calls`; `twilio` asks Twilio Programmable Voice.

pub mod local;
pub mod twilio;
pub mod twiml;

use std::sync::Arc;

use anyhow::Context;
use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::config::{Settings, TelephonyProvider};
use crate::messaging::SendFailure;
use crate::messaging::is_e164;
use local::LocalDialer;
use twilio::{TwilioDialer, VoiceConfig};

/// A call the provider is asked to place: ring `agent_number`, and ask the voice
/// webhook what to do when it is answered.
#[derive(Clone, Debug)]
pub struct Placing {
    /// Ours: it names the call in the webhooks' addresses.
    pub call_id: Uuid,
    /// The agent's own phone, E.164.
    pub agent_number: String,
    /// The debtor's, E.164 (dialled only once the agent answers and the guard allows).
    pub debtor_number: String,
}

/// What a provider answered when it placed the call: its id of the call (a Twilio
/// `CA…` SID), which its reports name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub provider_call_id: String,
}

/// Places calls.
pub trait Dialer: Send + Sync + 'static {
    /// The name recorded with each call (`local`, `twilio`).
    fn name(&self) -> &'static str;

    /// Asks the provider to ring the agent. A failure says why, and whether another try
    /// might go through ([`SendFailure::Retry`]) or not.
    fn place<'a>(&'a self, call: &'a Placing) -> BoxFuture<'a, Result<Placed, SendFailure>>;
}

/// The dialer `settings` choose (`TELEPHONY_PROVIDER`), and the voice webhooks' base
/// address when they are configured.
pub fn from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn Dialer>> {
    Ok(match settings.telephony_provider {
        TelephonyProvider::Local => Arc::new(LocalDialer::new(&settings.data_dir)),
        TelephonyProvider::Twilio => {
            let from = settings
                .twilio_voice_from
                .clone()
                .context("TELEPHONY_PROVIDER=twilio needs TWILIO_VOICE_FROM")?;
            if !is_e164(&from) {
                anyhow::bail!("TWILIO_VOICE_FROM must be a phone number in E.164 (+15005550006)");
            }
            Arc::new(TwilioDialer::new(VoiceConfig {
                api_url: settings.twilio_api_url.clone(),
                account_sid: settings.twilio_account_sid.clone().context("twilio needs TWILIO_ACCOUNT_SID")?,
                auth_token: settings.twilio_auth_token.clone().context("twilio needs TWILIO_AUTH_TOKEN")?,
                from,
                webhook_url: settings
                    .twilio_webhook_url
                    .clone()
                    .context("TELEPHONY_PROVIDER=twilio needs TWILIO_WEBHOOK_URL (where Twilio asks what to do)")?,
            })?)
        }
    })
}

/// The voice webhooks' address for `step` of call `call_id` under `webhook_url`
/// (TWILIO_WEBHOOK_URL): `{webhook_url}/voice/{step}?call={id}`, the address Twilio
/// calls and signs.
pub fn voice_url(webhook_url: &str, step: &str, call_id: Uuid) -> String {
    format!("{}/voice/{step}?call={call_id}", webhook_url.trim_end_matches('/'))
}
