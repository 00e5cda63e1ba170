//! The probe check-type matrix against fake loopback backends: for each
//! kind, a healthy backend passes and a broken one fails with a reason,
//! and nothing takes longer than its timeout. Needs root for ping (raw
//! sockets) and the private network namespace.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lvs_probe::{check, Check, CheckOutcome, Job, Scheduler, Target, Virtual};
use lvs_tests::fake;

/// Timeout of the failing cases: short, and every bound below derives from it.
const T: Duration = Duration::from_secs(1);
/// What a timed-out check may take beyond T (scheduling, process kill).
const SLACK: Duration = Duration::from_millis(500);

fn target(a: SocketAddr) -> Target {
    Target::new(a.ip(), a.port())
}

async fn run_on(spec: &str, t: &Target) -> (CheckOutcome, Duration) {
    let c = Check::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    let start = Instant::now();
    let o = check(t, &c, T).await;
    let took = start.elapsed();
    assert!(took < T + SLACK, "{spec} against {t} took {took:?}, over the {T:?} bound");
    (o, took)
}

async fn run(spec: &str, a: SocketAddr) -> CheckOutcome {
    run_on(spec, &target(a)).await.0
}

#[track_caller]
fn up(o: CheckOutcome) {
    assert_eq!(o, CheckOutcome::Up);
}

#[track_caller]
fn down(o: CheckOutcome, want: &str) {
    match o {
        CheckOutcome::Down(r) => assert!(r.contains(want), "reason {r:?} does not mention {want:?}"),
        CheckOutcome::Up => panic!("expected down ({want}), got up"),
    }
}

/// A silent backend must fail by the timeout, not sooner and not much later.
async fn times_out(spec: &str, a: SocketAddr) {
    let (o, took) = run_on(spec, &target(a)).await;
    down(o, "timeout after 1s");
    assert!(took >= T - Duration::from_millis(50), "{spec}: timed out early, after {took:?}");
}

#[tokio::test]
async fn on_and_off() {
    let a = fake::closed_port("127.0.0.1");
    up(run("on", a).await);
    up(run("negotiate service=none", a).await);
    down(run("off", a).await, "check is off");
}

#[tokio::test]
async fn connect() {
    let (a, seen) = fake::tcp_accept_and_close("127.0.0.1");
    up(run("connect", a).await);
    let (a6, _) = fake::tcp_accept_and_close("::1");
    up(run("connect", a6).await);
    down(run("connect", fake::closed_port("127.0.0.1")).await, "connect refused");

    // checkport: the service port is closed, the check port is not.
    let closed = fake::closed_port("127.0.0.1");
    let t = Target { checkport: Some(a.port()), ..Target::new(a.ip(), closed.port()) };
    up(run_on("connect", &t).await.0);

    // Source address binding.
    let t = Target { source: Some("127.0.0.2".parse().unwrap()), ..target(a) };
    up(run_on("connect", &t).await.0);
    assert!(
        fake::eventually(Duration::from_secs(2), || seen
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.ip().to_string() == "127.0.0.2")),
        "no connection came from 127.0.0.2: {:?}",
        seen.lock().unwrap()
    );
}

#[tokio::test]
async fn http() {
    let (a, seen) = fake::http("127.0.0.1", 200, "<html>test page</html>");
    up(run("http request=/index.html receive=test", a).await);
    up(run("http request=/index.html receive=test virtualhost=www.test.example", a).await);
    up(run("http method=HEAD", a).await);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].request_line, "GET /index.html HTTP/1.1");
        // One request per connection, said so: the real closes first and
        // its TIME_WAIT stays off the director.
        assert_eq!(seen[0].connection.as_deref(), Some("close"));
        assert_eq!(seen[1].host.as_deref(), Some("www.test.example"));
        assert!(seen[2].request_line.starts_with("HEAD / "));
    }
    // The query goes out as written (the URL is parsed once per spec and
    // only its host and port change per real).
    up(run("http request=/status?full=1&a=%20b", a).await);
    assert_eq!(seen.lock().unwrap().last().unwrap().request_line, "GET /status?full=1&a=%20b HTTP/1.1");
    // MD5 of the body, as keepalived's genhash prints it.
    up(run("http digest=ada1c70754a34ef3982197b592abcd73", a).await);
    down(run("http digest=00000000000000000000000000000000", a).await, "body md5 ada1c70754a34ef3982197b592abcd73");

    down(run("http receive=nothing-like-this", a).await, "body does not match /nothing-like-this/");
    let (bad, _) = fake::http("127.0.0.1", 503, "test");
    down(run("http receive=test", bad).await, "http status 503");
    down(run("http", fake::closed_port("127.0.0.1")).await, "http connect refused");
    times_out("http", fake::silent_tcp("127.0.0.1")).await;

    // Redirects are a status, not followed: 302 fails by default, passes when listed.
    let (moved, moved_seen) = fake::http("127.0.0.1", 302, "");
    down(run("http", moved).await, "http status 302");
    up(run("http status=200,301-302", moved).await);
    assert_eq!(moved_seen.lock().unwrap().len(), 2, "the redirect was followed");

    let (a6, _) = fake::http("::1", 200, "ok");
    up(run("http receive=^ok$", a6).await);

    // An endless body: receive looks at its first 128 KiB, digest gives up.
    let endless = endless_body("127.0.0.1");
    up(run("http receive=^x{1000}", endless).await);
    down(run("http receive=y", endless).await, "the first 128 KiB of the body do not match /y/");
    down(run("http digest=ada1c70754a34ef3982197b592abcd73", endless).await, "body larger than 128 KiB");
}

#[tokio::test]
async fn https() {
    let (a, seen) = fake::https("127.0.0.1", 200, "secure test");
    // Self-signed: fine without verification (the default, like SSL_GET) ...
    up(run("https receive=test", a).await);
    // ... refused with it ...
    down(run("https verify=yes", a).await, "certificate");
    // ... and fine again when its certificate is a trust anchor, with the
    // virtual host as SNI and Host.
    let ca = fake::test_cert().pem_path.display().to_string();
    up(run(&format!("https verify=yes ca={ca} virtualhost=www.test.example receive=secure"), a).await);
    {
        let seen = seen.lock().unwrap();
        let last = seen.last().unwrap();
        assert_eq!(last.sni.as_deref(), Some("www.test.example"));
        assert_eq!(last.host.as_deref(), Some("www.test.example"));
    }
    // A name the certificate does not carry.
    down(run(&format!("https ca={ca} virtualhost=other.example"), a).await, "certificate");
    // Status and body rules hold over TLS too.
    let (bad, _) = fake::https("127.0.0.1", 500, "");
    down(run("https", bad).await, "https status 500");
    // TLS against a plain HTTP server.
    // (the fake waits for a request line that never comes, so any Down will do).
    let (plain, _) = fake::http("127.0.0.1", 200, "");
    assert!(!run("https", plain).await.is_up());
    times_out("https", fake::silent_tcp("127.0.0.1")).await;
}

#[tokio::test]
async fn simpletcp() {
    let good = fake::read_all_then_reply("127.0.0.1", b"+PONG\r\n");
    up(run(r#"simpletcp request="PING\r\n" receive='^\+PONG'"#, good).await);
    let bad = fake::read_all_then_reply("127.0.0.1", b"-ERR unknown\r\n");
    down(run(r#"simpletcp request="PING\r\n" receive='^\+PONG'"#, bad).await, r"reply does not match /^\+PONG/");
    down(run("simpletcp receive=x", fake::closed_port("127.0.0.1")).await, "connect refused");
    times_out("simpletcp receive=x", fake::silent_tcp("127.0.0.1")).await;
}

#[tokio::test]
async fn smtp() {
    let good = fake::line_protocol(
        "127.0.0.1",
        "220-fake.example ESMTP\r\n220 ready\r\n",
        &[("EHLO", "250-fake.example\r\n250 PIPELINING\r\n"), ("QUIT", "221 bye\r\n")],
    );
    up(run("smtp", good).await);
    let busy = fake::line_protocol("127.0.0.1", "554 no service\r\n", &[]);
    down(run("smtp", busy).await, "smtp banner: 554 no service");
    let picky = fake::line_protocol("127.0.0.1", "220 ready\r\n", &[("EHLO", "500 what\r\n")]);
    down(run("smtp", picky).await, "smtp EHLO answered: 500 what");
    times_out("smtp", fake::silent_tcp("127.0.0.1")).await;
}

#[tokio::test]
async fn pop_imap_ftp() {
    up(run("pop", fake::line_protocol("127.0.0.1", "+OK POP3 ready\r\n", &[("QUIT", "+OK\r\n")])).await);
    down(run("pop", fake::line_protocol("127.0.0.1", "-ERR go away\r\n", &[])).await, "pop greeting: -ERR go away");

    up(run(
        "imap",
        fake::line_protocol("127.0.0.1", "* OK IMAP4rev1 ready\r\n", &[("A1 LOGOUT", "* BYE\r\na1 OK\r\n")]),
    )
    .await);
    down(run("imap", fake::line_protocol("127.0.0.1", "* BYE shutting down\r\n", &[])).await, "imap greeting");

    up(run("ftp", fake::line_protocol("127.0.0.1", "220-Welcome\r\n220 FTP ready\r\n", &[("QUIT", "221 bye\r\n")]))
        .await);
    down(run("ftp", fake::line_protocol("127.0.0.1", "421 too many users\r\n", &[])).await, "ftp banner: 421");
    // Connection closed before any banner.
    let mute = fake::tcp("127.0.0.1", |s| async move { drop(s) });
    down(run("ftp", mute).await, "closed");
    times_out("pop", fake::silent_tcp("127.0.0.1")).await;
}

#[tokio::test]
async fn dns() {
    let a =
        fake::dns("127.0.0.1", "www.test.example", vec!["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()]);
    up(run("dns request=www.test.example", a).await);
    up(run("dns request=www.test.example receive=192.0.2.7", a).await);
    up(run("dns request=www.test.example type=AAAA", a).await);
    up(run("dns request=www.test.example receive=2001:db8::7", a).await);
    down(run("dns request=www.test.example receive=192.0.2.8", a).await, "www.test.example is not 192.0.2.8");
    down(run("dns request=nothere.test.example", a).await, "dns NXDOMAIN");
    let v4_only = fake::dns("::1", "v4.test.example", vec!["192.0.2.1".parse().unwrap()]);
    up(run("dns request=v4.test.example", v4_only).await);
    down(run("dns request=v4.test.example type=AAAA", v4_only).await, "no AAAA record");
    times_out("dns request=www.test.example", fake::silent_udp("127.0.0.1")).await;
    down(run("dns request=www.test.example", fake::closed_port("127.0.0.1")).await, "port unreachable");
}

#[tokio::test]
async fn mysql() {
    // Header (length 25, sequence 0), protocol 10, version, thread id, salt.
    let good = fake::greeter("127.0.0.1", b"\x19\x00\x00\x00\x0a5.7.0-fake\x00\x01\x00\x00\x00abcdefgh\x00");
    up(run("mysql", good).await);
    let blocked = fake::greeter("127.0.0.1", b"\x15\x00\x00\x00\xff\x69\x04#HY000Host blocked");
    down(run("mysql", blocked).await, "mysql error 1129: Host blocked");
    let old = fake::greeter("127.0.0.1", b"\x05\x00\x00\x00\x093.23");
    down(run("mysql", old).await, "mysql protocol version 9");
    times_out("mysql", fake::silent_tcp("127.0.0.1")).await;
}

#[tokio::test]
async fn pgsql() {
    up(run("pgsql", fake::request_reply("127.0.0.1", 8, b"N")).await);
    up(run("pgsql", fake::request_reply("127.0.0.1", 8, b"S")).await);
    down(run("pgsql", fake::request_reply("127.0.0.1", 8, b"E")).await, "pgsql answered with an error");
    down(run("pgsql", fake::request_reply("127.0.0.1", 8, b"")).await, "without a reply");
    times_out("pgsql", fake::silent_tcp("127.0.0.1")).await;
}

#[tokio::test]
async fn sip() {
    let ok = fake::sip("127.0.0.1", 200);
    up(run("sip", ok).await);
    up(run("sip user=probe@test.example", ok).await);
    let missing = fake::sip("127.0.0.1", 404);
    down(run("sip", missing).await, "sip status 404");
    up(run("sip status=200-499", missing).await);
    up(run("sip", fake::sip("::1", 200)).await);
    times_out("sip", fake::silent_udp("127.0.0.1")).await;
    down(run("sip", fake::closed_port("127.0.0.1")).await, "port unreachable");
}

#[tokio::test]
async fn ldap() {
    const OK: &[u8] = &[0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00];
    const REFUSED: &[u8] = &[0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 49, 0x04, 0x00, 0x04, 0x00];
    up(run("ldap", fake::request_reply("127.0.0.1", 14, OK)).await);
    down(run("ldap", fake::request_reply("127.0.0.1", 14, REFUSED)).await, "ldap bind resultCode 49");
    down(run("ldap", fake::request_reply("127.0.0.1", 14, b"\x30\x03\x02\x01\x01")).await, "not a BindResponse");
    times_out("ldap", fake::silent_tcp("127.0.0.1")).await;
}

#[tokio::test]
async fn udp() {
    let echo = fake::udp("127.0.0.1", |d| Some([b"ok ", d].concat()));
    up(run(r#"udp request="hello" receive='^ok hello$'"#, echo).await);
    up(run("udp reply=yes", echo).await);
    down(run(r#"udp request="hello" receive='^bye'"#, echo).await, "reply does not match /^bye/");
    // Without a required reply, silence is fine and an ICMP error is not.
    let (o, took) = run_on("udp request=x", &target(fake::silent_udp("127.0.0.1"))).await;
    up(o);
    assert!(took < T, "waited past the bound: {took:?}");
    down(run("udp request=x", fake::closed_port("127.0.0.1")).await, "port unreachable");
    times_out("udp reply=yes", fake::silent_udp("127.0.0.1")).await;
}

#[tokio::test]
async fn ping() {
    // ICMP sockets: root, or a group in net.ipv4.ping_group_range.
    lvs_tests::needs_root!();
    up(run("ping", "127.0.0.1:0".parse().unwrap()).await);
    up(run("ping", "[::1]:0".parse().unwrap()).await);
}

/// The failing ping: a private network namespace whose kernel ignores
/// echo requests, so the request goes out and nothing ever comes back.
#[test]
fn ping_without_reply_times_out() {
    lvs_tests::needs_root!();
    let ignore = &[("/proc/sys/net/ipv4/icmp_echo_ignore_all", "1"), ("/proc/sys/net/ipv6/icmp/echo_ignore_all", "1")];
    fake::in_private_netns(ignore, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            times_out("ping", "127.0.0.1:0".parse().unwrap()).await;
            times_out("ping", "[::1]:0".parse().unwrap()).await;
        });
    });
    // And a namespace with loopback down: no route at all.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let o = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        rt.block_on(check(&Target::new("127.0.0.1".parse().unwrap(), 0), &Check::parse("ping").unwrap(), T))
    })
    .join()
    .unwrap();
    down(o, "unreachable");
}

#[tokio::test]
async fn external() {
    let t = Target {
        virtual_service: Some(Virtual::Addr("192.0.2.10:80".parse().unwrap())),
        ..Target::new("127.0.0.1".parse().unwrap(), 8080)
    };
    up(run_on("external command=/bin/true", &t).await.0);
    down(run_on("external command=/bin/false", &t).await.0, "command exited 1");
    down(run_on("external command=/nonexistent/check", &t).await.0, "/nonexistent/check");

    // A hung command with a child of its own (flock runs tail as its child;
    // tail follows /dev/null forever and only complains about the other
    // arguments, our marker and the four appended ones): both are killed
    // at the timeout.
    let marker = format!("/nonexistent/lvs-probe-marker-{}", std::process::id());
    let lock = std::env::temp_dir().join(format!("lvs-probe-flock-{}", std::process::id()));
    let spec = format!("external command='/usr/bin/flock {} /usr/bin/tail -f /dev/null {marker}'", lock.display());
    // While it runs, both flock and its child tail exist (they carry the
    // marker); otherwise "all gone afterwards" would prove nothing.
    let watch = async {
        let mut most = 0;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            most = most.max(fake::process_with_arg(&marker).len());
        }
        most
    };
    let ((o, took), most) = tokio::join!(run_on(&spec, &t), watch);
    assert_eq!(most, 2, "flock and its child tail were running");
    down(o, "timeout after 1s");
    assert!(took >= T - Duration::from_millis(50));
    assert!(
        fake::eventually(Duration::from_secs(2), || fake::process_with_arg(&marker).is_empty()),
        "processes still running after the timeout: {:?}",
        fake::process_with_arg(&marker)
    );
    let _ = std::fs::remove_file(lock);
}

/// 200 reals, 20 of them silent: one round takes about one timeout, not
/// 20 of them, and every healthy real is reported up.
#[tokio::test]
async fn hung_backends_do_not_serialize_the_others() {
    let http = Arc::new(Check::parse("http receive=ok").unwrap());
    let mut jobs = Vec::new();
    for i in 0..200u32 {
        let host = format!("127.0.{}.{}", 1 + i / 100, 1 + i % 100);
        let addr = if i % 10 == 3 { fake::silent_tcp(&host) } else { fake::http(&host, 200, "ok").0 };
        jobs.push(Job { key: i, target: target(addr), check: http.clone() });
    }
    let sched = Scheduler::new(1024, T).unwrap();
    let start = Instant::now();
    let reports = sched.round(&jobs).await;
    let took = start.elapsed();
    assert!(took < 2 * T, "a round of 200 with 20 hung took {took:?}");
    // One report per real, in order, each from a check that ran (round
    // pads a lost one with "check task failed" and no elapsed time).
    assert_eq!(reports.iter().map(|r| r.key).collect::<Vec<_>>(), (0..200).collect::<Vec<_>>());
    for r in &reports {
        assert!(r.elapsed > Duration::ZERO, "real {}: {:?}", r.key, r.outcome);
        if r.key % 10 == 3 {
            down(r.outcome.clone(), "timeout after 1s");
        } else {
            assert_eq!(r.outcome, CheckOutcome::Up, "real {}", r.key);
        }
        assert!(r.elapsed < T + SLACK);
    }
}

/// The periodic scheduler: a healthy real keeps being checked every
/// interval while a hung one is still waiting for its first answer.
#[tokio::test]
async fn periodic_checks_go_on_past_a_hung_real() {
    let check = Arc::new(Check::parse("http").unwrap());
    let (good, _) = fake::http("127.0.0.1", 200, "");
    let jobs = vec![
        Job { key: "hung", target: target(fake::silent_tcp("127.0.0.1")), check: check.clone() },
        Job { key: "good", target: target(good), check },
    ];
    let sched = Scheduler::new(16, Duration::from_secs(3)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let start = Instant::now();
    let runner = sched.run(jobs, Duration::from_millis(100), tx);
    let reader = async move {
        let mut good = 0;
        while good < 5 {
            let r = rx.recv().await.unwrap();
            assert_eq!(r.key, "good", "the hung real answered: {:?}", r.outcome);
            assert_eq!(r.outcome, CheckOutcome::Up);
            good += 1;
        }
        start.elapsed()
    };
    let (ran, took) = tokio::join!(runner, reader);
    ran.unwrap();
    assert!(took < Duration::from_secs(2), "5 checks of the good real took {took:?}");
}

fn endless_body(addr: &str) -> SocketAddr {
    fake::tcp(addr, fake::send_endless_body)
}

/// Hostile reals on 127.0.9.1-`n` (served by a thread of their own).
fn hostile_reals(n: u8) -> Vec<SocketAddr> {
    let listeners: Vec<std::net::TcpListener> =
        (1..=n).map(|i| std::net::TcpListener::bind(("127.0.9.".to_string() + &i.to_string(), 0)).unwrap()).collect();
    let addrs = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    fake::serve_endless_bodies(listeners);
    addrs
}

/// Peak and current resident memory of a process, in KiB.
fn rss_kib(pid: &str) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field =
        |name: &str| status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse::<u64>().ok();
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Memory a checker may use while 1,000 reals send endless bodies.
const HOSTILE_BOUND_KIB: u64 = 64 * 1024;

/// 1,000 reals answer `receive`/`digest` checks with endless chunked
/// bodies, all checked at once: bodies are read only up to the per-check
/// cap and only a bounded number at a time, so the checker stays under
/// 64 MiB. Runs the checks in a child process (this test binary again)
/// so that the peak memory is theirs alone (the fake servers stay in the
/// parent); the parent kills the child past twice the bound rather than
/// let it take the machine's memory.
#[test]
fn endless_bodies_from_1000_reals_keep_memory_bounded() {
    const CHILD: &str = "LVS_PROBE_HOSTILE_CHILD";
    if let Ok(servers) = std::env::var(CHILD) {
        let servers: Vec<SocketAddr> = servers.split(',').map(|a| a.parse().unwrap()).collect();
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let reports = rt.block_on(async {
            let receive = Arc::new(Check::parse("http receive=never-there").unwrap());
            let digest = Arc::new(Check::parse("http digest=00000000000000000000000000000000").unwrap());
            let jobs: Vec<_> = (0..1000u32)
                .map(|i| Job {
                    key: i,
                    target: target(servers[i as usize % servers.len()]),
                    check: if i % 2 == 0 { receive.clone() } else { digest.clone() },
                })
                .collect();
            Scheduler::new(1000, Duration::from_secs(60)).unwrap().round(&jobs).await
        });
        for r in &reports {
            down(r.outcome.clone(), "KiB");
        }
        let (peak, _) = rss_kib("self").unwrap();
        println!("peak-rss-kib={peak}");
        return;
    }
    let servers: Vec<String> = hostile_reals(10).iter().map(SocketAddr::to_string).collect();
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "endless_bodies_from_1000_reals_keep_memory_bounded", "--nocapture", "--test-threads=1"])
        .env(CHILD, servers.join(","))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let start = Instant::now();
    let mut worst = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Some((_, rss)) = rss_kib(&pid) {
            worst = worst.max(rss);
            if rss > 2 * HOSTILE_BOUND_KIB || start.elapsed() > Duration::from_secs(180) {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("the checker grew to {rss} KiB after {:?}: killed", start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "the child failed: {status}\n{out}");
    let peak: u64 = out
        .lines()
        .find_map(|l| l.split_once("peak-rss-kib="))
        .and_then(|(_, v)| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no peak in the child's output:\n{out}"));
    println!("1,000 endless bodies: peak RSS {peak} KiB (sampled {worst} KiB), {:?}", start.elapsed());
    assert!(peak < HOSTILE_BOUND_KIB, "peak RSS {peak} KiB is over {HOSTILE_BOUND_KIB} KiB");
}
