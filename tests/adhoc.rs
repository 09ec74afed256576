//! XEP-0133 service administration over XEP-0050 ad-hoc commands, raw XML:
//! discovery for admins only, each command's form and effect, cancel,
//! session rules and `<forbidden/>` for non-admins.

mod common;

use common::*;

const CMDS: &str = "http://jabber.org/protocol/commands";
const ADMIN: &str = "http://jabber.org/protocol/admin#";

/// A server where admin@localhost (password "pa") is an administrator and
/// bob ("pb") is not; both online.
async fn setup() -> (TestServer, TestClient, TestClient) {
    let srv = start_server_with("admins = [\"admin@localhost\"]").await;
    srv.register("admin", "pa");
    srv.register("bob", "pb");
    let a = TestClient::online(&srv, "admin", "pa", "a", 0).await;
    let b = TestClient::online(&srv, "bob", "pb", "b", 0).await;
    (srv, a, b)
}

async fn iq(c: &mut TestClient, id: &str, body: &str) -> String {
    c.send(&format!("<iq type='set' to='localhost' id='{id}'>{body}</iq>")).await;
    c.expect_stanza(&format!("id='{id}'")).await
}

/// `action='execute'` on a command: the answer and its sessionid.
async fn execute(c: &mut TestClient, id: &str, cmd: &str) -> (String, String) {
    let got = iq(c, id, &format!("<command xmlns='{CMDS}' node='{ADMIN}{cmd}' action='execute'/>")).await;
    let sid = got.split("sessionid='").nth(1).map(|s| s.split('\'').next().unwrap().to_string()).unwrap_or_default();
    (got, sid)
}

/// Submit the form of session `sid` with `fields` (var, values).
async fn submit(c: &mut TestClient, id: &str, cmd: &str, sid: &str, fields: &[(&str, &[&str])]) -> String {
    let mut x = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
                 <value>http://jabber.org/protocol/admin</value></field>"
        .to_string();
    for (var, values) in fields {
        x.push_str(&format!("<field var='{var}'>"));
        for v in *values {
            x.push_str(&format!("<value>{v}</value>"));
        }
        x.push_str("</field>");
    }
    x.push_str("</x>");
    iq(c, id, &format!("<command xmlns='{CMDS}' node='{ADMIN}{cmd}' sessionid='{sid}' action='complete'>{x}</command>"))
        .await
}

#[tokio::test]
async fn commands_are_discovered_by_admins_only() {
    let (_srv, mut a, mut b) = setup().await;
    a.send("<iq type='get' to='localhost' id='i1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>").await;
    let info = a.expect_stanza("id='i1'").await;
    assert!(info.contains(&format!("<feature var='{CMDS}'/>")), "{info}");
    let q = format!("<query xmlns='http://jabber.org/protocol/disco#items' node='{CMDS}'/>");
    a.send(&format!("<iq type='get' to='localhost' id='d1'>{q}</iq>")).await;
    let items = a.expect_stanza("id='d1'").await;
    for (node, name) in [
        ("add-user", "Add User"),
        ("delete-user", "Delete User"),
        ("change-user-password", "Change User Password"),
        ("get-online-users-num", "Get Number of Online Users"),
        ("get-online-users-list", "Get List of Online Users"),
        ("announce", "Send Announcement to Online Users"),
    ] {
        assert!(items.contains(&format!("<item jid='localhost' node='{ADMIN}{node}' name='{name}'/>")), "{items}");
    }
    b.send(&format!("<iq type='get' to='localhost' id='d2'>{q}</iq>")).await;
    let none = b.expect_stanza("id='d2'").await;
    assert!(none.contains("type='result'") && !none.contains("<item"), "{none}");
    // §2.3 command node info.
    let node = format!("<query xmlns='http://jabber.org/protocol/disco#info' node='{ADMIN}add-user'/>");
    a.send(&format!("<iq type='get' to='localhost' id='n1'>{node}</iq>")).await;
    let n = a.expect_stanza("id='n1'").await;
    assert!(n.contains("<identity category='automation' type='command-node' name='Add User'/>"), "{n}");
    assert!(n.contains("<feature var='jabber:x:data'/>"), "{n}");
    b.send(&format!("<iq type='get' to='localhost' id='n2'>{node}</iq>")).await;
    assert!(b.expect_stanza("id='n2'").await.contains("<forbidden"));
}

#[tokio::test]
async fn non_admins_are_forbidden() {
    let (_srv, mut a, mut b) = setup().await;
    for cmd in
        ["add-user", "delete-user", "change-user-password", "get-online-users-num", "get-online-users-list", "announce"]
    {
        let (got, _) = execute(&mut b, cmd, cmd).await;
        assert!(
            got.contains("type='error'") && got.contains("<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
            "{got}"
        );
    }
    // Nor can a non-admin use an admin's session (§4.3: bound to the requester).
    let (_, sid) = execute(&mut a, "e1", "add-user").await;
    let got =
        submit(&mut b, "s1", "add-user", &sid, &[("accountjid", &["x@localhost"]), ("password", &["secret1"])]).await;
    assert!(got.contains("<forbidden"), "{got}");
}

#[tokio::test]
async fn add_change_and_delete_users() {
    let (srv, mut a, _b) = setup().await;
    let (form, sid) = execute(&mut a, "e1", "add-user").await;
    assert!(form.contains("status='executing'") && !sid.is_empty(), "{form}");
    assert!(form.contains("<actions execute='complete'><complete/></actions>"), "{form}");
    assert!(form.contains("<field var='accountjid' type='jid-single' label='The Jabber ID for the account to be added'><required/></field>"), "{form}");
    assert!(form.contains("<title>Adding a User</title>"), "{form}");
    let done = submit(
        &mut a,
        "s1",
        "add-user",
        &sid,
        &[("accountjid", &["Carol@localhost"]), ("password", &["carolpw"]), ("password-verify", &["carolpw"])],
    )
    .await;
    assert!(done.contains("status='completed'") && done.contains(&format!("sessionid='{sid}'")), "{done}");
    TestClient::online(&srv, "carol", "carolpw", "c", 0).await;
    // The same session cannot be used twice; a second add is a conflict.
    let again =
        submit(&mut a, "s2", "add-user", &sid, &[("accountjid", &["x@localhost"]), ("password", &["xxxxxx1"])]).await;
    assert!(again.contains("<bad-request") && again.contains(&format!("<bad-sessionid xmlns='{CMDS}'/>")), "{again}");
    let (_, sid) = execute(&mut a, "e2", "add-user").await;
    let dup =
        submit(&mut a, "s3", "add-user", &sid, &[("accountjid", &["carol@localhost"]), ("password", &["other12"])])
            .await;
    assert!(dup.contains("<conflict"), "{dup}");
    let (_, sid) = execute(&mut a, "e3", "add-user").await;
    let mismatch = submit(
        &mut a,
        "s4",
        "add-user",
        &sid,
        &[("accountjid", &["dan@localhost"]), ("password", &["aaaaaa1"]), ("password-verify", &["bbbbbb1"])],
    )
    .await;
    assert!(mismatch.contains("<not-acceptable"), "{mismatch}");
    let (_, sid) = execute(&mut a, "e4", "add-user").await;
    let foreign = submit(
        &mut a,
        "s5",
        "add-user",
        &sid,
        &[("accountjid", &["dan@elsewhere.example"]), ("password", &["aaaaaa1"])],
    )
    .await;
    assert!(foreign.contains("<not-allowed"), "{foreign}");

    let (form, sid) = execute(&mut a, "e5", "change-user-password").await;
    assert!(form.contains("<title>Changing a User Password</title>"), "{form}");
    let done = submit(
        &mut a,
        "s6",
        "change-user-password",
        &sid,
        &[("accountjid", &["carol@localhost"]), ("password", &["newcarol"])],
    )
    .await;
    assert!(done.contains("status='completed'"), "{done}");
    let mut carol = TestClient::online(&srv, "carol", "newcarol", "c2", 0).await;
    let (_, sid) = execute(&mut a, "e6", "change-user-password").await;
    let missing = submit(
        &mut a,
        "s7",
        "change-user-password",
        &sid,
        &[("accountjid", &["nobody@localhost"]), ("password", &["whatever"])],
    )
    .await;
    assert!(missing.contains("<item-not-found"), "{missing}");

    let (form, sid) = execute(&mut a, "e7", "delete-user").await;
    assert!(form.contains("<field var='accountjids' type='jid-multi'"), "{form}");
    let done = submit(&mut a, "s8", "delete-user", &sid, &[("accountjids", &["carol@localhost"])]).await;
    assert!(done.contains("status='completed'"), "{done}");
    // §4.2: the deleted user's sessions end; the account is gone.
    carol.expect_closed().await;
    assert!(srv.shared.store.get_credentials("carol", "localhost").unwrap().is_none());
}

#[tokio::test]
async fn online_users_and_announcements() {
    let (_srv, mut a, mut b) = setup().await;
    let (got, _) = execute(&mut a, "n1", "get-online-users-num").await;
    assert!(
        got.contains("status='completed'")
            && got.contains("<field var='onlineusersnum' label='The number of online users'><value>2</value></field>"),
        "{got}"
    );
    let (form, sid) = execute(&mut a, "l1", "get-online-users-list").await;
    assert!(form.contains("<field var='max_items' type='list-single'"), "{form}");
    let list = submit(&mut a, "l2", "get-online-users-list", &sid, &[("max_items", &["25"])]).await;
    assert!(list.contains("<value>admin@localhost</value><value>bob@localhost</value>"), "{list}");
    let (_, sid) = execute(&mut a, "l3", "get-online-users-list").await;
    let one = submit(&mut a, "l4", "get-online-users-list", &sid, &[("max_items", &["1"])]).await;
    assert!(one.contains("<value>admin@localhost</value></field>"), "{one}");

    let (form, sid) = execute(&mut a, "a1", "announce").await;
    assert!(
        form.contains("<field var='announcement' type='text-multi' label='Announcement'><required/></field>"),
        "{form}"
    );
    let done = submit(&mut a, "a2", "announce", &sid, &[("announcement", &["Going down", "in 2 minutes"])]).await;
    assert!(done.contains("status='completed'"), "{done}");
    let m = b.expect_stanza("Announcement").await;
    assert!(m.contains("from='localhost'") && m.contains("<body>Going down\nin 2 minutes</body>"), "{m}");
}

#[tokio::test]
async fn sessions_cancel_and_bad_actions() {
    let (_srv, mut a, _b) = setup().await;
    let (_, sid) = execute(&mut a, "e1", "announce").await;
    let c = iq(
        &mut a,
        "c1",
        &format!("<command xmlns='{CMDS}' node='{ADMIN}announce' sessionid='{sid}' action='cancel'/>"),
    )
    .await;
    assert!(c.contains("status='canceled'"), "{c}");
    let after = submit(&mut a, "c2", "announce", &sid, &[("announcement", &["x"])]).await;
    assert!(after.contains("bad-sessionid"), "{after}");
    let (_, sid) = execute(&mut a, "e2", "announce").await;
    let next =
        iq(&mut a, "c3", &format!("<command xmlns='{CMDS}' node='{ADMIN}announce' sessionid='{sid}' action='next'/>"))
            .await;
    assert!(next.contains(&format!("<bad-action xmlns='{CMDS}'/>")), "{next}");
    let bogus =
        iq(&mut a, "c4", &format!("<command xmlns='{CMDS}' node='{ADMIN}announce' sessionid='{sid}' action='dance'/>"))
            .await;
    assert!(bogus.contains("malformed-action"), "{bogus}");
    let nopayload = iq(
        &mut a,
        "c5",
        &format!("<command xmlns='{CMDS}' node='{ADMIN}announce' sessionid='{sid}' action='complete'/>"),
    )
    .await;
    assert!(nopayload.contains("bad-payload"), "{nopayload}");
    let unknown = iq(&mut a, "c6", &format!("<command xmlns='{CMDS}' node='{ADMIN}shutdown' action='execute'/>")).await;
    assert!(unknown.contains("<item-not-found"), "{unknown}");
}

#[tokio::test]
async fn host_admins_administer_their_host_only() {
    let srv = start_server_with("[host.\"example.org\"]\nadmins = [\"boss@example.org\"]").await;
    let creds = xmppd::sasl::derive_credentials("pboss", 4096);
    srv.shared.store.create_account("boss", "example.org", &creds).unwrap();
    let (mut c, _) = TestClient::connect_starttls_to(srv.c2s, &srv.ca_path(), "example.org").await;
    c.scram("SCRAM-SHA-256", "boss", "pboss").await.unwrap();
    c.open().await;
    c.bind(Some("r")).await;
    let q = format!("<query xmlns='http://jabber.org/protocol/disco#items' node='{CMDS}'/>");
    c.send(&format!("<iq type='get' to='example.org' id='d1'>{q}</iq>")).await;
    assert!(c.expect_stanza("id='d1'").await.contains("node='http://jabber.org/protocol/admin#add-user'"));
    c.send(&format!("<iq type='get' to='localhost' id='d2'>{q}</iq>")).await;
    assert!(!c.expect_stanza("id='d2'").await.contains("<item"));
    let cmd = format!("<command xmlns='{CMDS}' node='{ADMIN}add-user' action='execute'/>");
    c.send(&format!("<iq type='set' to='example.org' id='e1'>{cmd}</iq>")).await;
    let got = c.expect_stanza("id='e1'").await;
    let sid = got.split("sessionid='").nth(1).unwrap().split('\'').next().unwrap().to_string();
    // An account of another host is not theirs to create.
    let x = "<x xmlns='jabber:x:data' type='submit'><field var='accountjid'><value>new@localhost</value></field>\
             <field var='password'><value>secret12</value></field></x>";
    c.send(&format!(
        "<iq type='set' to='example.org' id='s1'><command xmlns='{CMDS}' node='{ADMIN}add-user' sessionid='{sid}' action='complete'>{x}</command></iq>"
    ))
    .await;
    assert!(c.expect_stanza("id='s1'").await.contains("<forbidden"));
    assert!(srv.shared.store.get_credentials("new", "localhost").unwrap().is_none());
}
