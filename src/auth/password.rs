//! Argon2id password hashing, on threads of its own behind a bounded queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::{Code, Error, Result};

pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Checks the password policy; the message names what is wrong.
pub fn check_policy(password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(Error::field(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(Error::field("password", format!("must be at most {MAX_PASSWORD_CHARS} characters")));
    }
    Ok(())
}

/// Where password hashing runs: threads of its own (half the cores), fed by a short
/// queue. Argon2 takes 19 MiB and tens of milliseconds per call; on the shared blocking
/// pool, hundreds of logins at once took gigabytes and stalled searches and exports.
/// When the queue is full the caller is told to come back (503 with `Retry-After`).
/// One client address holds at most its share of the places (running or waiting) at
/// once, so an address flooding sign-ins can never fill the queue for everyone else.
/// Each server holds its own (so one server's storm cannot refuse another's sign-ins);
/// [`hash`] and [`verify`] use a process-wide one, for the CLI.
pub struct Hashers {
    queue: std::sync::mpsc::SyncSender<Job>,
    /// Places one client address may hold at once.
    places_per_client: usize,
    /// Places each client address holds now (running or waiting); absent when none.
    held: std::sync::Arc<std::sync::Mutex<HashMap<String, usize>>>,
}

type Job = Box<dyn FnOnce() + Send>;

/// Waiting hashes per hashing thread before new ones are turned away: a queued hash
/// holds only its inputs (Argon2 allocates its memory when it runs), and 64 wait about
/// two seconds, so an office signing in at once waits instead of being turned away.
const QUEUE_PER_THREAD: usize = 64;

impl Hashers {
    /// Half the cores hash; the rest stay free for searches and payments. One client
    /// address may hold `share_percent` of the places (running or waiting), at least one.
    pub fn for_this_machine(share_percent: u8) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self::new((cores / 2).max(1), share_percent)
    }

    fn new(threads: usize, share_percent: u8) -> Self {
        let places = threads * (QUEUE_PER_THREAD + 1);
        let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(threads * QUEUE_PER_THREAD);
        let jobs = Arc::new(Mutex::new(jobs));
        for n in 0..threads {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    loop {
                        let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break,
                        }
                    }
                })
                .expect("spawning a password hashing thread");
        }
        Self {
            queue,
            places_per_client: (places * usize::from(share_percent.min(100)) / 100).max(1),
            held: Arc::default(),
        }
    }

    /// Runs `work` on a hashing thread, or refuses at once when the queue is full or
    /// `client` (an address; `None` for work no client asked for) holds its share of it.
    async fn run<T: Send + 'static>(&self, client: Option<&str>, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let place = client.map(|c| self.take_place(c)).transpose()?;
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
            drop(place);
        });
        self.queue.try_send(job).map_err(|_| {
            Error::new(Code::ServiceUnavailable, "too many sign-ins at once; try again in a moment")
                .with_retry_after(std::time::Duration::from_secs(1))
        })?;
        result.await.context("password hashing thread").map_err(Error::from)
    }

    /// One of `client`'s places in the queue, given back when dropped (the job ran, or
    /// was refused); refused while the client holds its share.
    fn take_place(&self, client: &str) -> Result<Place> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(client.to_owned()).or_default();
        if *count >= self.places_per_client {
            return Err(Error::new(
                Code::RateLimited,
                "too many sign-ins from this address at once; try again in a moment",
            )
            .with_retry_after(std::time::Duration::from_secs(1)));
        }
        *count += 1;
        Ok(Place {
            client: client.to_owned(),
            held: self.held.clone(),
        })
    }

    pub async fn hash(&self, password: String) -> Result<String> {
        self.run(None, move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
        })
        .await?
        .map_err(Error::from)
    }

    /// Verifies `password` against a PHC string for a sign-in from `client` (an address,
    /// held to its share of the queue). An unparsable hash counts as a mismatch.
    pub async fn verify(&self, client: &str, password: String, phc: String) -> Result<bool> {
        self.run(Some(client), move || {
            PasswordHash::new(&phc)
                .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
                .unwrap_or(false)
        })
        .await
    }
}

/// A client's place in the hashing queue (see [`Hashers::run`]).
struct Place {
    client: String,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.client);
            }
        }
    }
}

/// The process-wide hashers, for work outside a server (the CLI, seeding).
pub fn shared() -> &'static Hashers {
    static HASHERS: std::sync::OnceLock<Hashers> = std::sync::OnceLock::new();
    HASHERS.get_or_init(|| Hashers::for_this_machine(100))
}

pub async fn hash(password: String) -> Result<String> {
    shared().hash(password).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_drains() {
        let pool = Hashers::new(1, 100);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = std::sync::Arc::new(std::sync::Mutex::new(gate));
        let mut waiting = Vec::new();
        // One running and QUEUE_PER_THREAD queued fill it.
        for _ in 0..=QUEUE_PER_THREAD {
            let gate = gate.clone();
            waiting.push(pool.run(None, move || gate.lock().unwrap().recv().is_ok()));
        }
        let mut waiting: Vec<_> = waiting.into_iter().map(Box::pin).collect();
        // Submit them (each enqueues on its first poll); the thread takes the first.
        for (n, future) in waiting.iter_mut().enumerate() {
            assert!(futures_util::poll!(future.as_mut()).is_pending());
            if n == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        let refused = pool.run(None, || true).await.unwrap_err();
        assert_eq!(refused.code(), Code::ServiceUnavailable);
        for _ in 0..=QUEUE_PER_THREAD {
            release.send(()).unwrap();
        }
        for future in waiting {
            assert!(future.await.unwrap());
        }
        assert!(pool.run(None, || true).await.unwrap(), "room again once drained");
    }

    #[tokio::test]
    async fn one_client_holds_at_most_its_share_and_others_still_get_places() {
        // 65 places, 10 % of them: 6 per client.
        let pool = Hashers::new(1, 10);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = std::sync::Arc::new(std::sync::Mutex::new(gate));
        let mut waiting: Vec<_> = (0..6)
            .map(|_| {
                let gate = gate.clone();
                Box::pin(pool.run(Some("a"), move || gate.lock().unwrap().recv().is_ok()))
            })
            .collect();
        for future in &mut waiting {
            assert!(futures_util::poll!(future.as_mut()).is_pending());
        }
        let refused = pool.run(Some("a"), || true).await.unwrap_err();
        assert_eq!(refused.code(), Code::RateLimited);
        let mut other = Box::pin(pool.run(Some("b"), || true));
        assert!(futures_util::poll!(other.as_mut()).is_pending(), "another client gets a place");
        for _ in 0..6 {
            release.send(()).unwrap();
        }
        for future in waiting {
            assert!(future.await.unwrap());
        }
        assert!(other.await.unwrap());
        assert!(pool.run(Some("a"), || true).await.unwrap(), "places come back once the jobs ran");
    }
}
