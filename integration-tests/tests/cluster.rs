//! Several Palaver nodes on one PostgreSQL and one NATS: room events cross nodes, every member on every node gets
//! each room's messages in seq order exactly once, and what NATS loses (a node cut off from it) is repaired from the
//! database. Needs PostgreSQL (`TEST_DATABASE_URL`) and NATS (`TEST_NATS_URL` or a server on 127.0.0.1:4222); in CI
//! both must be there.

use std::time::Duration;

use palaver_integration_tests::TestServer;
use palaver_integration_tests::cluster::{
    backing, cluster_name, eventually, formed, metric, node_settings,
};
use palaver_integration_tests::member::{Member, account};
use palaver_integration_tests::nats;
use palaver_integration_tests::pg::{self, PgDatabase};
use palaver_integration_tests::proxy::{Proxy, through};
use palaver_integration_tests::ws::{Connect, FRAME_TIMEOUT};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A node of the cluster on `database` and `nats`, named `node`.
async fn node(database: &PgDatabase, nats: &str, node: &str) -> TestServer {
    node_with(database, nats, node, &[]).await
}

/// A node like [`node`], with more settings.
async fn node_with(
    database: &PgDatabase,
    nats: &str,
    node: &str,
    extra: &[(&str, &str)],
) -> TestServer {
    let name = cluster_name(database);
    let settings = node_settings(&name, nats, node, extra);
    TestServer::start_on_postgres(database.url(), &settings).await
}

/// How many users `server` says are online in `room` (`members_online` in `GET /api/rooms`).
async fn online(server: &TestServer, token: &str, room: &str) -> i64 {
    let rooms: Value = reqwest::Client::new()
        .get(server.url("/api/rooms"))
        .bearer_auth(token)
        .send()
        .await
        .expect("rooms listed")
        .json()
        .await
        .expect("a JSON list");
    let rooms = rooms.as_array().cloned().unwrap_or_default();
    rooms
        .iter()
        .find(|listed| listed["name"] == room)
        .and_then(|listed| listed["members_online"].as_i64())
        .unwrap_or_else(|| panic!("{room} is not listed: {rooms:?}"))
}

#[tokio::test]
async fn messages_cross_nodes_in_seq_order_each_once() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let b = node(&database, &nats, "node-b").await;
    let mut on_a = Member::open(&a, &account(&a, "john_doe").await).await;
    on_a.create("general").await;
    let mut on_b = Member::open(&b, &account(&b, "jane_doe").await).await;
    assert_eq!(on_b.join("general").await, 0);
    // The joined notice crosses to node A.
    let joined = on_a.ws.expect_json("joined").await;
    assert_eq!(joined["username"], "jane_doe");
    // They post in turn, each waiting for its ack: every seq reaches both nodes in order.
    for n in 0..10 {
        let sender = if n % 2 == 0 { &mut on_a } else { &mut on_b };
        assert_eq!(sender.post("general", &format!("turn {n}")).await, n + 1);
    }
    let seen_on_a = on_a.through(1, 10).await;
    let seen_on_b = on_b.through(1, 10).await;
    assert_eq!(seen_on_a, seen_on_b, "the same messages, the same seqs");
    // Then both at once, pipelined: the nodes' commits interleave, and still each sees 11..=50 in order.
    for n in 0..20 {
        on_a.send("general", &format!("burst {n} from node a"))
            .await;
        on_b.send("general", &format!("burst {n} from node b"))
            .await;
    }
    let burst_on_a = on_a.through(11, 50).await;
    let burst_on_b = on_b.through(11, 50).await;
    assert_eq!(burst_on_a, burst_on_b);
    // Each sender's last ack follows its own message; after it, nothing more may come.
    assert_eq!(on_a.answer_to("burst 19 from node a").await["type"], "ack");
    assert_eq!(on_b.answer_to("burst 19 from node b").await["type"], "ack");
    on_a.ws.expect_nothing_before_sentinel().await;
    on_b.ws.expect_nothing_before_sentinel().await;
}

#[tokio::test]
async fn what_a_node_cut_off_from_nats_missed_is_read_from_the_database() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    // Node B reaches NATS through a proxy the test can cut.
    let proxy = Proxy::start(nats::address(&nats).expect("a nats:// URL")).await;
    // Counting itself dead (and closing its sockets, tested below) is not what this test is about.
    let b = node_with(
        &database,
        &through(&nats, proxy.addr()),
        "node-b",
        &[("PALAVER_CLUSTER_DEAD_AFTER_MS", "60000")],
    )
    .await;
    let mut on_a = Member::open(&a, &account(&a, "john_doe").await).await;
    on_a.create("general").await;
    let mut on_b = Member::open(&b, &account(&b, "jane_doe").await).await;
    on_b.join("general").await;
    on_a.post("general", "before the cut").await;
    on_b.through(1, 1).await;

    proxy.cut();
    // Node B hears nothing from NATS now, and the last of these has no successor to reveal the gap: the position
    // check finds them in the database.
    for n in 2..=4 {
        assert_eq!(
            on_a.post("general", &format!("during the cut {n}")).await,
            n
        );
    }
    let caught_up = on_b.through(2, 4).await;
    assert_eq!(caught_up[2]["content"], "during the cut 4");
    // Node B's own posts are acknowledged all the while: the database is the ack point.
    assert_eq!(on_b.post("general", "from the cut-off node").await, 5);
    on_b.through(5, 5).await;
    on_a.through(1, 5).await;

    proxy.heal();
    // Once NATS is back (the gauge says so), messages flow over it again.
    eventually(
        Duration::from_secs(20),
        "node B reconnected to NATS",
        || async { metric(&b, "palaver_nats_connected").await == 1.0 },
    )
    .await;
    on_a.post("general", "after the heal").await;
    on_b.through(6, 6).await;
    on_b.ws.expect_nothing_before_sentinel().await;
}

#[tokio::test]
async fn several_sockets_on_one_node_get_each_remote_message_once() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let b = node(&database, &nats, "node-b").await;
    let mut on_a = Member::open(&a, &account(&a, "john_doe").await).await;
    on_a.create("general").await;
    let mut readers = Vec::new();
    for k in 0..4 {
        let token = account(&b, &format!("reader_{k}")).await;
        let mut reader = Member::open(&b, &token).await;
        reader.join("general").await;
        readers.push(reader);
    }
    for n in 1..=5 {
        on_a.post("general", &format!("to every reader {n}")).await;
    }
    for reader in &mut readers {
        reader.through(1, 5).await;
        reader.ws.expect_nothing_before_sentinel().await;
    }
}

#[tokio::test]
async fn a_node_whose_nats_is_unreachable_is_not_ready_and_soon_refuses_sockets() {
    let Some(database) = pg::fresh_database_url().await else {
        return;
    };
    // A port nothing listens on: take one and let it go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let url = format!("nats://{closed}");
    let node =
        TestServer::start_on_postgres(database.url(), &[("PALAVER_NATS_URL", url.as_str())]).await;
    let readyz = || async {
        let answer = tokio::time::timeout(FRAME_TIMEOUT, reqwest::get(node.url("/readyz")))
            .await
            .expect("an answer in time")
            .expect("readyz answers");
        let status = answer.status();
        (status, answer.json::<Value>().await.expect("a JSON body"))
    };
    let (status, body) = readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        (&body["status"], &body["database"], &body["nats"]),
        (&json!("unavailable"), &json!("ok"), &json!("unavailable")),
        "{body}"
    );
    let health = reqwest::get(node.url("/healthz"))
        .await
        .expect("healthz answers");
    assert_eq!(health.status(), StatusCode::OK, "the process itself runs");
    // Not hearing itself for 3 s, the node knows it is out of the cluster, says so, and takes no sockets.
    let token = account(&node, "john_doe").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    loop {
        let (_, body) = readyz().await;
        if body["cluster"] == "unavailable" {
            assert_eq!(
                body,
                json!({"status": "unavailable", "database": "ok", "nats": "unavailable", "cluster": "unavailable"})
            );
            break;
        }
        assert_eq!(body["cluster"], "ok", "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "still in the cluster after 6 s without NATS"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, refusal) = Connect::bearer(&token).refusal(&node).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{refusal}");
    let refusal: Value = serde_json::from_str(&refusal).expect("a JSON error");
    assert_eq!(refusal["code"], "unavailable", "{refusal}");
}

#[tokio::test]
async fn a_room_deleted_on_one_node_is_left_on_every_node() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let b = node(&database, &nats, "node-b").await;
    let mut owner = Member::open(&a, &account(&a, "john_doe").await).await;
    owner.create("general").await;
    let mut guest = Member::open(&b, &account(&b, "jane_doe").await).await;
    guest.join("general").await;
    owner
        .ws
        .send_cmd("delete_room", json!({"name": "general"}), Some("delete"))
        .await;
    let deleted = guest.ws.expect_json("room_deleted").await;
    assert_eq!(
        (&deleted["room"], &deleted["by"]),
        (&json!("general"), &json!("john_doe"))
    );
    // Jane's socket on node B is no longer in the room: a post there is refused.
    guest
        .ws
        .send_cmd(
            "room_message",
            json!({"room": "general", "content": "anyone?"}),
            Some("late"),
        )
        .await;
    let refused = guest.answer_to("late").await;
    assert_eq!(refused["code"], "room_not_found", "{refused}");
}

#[tokio::test]
async fn presence_is_counted_over_every_node_once_per_user() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let b = node(&database, &nats, "node-b").await;
    formed(&[&a, &b]).await;
    let john_token = account(&a, "john_doe").await;
    let jane_token = account(&b, "jane_doe").await;
    let mut john = Member::open(&a, &john_token).await;
    john.create("general").await;
    let mut jane_on_b = Member::open(&b, &jane_token).await;
    jane_on_b.join("general").await;
    john.presence_of("joined", "jane_doe").await;
    // Node A counts jane (on B) among the room's users, and B counts john (on A).
    eventually(
        Duration::from_secs(3),
        "node A sees jane online",
        || async { online(&a, &john_token, "general").await == 2 },
    )
    .await;
    assert_eq!(online(&b, &jane_token, "general").await, 2);
    // Jane's second socket, on node A, is not news to anyone: no second "joined".
    let mut jane_on_a = Member::open(&a, &jane_token).await;
    jane_on_a.join("general").await;
    // Her socket on B closes; she is still in the room on A: no "left".
    jane_on_b.close().await;
    john.ws.expect_nothing_before_sentinel().await;
    eventually(
        Duration::from_secs(3),
        "node B forgets jane's socket there",
        || async { online(&b, &john_token, "general").await == 2 },
    )
    .await;
    // The presence john's sentinel saw: nothing about jane.
    assert!(john.presence.is_empty(), "{:?}", john.presence);
    // Her last socket closes: "left", once.
    jane_on_a.close().await;
    john.presence_of("left", "jane_doe").await;
    john.ws.expect_nothing_before_sentinel().await;
    assert!(john.presence.is_empty(), "{:?}", john.presence);
    eventually(
        Duration::from_secs(3),
        "both nodes count john alone",
        || async {
            online(&a, &john_token, "general").await == 1
                && online(&b, &john_token, "general").await == 1
        },
    )
    .await;
}

#[tokio::test]
async fn the_per_user_connection_cap_counts_every_node() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let cap = [("PALAVER_WS_CONNECTIONS_PER_USER", "2")];
    let a = node_with(&database, &nats, "node-a", &cap).await;
    let b = node_with(&database, &nats, "node-b", &cap).await;
    formed(&[&a, &b]).await;
    let token = account(&a, "jane_doe").await;
    let _on_a = Member::open(&a, &token).await;
    let on_b = Member::open(&b, &token).await;
    // Once each node has heard of the other's socket, a third socket is refused on either node.
    for server in [&a, &b] {
        eventually(Duration::from_secs(3), "a third socket is refused", || async {
            matches!(
                Connect::bearer(&token).json().try_open(server).await,
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) if response.status() == 429
            )
        })
        .await;
    }
    Connect::bearer(&token)
        .assert_refused(
            &b,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many open connections for this user",
        )
        .await;
    // Her socket on B closes: a place is free again, on A too.
    on_b.close().await;
    eventually(
        Duration::from_secs(3),
        "a second socket opens on A",
        || async { Connect::bearer(&token).json().try_open(&a).await.is_ok() },
    )
    .await;
}

#[tokio::test]
async fn a_logout_on_one_node_closes_the_tokens_sockets_on_every_node() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let b = node(&database, &nats, "node-b").await;
    let c = node(&database, &nats, "node-c").await;
    formed(&[&a, &b, &c]).await;
    let token = account(&a, "jane_doe").await;
    let other = account(&a, "john_doe").await;
    let mut on_b = Member::open(&b, &token).await;
    let mut on_c = Member::open(&c, &token).await;
    let mut others = Member::open(&b, &other).await;
    let me = |server: &TestServer, token: &str| {
        reqwest::Client::new()
            .get(server.url("/api/me"))
            .bearer_auth(token)
            .send()
    };
    // B and C have just found the token not revoked, an answer their caches trust for two seconds.
    for server in [&b, &c] {
        assert_eq!(
            me(server, &token).await.expect("me").status(),
            StatusCode::OK
        );
    }
    let logout = reqwest::Client::new()
        .post(a.url("/api/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("logout sent");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let closed = std::time::Instant::now();
    for socket in [&mut on_b, &mut on_c] {
        tokio::time::timeout(Duration::from_secs(1), socket.ws.expect_close(1008))
            .await
            .expect("closed within a second");
    }
    let took = closed.elapsed();
    // Every node refuses the token at once: their caches learned the revocation with the close.
    for server in [&a, &b, &c] {
        assert_eq!(
            me(server, &token).await.expect("me").status(),
            StatusCode::UNAUTHORIZED,
            "{took:?} after the logout"
        );
    }
    // The same user's other token, and other users, are untouched.
    others.ws.expect_nothing_before_sentinel().await;
    assert_eq!(me(&b, &other).await.expect("me").status(), StatusCode::OK);
}

#[tokio::test]
async fn a_ticket_from_one_node_opens_one_socket_on_another_and_then_none_anywhere() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let b = node(&database, &nats, "node-b").await;
    let c = node(&database, &nats, "node-c").await;
    let token = account(&a, "jane_doe").await;
    let issued: Value = reqwest::Client::new()
        .post(a.url("/api/ws-ticket"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("ticket asked")
        .json()
        .await
        .expect("a JSON ticket");
    let ticket = issued["ticket"].as_str().expect("a ticket").to_owned();

    let mut on_c = Connect::anonymous().ticket(&ticket).json().open(&c).await;
    on_c.send_cmd("create_room", json!({"name": "tickets"}), Some("c1"))
        .await;
    on_c.expect_json("room_created").await;
    on_c.expect_json("welcome").await;
    on_c.send_cmd("list_members", json!({"name": "tickets"}), Some("l1"))
        .await;
    let members = on_c.expect_json("members").await;
    assert_eq!(
        members["members"][0]["username"], "jane_doe",
        "the ticket's socket is jane's: {members}"
    );

    for server in [&a, &b, &c] {
        Connect::anonymous()
            .ticket(&ticket)
            .assert_refused(
                server,
                StatusCode::UNAUTHORIZED,
                "invalid_ticket",
                "the ticket is invalid, used or expired",
            )
            .await;
    }
}

#[tokio::test]
async fn a_node_cut_off_from_nats_closes_its_sockets_and_takes_them_back_after_the_heal() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let proxy = Proxy::start(nats::address(&nats).expect("a nats:// URL")).await;
    let b = node(&database, &through(&nats, proxy.addr()), "node-b").await;
    formed(&[&a, &b]).await;
    let john_token = account(&a, "john_doe").await;
    let jane_token = account(&b, "jane_doe").await;
    let mut john = Member::open(&a, &john_token).await;
    john.create("general").await;
    let mut jane = Member::open(&b, &jane_token).await;
    jane.join("general").await;
    john.presence_of("joined", "jane_doe").await;
    let mut acked = vec![john.post("general", "before the cut").await];
    jane.until_seq(1).await;

    proxy.cut();
    let cut = std::time::Instant::now();
    // Node A stops hearing B and says jane left; B stops hearing itself and closes her socket with 1012.
    john.presence_of("left", "jane_doe").await;
    let left_after = cut.elapsed();
    tokio::time::timeout(Duration::from_secs(8), jane.ws.expect_close(1012))
        .await
        .expect("the cut-off node closes its sockets");
    assert!(
        left_after < Duration::from_secs(5),
        "jane left A's presence {left_after:?} after the cut"
    );
    for n in 0..3 {
        acked.push(john.post("general", &format!("during the cut {n}")).await);
    }
    // While cut off, B refuses sockets and is not ready.
    let (status, _) = Connect::bearer(&jane_token).json().refusal(&b).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    proxy.heal();
    eventually(Duration::from_secs(20), "node B is ready again", || async {
        reqwest::get(b.url("/readyz"))
            .await
            .is_ok_and(|answer| answer.status() == StatusCode::OK)
    })
    .await;
    // Jane comes back to B where she left off: what was sent meanwhile, then live, each once.
    jane.reconnect(&b, &jane_token).await;
    assert_eq!(jane.resume("general", 1).await, 4);
    john.presence_of("joined", "jane_doe").await;
    acked.push(john.post("general", "after the heal").await);
    jane.until_seq(5).await;
    jane.assert_delivered(1, 5, &acked);
    john.until_seq(5).await;
    john.assert_delivered(1, 5, &acked);
}

/// Sends `leave_room` for `room` on `member`'s socket and asserts that it was left.
async fn leave(member: &mut Member, room: &str) {
    member
        .ws
        .send_cmd("leave_room", json!({"name": room}), Some("leave"))
        .await;
    let left = member.answer_to("leave").await;
    assert_eq!(
        (&left["type"], &left["room"]),
        (&json!("left_room"), &json!(room)),
        "{left}"
    );
}

/// Asserts that a post to `room` on `member`'s socket is refused: the socket is not in the room.
async fn assert_not_in_room(member: &mut Member, room: &str) {
    member
        .ws
        .send_cmd(
            "room_message",
            json!({"room": room, "content": "still here?"}),
            Some("not in room"),
        )
        .await;
    let refused = member.answer_to("not in room").await;
    assert_eq!(
        (&refused["code"], &refused["message"]),
        (&json!("forbidden"), &json!("you are not in that room")),
        "{refused}"
    );
}

/// The members of `room` as `member` lists them (`list_members`), as (username, online).
async fn members(member: &mut Member, room: &str) -> Vec<(String, bool)> {
    member
        .ws
        .send_cmd("list_members", json!({"name": room}), Some("members"))
        .await;
    let listed = member.answer_to("members").await;
    assert_eq!(listed["type"], "members", "{listed}");
    listed["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let name = m["username"].as_str().unwrap_or_default().to_owned();
            (name, m["online"] == true)
        })
        .collect()
}

#[tokio::test]
async fn leaving_on_one_node_unsubscribes_the_users_sockets_on_every_node() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let b = node(&database, &nats, "node-b").await;
    formed(&[&a, &b]).await;
    let john_token = account(&a, "john_doe").await;
    let mary_token = account(&b, "mary_doe").await;
    let jane_token = account(&a, "jane_doe").await;
    let mut john = Member::open(&a, &john_token).await;
    john.create("general").await;
    let mut mary = Member::open(&b, &mary_token).await;
    mary.join("general").await;
    john.presence_of("joined", "mary_doe").await;
    let mut jane_on_a = Member::open(&a, &jane_token).await;
    jane_on_a.join("general").await;
    john.presence_of("joined", "jane_doe").await;
    mary.presence_of("joined", "jane_doe").await;
    // Node B knows of her socket on A before she opens one there (so that one is no news).
    eventually(
        Duration::from_secs(3),
        "node B sees jane online",
        || async { online(&b, &mary_token, "general").await == 3 },
    )
    .await;
    let mut jane_on_b = Member::open(&b, &jane_token).await;
    jane_on_b.join("general").await;

    leave(&mut jane_on_a, "general").await;
    // Posted on A after the leave, this message travels behind it on the room's subject: node B has unsubscribed
    // jane's socket there before it arrives. Mary, on B, getting it is the point where jane's socket would have too.
    let first = john.post("general", "after jane left, from node a").await;
    mary.until_seq(first).await;
    jane_on_b.ws.expect_nothing_before_sentinel().await;
    // Neither node counts her online: node B's presence no longer holds her socket there.
    eventually(
        Duration::from_secs(3),
        "neither node counts jane online",
        || async {
            online(&a, &john_token, "general").await == 2
                && online(&b, &mary_token, "general").await == 2
        },
    )
    .await;
    // A message posted on B itself does not reach her socket there either.
    let second = mary.post("general", "after jane left, from node b").await;
    john.through(first, second).await;
    mary.through(first, second).await;
    jane_on_b.ws.expect_nothing_before_sentinel().await;
    assert!(jane_on_b.delivered.is_empty(), "{:?}", jane_on_b.delivered);
    // Her socket on B is out of the room: it may not post there.
    assert_not_in_room(&mut jane_on_b, "general").await;
    // The member lists on both nodes: john and mary, online; jane is no member any more.
    let expected = vec![("john_doe".to_owned(), true), ("mary_doe".to_owned(), true)];
    assert_eq!(members(&mut john, "general").await, expected);
    assert_eq!(members(&mut mary, "general").await, expected);
    // "left" was said once, to each of the others.
    john.presence_of("left", "jane_doe").await;
    mary.presence_of("left", "jane_doe").await;
    john.ws.expect_nothing_before_sentinel().await;
    mary.ws.expect_nothing_before_sentinel().await;
    assert!(john.presence.is_empty(), "{:?}", john.presence);
    assert!(mary.presence.is_empty(), "{:?}", mary.presence);
}

#[tokio::test]
async fn leaving_from_a_node_where_the_user_has_no_socket_in_the_room_unsubscribes_the_others() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let b = node(&database, &nats, "node-b").await;
    formed(&[&a, &b]).await;
    let john_token = account(&a, "john_doe").await;
    let jane_token = account(&a, "jane_doe").await;
    let mut john = Member::open(&b, &john_token).await;
    john.create("general").await;
    let mut jane_on_b = Member::open(&b, &jane_token).await;
    jane_on_b.join("general").await;
    john.presence_of("joined", "jane_doe").await;
    // Her socket on A is in no room; she leaves the room from there by name.
    let mut jane_on_a = Member::open(&a, &jane_token).await;
    leave(&mut jane_on_a, "general").await;
    john.presence_of("left", "jane_doe").await;
    let seq = john.post("general", "after jane left").await;
    john.through(seq, seq).await;
    jane_on_b.ws.expect_nothing_before_sentinel().await;
    assert!(jane_on_b.delivered.is_empty(), "{:?}", jane_on_b.delivered);
    assert_not_in_room(&mut jane_on_b, "general").await;
    eventually(
        Duration::from_secs(3),
        "neither node counts jane online",
        || async {
            online(&a, &jane_token, "general").await == 1
                && online(&b, &john_token, "general").await == 1
        },
    )
    .await;
}

#[tokio::test]
async fn a_direct_room_opened_on_one_node_reaches_the_other_users_sockets_on_every_node() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let b = node(&database, &nats, "node-b").await;
    formed(&[&a, &b]).await;
    let mut john = Member::open(&a, &account(&a, "john_doe").await).await;
    let jane_token = account(&b, "jane_doe").await;
    let mut jane_on_b = Member::open(&b, &jane_token).await;
    let mut jane_on_a = Member::open(&a, &jane_token).await;
    john.ws
        .send_cmd("open_dm", json!({"username": "jane_doe"}), Some("o"))
        .await;
    let opened = john.answer_to("o").await;
    let room = "dm:jane_doe:john_doe";
    assert_eq!(opened["room"], room, "{opened}");
    // Jane's sockets on both nodes hear of it and are subscribed: a message crosses to each.
    for jane in [&mut jane_on_b, &mut jane_on_a] {
        let told = jane.ws.expect_json("dm_opened").await;
        assert_eq!(
            (&told["room"], &told["with"]),
            (&json!(room), &json!("john_doe"))
        );
    }
    assert_eq!(john.post(room, "across the cluster").await, 1);
    for jane in [&mut jane_on_b, &mut jane_on_a] {
        jane.until_seq(1).await;
        assert_eq!(jane.delivered, vec![1]);
    }
    // And back: jane on node B answers, john on node A receives it after his own.
    assert_eq!(jane_on_b.post(room, "hello from b").await, 2);
    john.until_seq(2).await;
    assert_eq!(john.delivered, vec![1, 2]);
}

#[tokio::test]
async fn a_read_point_moved_on_one_node_reaches_the_users_sockets_and_the_room_on_another() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let b = node(&database, &nats, "node-b").await;
    formed(&[&a, &b]).await;
    let mut john = Member::open(&b, &account(&b, "john_doe").await).await;
    john.create("general").await;
    let jane_token = account(&a, "jane_doe").await;
    let mut phone = Member::open(&a, &jane_token).await;
    let mut laptop = Member::open(&b, &jane_token).await;
    phone.join("general").await;
    laptop.join("general").await;
    for n in 1..=3 {
        assert_eq!(john.post("general", &format!("news {n}")).await, n);
    }
    phone.until_seq(3).await;
    laptop.until_seq(3).await;
    phone
        .ws
        .send_cmd("mark_read", json!({"room": "general", "seq": 3}), Some("r"))
        .await;
    assert_eq!(phone.answer_to("r").await["seq"], 3);
    // The laptop, on the other node, hears the read point; john there hears the receipt.
    let read = loop {
        let frame = laptop.ws.next_json().await;
        if frame["type"] == "read" {
            break frame;
        }
    };
    assert_eq!(read, json!({"type": "read", "room": "general", "seq": 3}));
    let receipt = loop {
        let frame = john.ws.next_json().await;
        if frame["type"] == "receipt" {
            break frame;
        }
    };
    assert_eq!(
        receipt,
        json!({"type": "receipt", "room": "general", "username": "jane_doe", "seq": 3})
    );
}

#[tokio::test]
async fn on_a_clustered_node_the_senders_own_message_comes_before_its_ack() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let b = node(&database, &nats, "node-b").await;
    formed(&[&a, &b]).await;
    let mut john = Member::open(&a, &account(&a, "john_doe").await).await;
    john.create("general").await;
    let mut jane = Member::open(&b, &account(&b, "jane_doe").await).await;
    jane.join("general").await;
    // PROTOCOL §6.1: on the sending connection the message frame comes before its ack, on every node; a clustered
    // node orders its entries in a task of its own, which the ack must wait for. Both pipeline at once, so that
    // task is busy with the other node's entries too.
    for n in 1..=40 {
        jane.ws
            .send_cmd(
                "room_message",
                json!({"room": "general", "content": format!("jane {n}")}),
                Some(&format!("j{n}")),
            )
            .await;
        john.ws
            .send_cmd(
                "room_message",
                json!({"room": "general", "content": format!("john {n}")}),
                Some(&format!("o{n}")),
            )
            .await;
    }
    let mut seen = std::collections::HashSet::new();
    let mut acks = 0;
    while acks < 40 {
        let frame = jane.ws.next_json().await;
        match frame["type"].as_str() {
            Some("message") => {
                seen.insert(frame["seq"].as_i64().expect("a seq"));
            }
            Some("ack") => {
                acks += 1;
                let seq = frame["seq"].as_i64().expect("a seq");
                assert!(
                    seen.contains(&seq),
                    "the ack of {seq} came before its message: {frame}"
                );
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }
    john.until_seq(80).await;
}
