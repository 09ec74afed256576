//! XEP-0078 Non-SASL Authentication (`jabber:iq:auth`), for old clients
//! and load tools (tsung's `auth_get` / `auth_set_plain`). Obsolete and off
//! unless `[auth] legacy_auth` is set, as ejabberd's mod_legacy_auth and
//! Prosody's mod_legacyauth are. Only the plaintext method is offered: the
//! server stores SCRAM keys, never the password, so the digest method
//! (SHA-1 of stream id and password, §3.1) cannot be checked; and, like SASL
//! PLAIN, only over TLS (§7, RFC 6120 §5.3.1) unless `allow_plaintext`.
//! The password is checked by the PLAIN code (`crate::sasl`), so failures
//! count towards the same delays and bans as SASL ones.

use super::{Conn, Exit, State};
use crate::sasl::{Context, Mechanism, SaslSession, Step};
use crate::stanza::{StanzaError, StreamError};
use crate::xml::{ns, Element};

impl Conn {
    /// Whether the iq-auth stream feature is offered now (XEP-0078 §4):
    /// enabled, not yet authenticated, and where PLAIN would be.
    pub(super) fn legacy_auth_offered(&self) -> bool {
        let config = self.shared.config();
        config.auth.legacy_auth && self.user.is_none() && (self.io.is_tls() || config.auth.allow_plaintext)
    }

    /// An `<iq/>` with a `jabber:iq:auth` query before authentication.
    pub(super) async fn on_legacy_auth(&mut self, el: &Element) -> Result<(), Exit> {
        self.check_ban()?;
        if !self.legacy_auth_offered() {
            // §7: never a password in the clear (TLS is mandatory-to-negotiate).
            return Err(Exit::Error(
                StreamError::PolicyViolation,
                Some("negotiate TLS (STARTTLS) before authenticating".into()),
            ));
        }
        let id = el.attr("id").unwrap_or("").to_string();
        let Some(query) = el.child("query", ns::IQ_AUTH) else { return Ok(()) };
        let field = |name: &str| query.child(name, ns::IQ_AUTH).map(|f| f.text()).filter(|t| !t.is_empty());
        match el.attr("type") {
            // §3.1 (Examples 1, 2): the fields the server wants. No <digest/>.
            Some("get") => {
                let user = field("username").unwrap_or_default();
                let fields = Element::new("query", ns::IQ_AUTH)
                    .with_child(Element::new("username", ns::IQ_AUTH).with_text(user))
                    .with_child(Element::new("password", ns::IQ_AUTH))
                    .with_child(Element::new("resource", ns::IQ_AUTH));
                let reply = crate::stanza::iq_result(&id, None, "", Some(fields));
                self.write(reply.as_bytes()).await
            }
            Some("set") => {
                let (Some(user), Some(password), Some(resource)) =
                    (field("username"), field("password"), field("resource"))
                else {
                    // §3.1 (Example 8): required information not provided
                    // (also a <digest/> instead of a password: not offered).
                    return self.iq_error(&id, StanzaError::NotAcceptable).await;
                };
                self.legacy_login(&id, &user, &password, resource).await
            }
            _ => self.iq_error(&id, StanzaError::BadRequest).await,
        }
    }

    /// §3.1 (Examples 3, 5, 6): check the password, then bind `resource`;
    /// the session is then established, with no stream restart.
    async fn legacy_login(&mut self, id: &str, user: &str, password: &str, resource: String) -> Result<(), Exit> {
        let mut plain = Vec::with_capacity(user.len() + password.len() + 2);
        plain.push(0);
        plain.extend_from_slice(user.as_bytes());
        plain.push(0);
        plain.extend_from_slice(password.as_bytes());
        let mut session = SaslSession::new(Mechanism::Plain, Context { secure: true, ..Context::default() });
        let store = self.shared.store.clone();
        let host = self.host.clone();
        let step = session.step(&plain, &mut |u| store.get_credentials(u, &host).ok().flatten());
        let Step::Success { username, .. } = step else {
            let account = session.attempted_user().map(|u| format!("{u}@{}", self.host));
            let banned = self.auth_failed(account.as_deref(), "not-authorized").await?;
            // §3.1 (Example 6): <not-authorized/>.
            self.iq_error(id, StanzaError::NotAuthorized).await?;
            return self.after_auth_failure(banned);
        };
        self.authenticated(username);
        match self.bind_resource(Some(resource)) {
            Ok(_) => self.write(crate::stanza::iq_result(id, None, "", None).as_bytes()).await,
            Err(e) => {
                // Not bound (a resource that is not a valid JID part, or
                // `session_limit = "refuse"`): the client may try again.
                self.user = None;
                self.state = State::Negotiating;
                self.iq_error(id, e).await
            }
        }
    }
}
