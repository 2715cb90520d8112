//! The dialer of one binary and of development: nothing rings. Each call is written, as
//! JSON, to `DATA_DIR/calls/<id>.json` (a temporary file renamed, as the local message
//! provider does), and answered with a Twilio-shaped id (`CA` and the call's 32 hex
//! digits), so that the voice webhooks can be driven by hand or by a test, signed with
//! TWILIO_AUTH_TOKEN, exactly as Twilio would drive them.

use std::path::PathBuf;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::json;

use super::{Dialer, Placed, Placing};
use crate::messaging::SendFailure;

pub struct LocalDialer {
    dir: PathBuf,
}

impl LocalDialer {
    /// Writes under `data_dir/calls`.
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            dir: data_dir.join("calls"),
        }
    }

    async fn write(&self, call: &Placing) -> std::io::Result<()> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let record = json!({"id": call.call_id, "agent": call.agent_number, "debtor": call.debtor_number});
        let name = call.call_id.simple().to_string();
        let partial = self.dir.join(format!("{name}.json.part"));
        tokio::fs::write(&partial, serde_json::to_vec_pretty(&record)?).await?;
        tokio::fs::rename(&partial, self.dir.join(format!("{name}.json"))).await
    }
}

impl Dialer for LocalDialer {
    fn name(&self) -> &'static str {
        "local"
    }

    fn place<'a>(&'a self, call: &'a Placing) -> BoxFuture<'a, Result<Placed, SendFailure>> {
        async move {
            self.write(call)
                .await
                .map_err(|e| SendFailure::Retry(format!("writing to {}: {e}", self.dir.display())))?;
            Ok(Placed {
                provider_call_id: format!("CA{}", call.call_id.simple()),
            })
        }
        .boxed()
    }
}
