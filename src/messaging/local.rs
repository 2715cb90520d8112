//! The provider of one binary and of development: it sends nothing out. Each message is
//! written, as JSON (its attachments by name, type and size), to `DATA_DIR/messages/<id>.json` (written to a temporary file and
//! renamed, so a reader never sees half of one), where a developer reads what would
//! have gone out; the console shows them from the API. A directory it cannot write is a
//! failure worth retrying, as a provider's outage is.

use std::path::PathBuf;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::json;

use super::{Accepted, Outgoing, Provider, SendFailure};

pub struct LocalProvider {
    dir: PathBuf,
}

impl LocalProvider {
    /// Writes under `data_dir/messages`.
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            dir: data_dir.join("messages"),
        }
    }

    async fn write(&self, message: &Outgoing) -> std::io::Result<()> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let record = json!({
            "id": message.id,
            "channel": message.channel,
            "to": message.recipient,
            "subject": message.subject,
            "body": message.body,
            "attachments": message.attachments.iter()
                .map(|f| json!({"name": f.name, "content_type": f.content_type, "size": f.bytes.len()}))
                .collect::<Vec<_>>(),
            "approved_template": message.approved_template,
        });
        let name = message.id.simple().to_string();
        let partial = self.dir.join(format!("{name}.json.part"));
        tokio::fs::write(&partial, serde_json::to_vec_pretty(&record)?).await?;
        tokio::fs::rename(&partial, self.dir.join(format!("{name}.json"))).await
    }
}

impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn send<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<Accepted, SendFailure>> {
        async move {
            self.write(message)
                .await
                .map_err(|e| SendFailure::Retry(format!("writing to {}: {e}", self.dir.display())))?;
            Ok(Accepted {
                provider_message_id: format!("local-{}", message.id.simple()),
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::MessageChannel;

    #[tokio::test]
    async fn a_message_is_written_whole_and_an_unwritable_directory_is_worth_retrying() {
        let dir = std::env::temp_dir().join(format!("arrears-local-provider-{}", uuid::Uuid::new_v4().simple()));
        let provider = LocalProvider::new(&dir);
        let message = Outgoing {
            id: uuid::Uuid::new_v4(),
            channel: MessageChannel::Sms,
            recipient: "+12015550134".to_owned(),
            subject: None,
            body: "Hello\nthere".to_owned(),
            attachments: Vec::new(),
            approved_template: None,
        };
        let accepted = provider.send(&message).await.unwrap();
        assert_eq!(accepted.provider_message_id, format!("local-{}", message.id.simple()));
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("messages/{}.json", message.id.simple()))).unwrap()).unwrap();
        assert_eq!(written["to"], "+12015550134");
        assert_eq!(written["body"], "Hello\nthere");

        std::fs::remove_dir_all(dir.join("messages")).unwrap();
        std::fs::write(dir.join("messages"), b"a file where the directory goes").unwrap();
        assert!(matches!(provider.send(&message).await, Err(SendFailure::Retry(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
