//! XEP-0133 Service Administration over XEP-0050 ad-hoc commands: add-user
//! (§4.1), delete-user (§4.2), change-user-password (§4.7),
//! get-online-users-num (§4.15), get-online-users-list (§4.20) and announce
//! (§4.23), with the data forms of the XEP. Only administrators of the
//! addressed domain ([`Config::is_admin_of`](crate::config::Config::is_admin_of):
//! top-level `admins` or that host's) see or run them (§5), and only on
//! accounts of the domains they administer; others get `<forbidden/>` (§4
//! error table).

use super::adhoc::{Command, Stage};
use super::dataform::{build, single, submitted, Field};
use super::{Ctx, IqRequest};
use crate::jid::Jid;
use crate::stanza::{StanzaError, StreamError};
use crate::xml::{ns, Element};
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};

/// FORM_TYPE of every form here (§6.2).
pub const FORM_TYPE: &str = "http://jabber.org/protocol/admin";
const PREFIX: &str = "http://jabber.org/protocol/admin#";

/// The commands, in disco order.
pub fn commands() -> Vec<Box<dyn Command>> {
    [AddUser, DeleteUser, ChangePassword, OnlineNum, OnlineList, Announce]
        .into_iter()
        .map(|k| Box::new(Admin(k)) as Box<dyn Command>)
        .collect()
}

/// Which command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    AddUser,
    DeleteUser,
    ChangePassword,
    OnlineNum,
    OnlineList,
    Announce,
}
use Kind::*;

/// One XEP-0133 command.
struct Admin(Kind);

type Values = HashMap<String, Vec<String>>;

impl Admin {
    fn form(&self) -> Element {
        let (title, instructions, fields) = match self.0 {
            AddUser => (
                "Adding a User",
                "Fill out this form to add a user.",
                vec![
                    Field::new("accountjid", "jid-single", "The Jabber ID for the account to be added").required(),
                    Field::new("password", "text-private", "The password for this account").required(),
                    Field::new("password-verify", "text-private", "Retype password"),
                ],
            ),
            DeleteUser => (
                "Deleting a User",
                "Fill out this form to delete a user.",
                vec![Field::new("accountjids", "jid-multi", "The Jabber ID(s) to delete").required()],
            ),
            ChangePassword => (
                "Changing a User Password",
                "Fill out this form to change a user's password.",
                vec![
                    Field::new("accountjid", "jid-single", "The Jabber ID for this account").required(),
                    Field::new("password", "text-private", "The password for this account").required(),
                ],
            ),
            OnlineList => (
                "Requesting List of Online Users",
                "Fill out this form to request the online users of this service.",
                vec![Field::new("max_items", "list-single", "Maximum number of items to show").options(&[
                    ("25", "25"),
                    ("50", "50"),
                    ("75", "75"),
                    ("100", "100"),
                    ("150", "150"),
                    ("200", "200"),
                    ("None", "none"),
                ])],
            ),
            Announce => (
                "Making an Announcement",
                "Fill out this form to make an announcement to all active users of this service.",
                vec![Field::new("announcement", "text-multi", "Announcement").required()],
            ),
            OnlineNum => unreachable!("get-online-users-num has no form"),
        };
        build("form", FORM_TYPE, Some(title), Some(instructions), &fields)
    }

    fn run(&self, v: &Values, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> Result<Stage, StanzaError> {
        let shared = ctx.shared;
        let done = |note: String| Ok(Stage::Done { form: None, note: Some(note) });
        match self.0 {
            AddUser => {
                let (u, h) = account(req, shared, single(v, "accountjid"))?;
                let pw = password(shared, &h, v)?;
                if single(v, "password-verify").is_some_and(|p| p != pw) {
                    return Err(StanzaError::NotAcceptable);
                }
                let creds = crate::sasl::derive_credentials_with(pw, shared.config().auth.key_policy());
                match shared.store.create_account(&u, &h, &creds) {
                    Ok(()) => done(format!("User {u}@{h} added")),
                    // §4 error table: "a user already exists with that username".
                    Err(crate::storage::StoreError::Conflict(_)) => Err(StanzaError::Conflict),
                    Err(e) => Err(internal(e)),
                }
            }
            DeleteUser => {
                let jids = v.get("accountjids").cloned().unwrap_or_default();
                let accounts = jids
                    .iter()
                    .filter(|j| !j.trim().is_empty())
                    .map(|j| account(req, shared, Some(j.trim())))
                    .collect::<Result<Vec<_>, _>>()?;
                if accounts.is_empty() {
                    return Err(StanzaError::NotAcceptable);
                }
                for (u, h) in &accounts {
                    exists(shared, u, h)?;
                }
                for (u, h) in &accounts {
                    shared.store.remove_account(u, h).map_err(internal)?;
                    let bare = Jid::new(Some(u), h, None);
                    shared.forget_account(&bare);
                    // §4.2: the user's sessions end.
                    shared.router.kick(&bare, None, StreamError::NotAuthorized, Some("account removed"));
                }
                done(format!(
                    "{} deleted",
                    accounts.iter().map(|(u, h)| format!("{u}@{h}")).collect::<Vec<_>>().join(", ")
                ))
            }
            ChangePassword => {
                let (u, h) = account(req, shared, single(v, "accountjid"))?;
                let pw = password(shared, &h, v)?;
                exists(shared, &u, &h)?;
                let creds = crate::sasl::derive_credentials_with(pw, shared.config().auth.key_policy());
                shared.store.set_credentials(&u, &h, &creds).map_err(internal)?;
                done(format!("Password of {u}@{h} changed"))
            }
            OnlineNum => {
                let n = online_users(ctx).len();
                let f = Field::new("onlineusersnum", "", "The number of online users").value(n.to_string());
                Ok(Stage::Done { form: Some(build("result", FORM_TYPE, None, None, &[f])), note: None })
            }
            OnlineList => {
                let max = match single(v, "max_items") {
                    None | Some("none") => usize::MAX,
                    Some(n) => n.parse().map_err(|_| StanzaError::NotAcceptable)?,
                };
                let mut f = Field::new("onlineuserjids", "jid-multi", "The list of all online users");
                f.values = online_users(ctx).into_iter().take(max).collect();
                Ok(Stage::Done { form: Some(build("result", FORM_TYPE, None, None, &[f])), note: None })
            }
            Announce => {
                let lines = v.get("announcement").cloned().unwrap_or_default();
                let text = lines.join("\n");
                if text.trim().is_empty() {
                    return Err(StanzaError::NotAcceptable);
                }
                let n = announce(ctx, &req.to.to_bare().to_string(), &text);
                done(format!("Announcement sent to {n} sessions"))
            }
        }
    }
}

impl Command for Admin {
    fn node(&self) -> &'static str {
        match self.0 {
            AddUser => "http://jabber.org/protocol/admin#add-user",
            DeleteUser => "http://jabber.org/protocol/admin#delete-user",
            ChangePassword => "http://jabber.org/protocol/admin#change-user-password",
            OnlineNum => "http://jabber.org/protocol/admin#get-online-users-num",
            OnlineList => "http://jabber.org/protocol/admin#get-online-users-list",
            Announce => "http://jabber.org/protocol/admin#announce",
        }
    }

    fn name(&self) -> &'static str {
        match self.0 {
            AddUser => "Add User",
            DeleteUser => "Delete User",
            ChangePassword => "Change User Password",
            OnlineNum => "Get Number of Online Users",
            OnlineList => "Get List of Online Users",
            Announce => "Send Announcement to Online Users",
        }
    }

    fn allowed(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> bool {
        ctx.shared.config().is_admin_of(req.from, req.to.domain())
    }

    fn start(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> Result<Stage, StanzaError> {
        debug_assert!(self.node().starts_with(PREFIX));
        match self.0 {
            // §4.15: the service simply returns the number.
            OnlineNum => self.run(&Values::new(), req, ctx),
            _ => Ok(Stage::Form(self.form())),
        }
    }

    fn submit(&self, form: &Element, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> Result<Stage, StanzaError> {
        let v = submitted(form, FORM_TYPE, StanzaError::AdHoc("bad-payload"))?;
        self.run(&v, req, ctx)
    }
}

fn internal(e: crate::storage::StoreError) -> StanzaError {
    tracing::error!(error = %e, "admin command");
    StanzaError::InternalServerError
}

/// A bare account JID on a served host the requester administers:
/// `jid-malformed` if it is not one, `not-allowed` for a host this server
/// does not serve, `forbidden` for a host of other admins.
fn account(
    req: &IqRequest<'_>,
    shared: &crate::server::Shared,
    jid: Option<&str>,
) -> Result<(String, String), StanzaError> {
    let j = Jid::parse(jid.ok_or(StanzaError::NotAcceptable)?).map_err(|_| StanzaError::JidMalformed)?;
    let Some(u) = j.node() else { return Err(StanzaError::JidMalformed) };
    let config = shared.config();
    if !config.serves(j.domain()) {
        return Err(StanzaError::NotAllowed);
    }
    if !config.is_admin_of(req.from, j.domain()) {
        return Err(StanzaError::Forbidden);
    }
    Ok((u.to_string(), j.domain().to_string()))
}

fn exists(shared: &crate::server::Shared, u: &str, h: &str) -> Result<(), StanzaError> {
    match shared.store.get_credentials(u, h) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(StanzaError::ItemNotFound),
        Err(e) => Err(internal(e)),
    }
}

/// The new password: present and long enough (`registration.min_password_length`).
fn password<'a>(shared: &crate::server::Shared, domain: &str, v: &'a Values) -> Result<&'a str, StanzaError> {
    let pw = v.get("password").and_then(|p| p.first()).map(String::as_str).unwrap_or_default();
    // RFC 8265 §4.2 OpaqueString (see `sasl::password`); XEP-0133 §4's
    // error table: not-acceptable for data the server does not accept.
    let Ok(prepared) = crate::sasl::prepare_password(pw) else { return Err(StanzaError::NotAcceptable) };
    if prepared.chars().count() < shared.config().registration_for(domain).min_password_length {
        return Err(StanzaError::NotAcceptable);
    }
    Ok(pw)
}

/// Bare JIDs with at least one session (§4.15: "at least one connected or
/// available resource"), sorted.
fn online_users(ctx: &Ctx<'_>) -> Vec<String> {
    let bare: BTreeSet<String> = ctx
        .shared
        .router
        .connected_full_jids()
        .iter()
        .filter_map(|f| Jid::parse(f).ok())
        .map(|j| j.to_bare().to_string())
        .collect();
    bare.into_iter().collect()
}

/// §4.23: a message from the service to every session; returns how many.
fn announce(ctx: &Ctx<'_>, from: &str, text: &str) -> usize {
    let mut n = 0;
    for full in ctx.shared.router.connected_full_jids() {
        let Ok(j) = Jid::parse(&full) else { continue };
        let Some(s) = ctx.shared.router.get(&j) else { continue };
        let m = Element::new("message", ns::CLIENT)
            .with_attr("from", from)
            .with_attr("to", &full)
            .with_child(Element::new("subject", ns::CLIENT).with_text("Announcement"))
            .with_child(Element::new("body", ns::CLIENT).with_text(text));
        if s.send(Bytes::from(m.to_client_string())) {
            n += 1;
        }
    }
    n
}
