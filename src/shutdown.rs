//! The shutdown signal every long-running task watches.

use tokio::sync::watch;

/// False once shutdown was signalled or its sender is gone.
pub fn running(shutdown: &watch::Receiver<bool>) -> bool {
    !*shutdown.borrow() && shutdown.has_changed().is_ok()
}
