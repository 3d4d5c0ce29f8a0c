//! A cluster of three `palaver` processes on one PostgreSQL and one NATS, as it runs in production: concurrent
//! senders on every node, a node killed with SIGKILL under load, NATS itself restarted. Every member records the seqs
//! it is delivered, and the checker asserts they are strictly increasing, gapless from where the member started, with
//! no repeat, and hold every acknowledged seq. Needs PostgreSQL (`TEST_DATABASE_URL`) and NATS (`TEST_NATS_URL` or a
//! server on 127.0.0.1:4222; the restart test starts a nats-server of its own); in CI all must be there.

use std::time::{Duration, Instant};

use palaver_integration_tests::TestServer;
use palaver_integration_tests::cluster::{
    backing, cluster_name, eventually, formed, metric, node_settings,
};
use palaver_integration_tests::member::{Member, account};
use palaver_integration_tests::pg::{self, PgDatabase};
use palaver_integration_tests::process::ServerProcess;

/// Three node processes, `node-1` to `node-3`.
async fn three_nodes(database: &PgDatabase, nats: &str) -> Vec<ServerProcess> {
    let name = cluster_name(database);
    let mut nodes = Vec::new();
    for n in 1..=3 {
        let id = format!("node-{n}");
        let settings = node_settings(&name, nats, &id, &[]);
        nodes.push(ServerProcess::on_postgres(database.url(), &settings).await);
    }
    formed(&nodes).await;
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_on_three_nodes_reach_every_member_on_every_node_in_order_once() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let nodes = three_nodes(&database, &nats).await;
    let mut members = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let token = account(node, &format!("member_{n}")).await;
        let mut member = Member::open(node, &token).await;
        if n == 0 {
            member.create("general").await;
        } else {
            assert_eq!(member.join("general").await, 0);
        }
        members.push(member);
    }
    // Each sender waits only for its own acks at the end: the three nodes' commits interleave.
    const EACH: usize = 40;
    for round in 0..EACH {
        for (n, member) in members.iter_mut().enumerate() {
            member
                .send("general", &format!("round {round} from node {n}"))
                .await;
        }
    }
    let mut acked = Vec::new();
    for (n, member) in members.iter_mut().enumerate() {
        for round in 0..EACH {
            let ack = member
                .answer_to(&format!("round {round} from node {n}"))
                .await;
            assert_eq!(ack["type"], "ack", "{ack}");
            acked.push(ack["seq"].as_i64().expect("a seq"));
        }
    }
    acked.sort_unstable();
    let total = (EACH * nodes.len()) as i64;
    assert_eq!(acked, (1..=total).collect::<Vec<_>>(), "gapless seqs");
    for member in &mut members {
        member.until_seq(total).await;
        member.ws.expect_nothing_before_sentinel().await;
        member.assert_delivered(1, total, &acked);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_clients_resume_on_another_node_and_its_users_leave_within_5_s() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let mut nodes = three_nodes(&database, &nats).await;
    let tokens = [
        account(&nodes[0], "victim").await,
        account(&nodes[1], "sender_b").await,
        account(&nodes[2], "sender_c").await,
    ];
    let mut victim = Member::open(&nodes[0], &tokens[0]).await;
    victim.create("general").await;
    let mut on_b = Member::open(&nodes[1], &tokens[1]).await;
    on_b.join("general").await;
    let mut on_c = Member::open(&nodes[2], &tokens[2]).await;
    on_c.join("general").await;
    on_b.presence_of("joined", "sender_c").await;
    on_c.ws.expect_nothing_before_sentinel().await;

    // Load: both survivors post, pipelined, before and after the kill.
    let mut acked = Vec::new();
    let mut sent = 0;
    for _ in 0..20 {
        post_pair(&mut on_b, &mut on_c, &mut sent).await;
    }
    // The victim has read part of it when its node dies.
    victim.until_seq(10).await;
    nodes[0].kill().await;
    let killed = Instant::now();
    for _ in 0..20 {
        post_pair(&mut on_b, &mut on_c, &mut sent).await;
    }
    // Its user leaves the survivors' presence within 5 s, once.
    for survivor in [&mut on_b, &mut on_c] {
        tokio::time::timeout(
            Duration::from_secs(5).saturating_sub(killed.elapsed()),
            survivor.presence_of("left", "victim"),
        )
        .await
        .unwrap_or_else(|_| panic!("the killed node's user was still present 5 s after the kill"));
    }
    // The victim resumes on node 3 from the last seq it saw.
    let resume_from = *victim.delivered.last().expect("it saw some");
    victim.reconnect(&nodes[2], &tokens[0]).await;
    victim.resume("general", resume_from).await;
    for _ in 0..10 {
        post_pair(&mut on_b, &mut on_c, &mut sent).await;
    }
    for n in 0..sent {
        let member = if n % 2 == 0 { &mut on_b } else { &mut on_c };
        let ack = member.answer_to(&format!("load {n}")).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        acked.push(ack["seq"].as_i64().expect("a seq"));
    }
    acked.sort_unstable();
    let total = sent as i64;
    assert_eq!(acked, (1..=total).collect::<Vec<_>>());
    for member in [&mut victim, &mut on_b, &mut on_c] {
        member.until_seq(total).await;
        member.ws.expect_nothing_before_sentinel().await;
        // The victim's deliveries from both sockets together: still 1..=total, each once.
        member.assert_delivered(1, total, &acked);
    }
    // The survivors saw it come back, once.
    on_b.presence_of("joined", "victim").await;
    on_c.presence_of("joined", "victim").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stalled_past_the_silence_keeps_its_sockets_and_rejoins_everyones_presence() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let nodes = three_nodes(&database, &nats).await;
    let sleeper_token = account(&nodes[0], "sleeper").await;
    let watcher_token = account(&nodes[1], "watcher").await;
    let mut sleeper = Member::open(&nodes[0], &sleeper_token).await;
    sleeper.create("general").await;
    let mut watcher = Member::open(&nodes[1], &watcher_token).await;
    watcher.join("general").await;
    sleeper.presence_of("joined", "watcher").await;

    // The whole process is stopped for longer than the silence after which the others count it dead (3 s): as a
    // node whose CPU is taken away, not one cut from NATS.
    nodes[0].signal("STOP").await;
    watcher.presence_of("left", "sleeper").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nodes[0].signal("CONT").await;

    // It did not count itself cut off: its socket is open and posts, and everyone gets the message.
    let seq = sleeper.post("general", "awake again").await;
    watcher.until_seq(seq).await;
    sleeper.until_seq(seq).await;
    assert!(
        !nodes[0].log().contains("closing its sockets (1012)"),
        "the stalled node closed its sockets:\n{}",
        nodes[0].log()
    );
    // The others hear it again and count it, and its user, back in.
    formed(&nodes).await;
    eventually(
        Duration::from_secs(5),
        "the sleeper counted online again",
        || async {
            let members: serde_json::Value = reqwest::Client::new()
                .get(nodes[1].url("/api/rooms/general/members"))
                .bearer_auth(&watcher_token)
                .send()
                .await
                .expect("members asked")
                .json()
                .await
                .unwrap_or_default();
            members
                .as_array()
                .into_iter()
                .flatten()
                .any(|member| member["username"] == "sleeper" && member["online"] == true)
        },
    )
    .await;
}

/// Sends the next load message from each of the two survivors, pipelined (their acks are read at the end).
async fn post_pair(on_b: &mut Member, on_c: &mut Member, sent: &mut usize) {
    for member in [on_b, on_c] {
        member.send("general", &format!("load {sent}")).await;
        *sent += 1;
    }
}

/// A nats-server of this test's own on a free port, so that it can be restarted without disturbing other tests.
struct OwnNats {
    port: u16,
    child: Option<tokio::process::Child>,
}

impl OwnNats {
    /// Starts one, or `None` (outside CI) when there is no nats-server binary.
    async fn start() -> Option<OwnNats> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut own = OwnNats { port, child: None };
        own.spawn().await?;
        Some(own)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) -> Option<()> {
        let binary = [
            "nats-server",
            "/usr/sbin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|candidate| {
            std::process::Command::new(candidate)
                .arg("--version")
                .output()
                .is_ok()
        });
        let Some(binary) = binary else {
            let in_ci =
                std::env::var("CI").is_ok_and(|ci| ci.eq_ignore_ascii_case("true") || ci == "1");
            assert!(!in_ci, "CI=true but no nats-server binary to restart");
            eprintln!("NATS restart test skipped: no nats-server binary");
            return None;
        };
        let child = tokio::process::Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(())
    }

    async fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("nats-server is killed");
        }
        self.spawn().await.expect("the binary is still there");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_never_stop_while_nats_restarts_and_delivery_over_it_resumes() {
    let Some(database) = pg::fresh_database_url().await else {
        return;
    };
    let Some(mut nats) = OwnNats::start().await else {
        return;
    };
    let url = nats.url();
    // Longer than the restart takes: this test is about the database carrying acks while NATS is away, not about
    // nodes counting themselves dead (tested in cluster.rs).
    let name = cluster_name(&database);
    let patient = [("PALAVER_CLUSTER_DEAD_AFTER_MS", "30000")];
    let a_settings = node_settings(&name, &url, "node-a", &patient);
    let b_settings = node_settings(&name, &url, "node-b", &patient);
    let a = TestServer::start_on_postgres(database.url(), &a_settings).await;
    let b = TestServer::start_on_postgres(database.url(), &b_settings).await;
    formed(&[&a, &b]).await;
    let mut sender = Member::open(&a, &account(&a, "john_doe").await).await;
    sender.create("general").await;
    let mut reader = Member::open(&b, &account(&b, "jane_doe").await).await;
    reader.join("general").await;
    let mut acked = Vec::new();
    for n in 0..10 {
        acked.push(sender.post("general", &format!("before {n}")).await);
    }
    reader.until_seq(10).await;

    nats.restart().await;
    // Every post is acknowledged in time all through the restart: the commit is the ack point.
    for n in 0..10 {
        let posted = tokio::time::timeout(
            Duration::from_secs(5),
            sender.post("general", &format!("during {n}")),
        )
        .await
        .expect("acknowledged while NATS restarts");
        acked.push(posted);
    }
    // What node B missed meanwhile is caught up from the database.
    reader.until_seq(20).await;
    // And once both are back on NATS, messages cross over it again (not only by the position check).
    formed(&[&a, &b]).await;
    let before = metric(&b, "palaver_cluster_received_total").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while metric(&b, "palaver_cluster_received_total").await == before {
        assert!(
            Instant::now() < deadline,
            "no room event crossed NATS after the restart"
        );
        acked.push(sender.post("general", &format!("after {n}")).await);
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = *acked.last().expect("posted");
    reader.until_seq(last).await;
    reader.ws.expect_nothing_before_sentinel().await;
    reader.assert_delivered(1, last, &acked);
    sender.until_seq(last).await;
    sender.assert_delivered(1, last, &acked);
}
