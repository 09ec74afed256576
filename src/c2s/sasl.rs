//! SASL on a client stream (RFC 6120 §6): `<auth/>`, challenges and
//! responses, success with a stream restart, and failures with the abuse
//! controls of [`crate::abuse`] (growing delays, bans).

use super::{Conn, Exit, State};
use crate::jid::Jid;
use crate::metrics::Metrics;
use crate::sasl::{Context, Failure, Mechanism, SaslSession, Step};
use crate::stanza::StreamError;
use crate::xml::{ns, Element};
use base64::Engine;
use tokio::time::Instant;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl Conn {
    /// A banned address (too many SASL failures, see [`crate::abuse`]) gets
    /// `<policy-violation/>` with a text saying so, like ejabberd's
    /// mod_fail2ban.
    pub(super) fn check_ban(&self) -> Result<(), Exit> {
        if self.shared.config().limits.exempt(self.peer.ip()) {
            return Ok(());
        }
        let Some(left) = self.shared.guard.banned(self.peer.ip(), Instant::now()) else { return Ok(()) };
        Metrics::inc(&self.shared.metrics.banned_streams_total);
        let secs = left.as_secs().max(1);
        Err(Exit::Error(
            StreamError::PolicyViolation,
            Some(format!("too many authentication failures from your address; try again in {secs} seconds")),
        ))
    }

    pub(super) async fn on_auth(&mut self, el: &Element) -> Result<(), Exit> {
        self.check_ban()?;
        let mech = el.attr("mechanism").and_then(Mechanism::from_name);
        let secure = self.io.is_tls();
        if !secure && !self.shared.config().auth.allow_plaintext {
            // §6.5.4 encryption-required: TLS must come first (§5.3.1).
            return self.sasl_failure(Failure::EncryptionRequired).await;
        }
        let Some(mech) = mech.filter(|m| self.offered_mechanisms().contains(m)) else {
            // §6.5.8 invalid-mechanism.
            return self.sasl_failure(Failure::InvalidMechanism).await;
        };
        let session = SaslSession::new(
            mech,
            Context { tls_exporter: self.exporter(), tls_server_end_point: self.server_end_point(), secure },
        );
        self.state = State::Sasl(Box::new(session));
        self.sasl_step(&el.text()).await
    }

    pub(super) async fn on_response(&mut self, el: &Element) -> Result<(), Exit> {
        self.sasl_step(&el.text()).await
    }

    /// Decode (§6.4.2: "=" is an empty response) and run one SASL step.
    async fn sasl_step(&mut self, text: &str) -> Result<(), Exit> {
        let text = text.trim();
        let data = if text == "=" {
            Vec::new()
        } else {
            match B64.decode(text) {
                Ok(d) => d,
                Err(_) => return self.sasl_failure(Failure::IncorrectEncoding).await,
            }
        };
        let State::Sasl(session) = &mut self.state else { return Ok(()) };
        let store = self.shared.store.clone();
        let host = self.host.clone();
        let mut step = session.step(&data, &mut |user| store.get_credentials(user, &host).ok().flatten());
        // RFC 6120 §6.4.6: an authzid naming another domain (or anyone but
        // the authenticated user, checked by the mechanism) is refused.
        if matches!(step, Step::Success { .. }) {
            let foreign = session.authzid().filter(|a| a.contains('@')).map(|a| match Jid::parse(a) {
                Ok(j) => j.domain() != host || j.resource().is_some(),
                Err(_) => true,
            });
            if foreign == Some(true) {
                step = Step::Failure(Failure::InvalidAuthzid);
            }
        }
        match step {
            Step::Challenge(c) => {
                let body = if c.is_empty() { String::new() } else { B64.encode(c) };
                self.write(format!("<challenge xmlns='{}'>{body}</challenge>", ns::SASL).as_bytes()).await
            }
            Step::Success { username, additional } => {
                let body = additional.map(|a| B64.encode(a)).unwrap_or_default();
                self.write(format!("<success xmlns='{}'>{body}</success>", ns::SASL).as_bytes()).await?;
                self.authenticated(username);
                // §6.4.6: the stream restarts.
                self.framer.reset();
                self.state = State::Header;
                Ok(())
            }
            Step::Failure(f) => self.sasl_failure(f).await,
        }
    }

    /// §6.4.5: `<failure/>`, after a delay that grows with the failures of
    /// the address and the account (see [`crate::abuse`]); after too many
    /// on this connection it is closed, and an address with too many in
    /// the window is banned.
    pub(super) async fn sasl_failure(&mut self, f: Failure) -> Result<(), Exit> {
        let account = match &self.state {
            State::Sasl(s) => s.attempted_user().map(|u| format!("{u}@{}", self.host)),
            _ => None,
        };
        self.state = State::Negotiating;
        let banned =
            if f == Failure::Aborted { false } else { self.auth_failed(account.as_deref(), f.condition()).await? };
        self.write(format!("<failure xmlns='{}'><{}/></failure>", ns::SASL, f.condition()).as_bytes()).await?;
        self.after_auth_failure(banned)
    }

    /// Count one failed authentication of `account` (SASL, or XEP-0078 in
    /// `legacy_auth.rs`): metrics, log, then the abuse guard's delay, waited
    /// here, and ban. Returns whether the address is now banned.
    pub(super) async fn auth_failed(&mut self, account: Option<&str>, condition: &str) -> Result<bool, Exit> {
        self.auth_failures += 1;
        Metrics::inc(&self.shared.metrics.auth_failures_total);
        let config = self.shared.config();
        let auth = &config.auth;
        let ip = Some(self.peer.ip()).filter(|&ip| !config.limits.exempt(ip));
        let o = self.shared.guard.failure(auth, ip, account, Instant::now());
        tracing::info!(
            conn = self.id,
            peer = %self.peer,
            account,
            condition,
            delay_ms = o.delay.as_millis() as u64,
            "authentication failed"
        );
        if o.banned {
            Metrics::inc(&self.shared.metrics.bans_total);
            tracing::warn!(peer = %self.peer, ban_secs = auth.ban_secs, "address banned after repeated authentication failures");
        }
        if !o.delay.is_zero() {
            // A shutdown does not wait for the delay: like the
            // connection loop (mod.rs, `run`), it ends the stream with
            // <system-shutdown/> (RFC 6120 §4.9.3.22) at once.
            tokio::select! {
                () = tokio::time::sleep(o.delay) => {}
                () = self.shared.shutdown.cancelled() => {
                    return Err(Exit::Error(StreamError::SystemShutdown, None));
                }
            }
        }
        Ok(o.banned)
    }

    /// Once a failure has been answered: a banned address's stream ends
    /// with the ban's `<policy-violation/>`, and so does one with too many
    /// failures on this connection.
    pub(super) fn after_auth_failure(&self, banned: bool) -> Result<(), Exit> {
        if banned {
            self.check_ban()?;
        }
        if self.auth_failures >= self.shared.config().limits.max_auth_failures {
            return Err(Exit::Error(StreamError::PolicyViolation, Some("too many authentication failures".into())));
        }
        Ok(())
    }

    /// A successful authentication as `username` (SASL or XEP-0078).
    pub(super) fn authenticated(&mut self, username: String) {
        tracing::info!(conn = self.id, peer = %self.peer, user = %username, host = %self.host, "authenticated");
        Metrics::inc(&self.shared.metrics.auth_successes_total);
        self.shared.guard.success(&format!("{username}@{}", self.host));
        self.user = Some(username);
    }
}
