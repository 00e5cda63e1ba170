//! `lvsctl import` on a corpus of realistic ldirectord.cf and
//! keepalived.conf files (agents/lvsctl/tests/data/corpus): each output is
//! the reviewed translation checked in beside it, crm loads it into a
//! scratch CIB that crm_verify passes, pcs creates every resource in
//! another, and every primitive passes its installed agent's validate-all
//! through crm_resource --validate (in a namespace with the interfaces
//! the VIPs name).

use std::path::{Path, PathBuf};
use std::process::Command;

use lvs_tests::agent::bin;
use lvs_tests::cluster::install_ocf_agent;
use lvs_tests::topo::Host;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../agents/lvsctl/tests/data/corpus")
}

fn run(cmd: &mut Command) -> (bool, String) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// An import without its first line (which names the file as given).
fn import(file: &Path, format: &str) -> String {
    let o = Command::new(bin("lvsctl")).args(["import", "--format", format]).arg(file).output().expect("lvsctl");
    assert!(matches!(o.status.code(), Some(0 | 3)), "{file:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).lines().skip(1).map(|l| format!("{l}\n")).collect()
}

fn expected(file: &Path, ext: &str) -> String {
    let text = std::fs::read_to_string(file.with_extension(ext)).expect("expected translation");
    text.lines().skip(1).map(|l| format!("{l}\n")).collect()
}

fn scratch_cib(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("lvs-import-cib-{}-{name}.xml", std::process::id()));
    let (ok, out) = run(Command::new("cibadmin").arg("--empty"));
    assert!(ok, "cibadmin --empty: {out}");
    std::fs::write(&path, out).expect("scratch CIB");
    path
}

/// The primitives of a crm text: (agent, [(name, value)]).
fn primitives(crm: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for line in crm.lines().filter(|l| l.starts_with("primitive ")) {
        let agent = line.split_whitespace().nth(2).and_then(|a| a.strip_prefix("ocf:lvs:")).expect("agent");
        let params = line.split_once(" params ").map(|(_, p)| p).unwrap_or("");
        let params = params.split(" op monitor").next().unwrap_or("");
        let mut pairs = Vec::new();
        let mut rest = params.trim();
        while let Some((k, after)) = rest.split_once('=') {
            let (v, next) = if let Some(q) = after.strip_prefix('"') {
                // crm's double quotes, with \" and \\ inside
                let mut v = String::new();
                let mut chars = q.char_indices();
                let mut end = q.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                v.push(n);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => v.push(c),
                    }
                }
                (v, &q[end..])
            } else {
                let end = after.find(' ').unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            };
            pairs.push((k.trim().to_string(), v));
            rest = next.trim();
        }
        out.push((agent.to_string(), pairs));
    }
    out
}

#[test]
fn corpus_imports_are_the_reviewed_translations_and_load_into_pacemaker() {
    lvs_tests::needs_root!();
    for agent in ["vip", "service", "realservers", "sorry", "sync"] {
        install_ocf_agent(agent);
    }
    // The VIPs name eth0 and eth1; validate-all looks for them.
    let ns = Host::new("import");
    ns.must(&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"]);
    for ifn in ["eth0", "eth1"] {
        ns.must(&["ip", "link", "set", ifn, "up"]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("cf" | "conf")))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let mut pcs_runs = Vec::new();
    for file in &files {
        let name = file.file_stem().and_then(|s| s.to_str()).expect("name");
        let crm = import(file, "crm");
        assert_eq!(crm, expected(file, "crm"), "{name}: not the reviewed translation");
        let pcs = import(file, "pcs");
        assert_eq!(pcs, expected(file, "pcs"), "{name}: not the reviewed pcs translation");

        // crm loads it (STONITH is the operator's, and not ours to judge).
        let cib = scratch_cib(name);
        let text = format!("property stonith-enabled=false no-quorum-policy=ignore\n{crm}");
        let loaded = std::env::temp_dir().join(format!("lvs-import-{}-{name}.crm", std::process::id()));
        std::fs::write(&loaded, &text).expect("crm text");
        let (ok, out) =
            run(Command::new("crm").env("CIB_file", &cib).args(["configure", "load", "update"]).arg(&loaded));
        // (a scratch CIB has no nodes: crm's status complaints about quorum are not ours)
        let errors: Vec<&str> =
            out.lines().filter(|l| l.contains("ERROR") && !l.contains("(cluster_status)")).collect();
        assert!(ok && errors.is_empty(), "{name}: crm configure load: {out}");
        let (ok, out) = run(Command::new("crm_verify").env("CIB_file", &cib).args(["-L", "-V"]));
        assert!(ok, "{name}: crm_verify: {out}");
        let (_, shown) = run(Command::new("crm").env("CIB_file", &cib).args(["configure", "show"]));
        let want = primitives(&crm).len();
        assert_eq!(shown.lines().filter(|l| l.starts_with("primitive ")).count(), want, "{name}: {shown}");

        // pcs creates every resource (its commands, run by sh as printed;
        // about 0.6 s each, so on a thread while the rest goes on).
        let pcs_cib = scratch_cib(&format!("{name}-pcs"));
        let pcs_run = {
            let (pcs, pcs_cib, name) = (pcs.clone(), pcs_cib.clone(), name.to_string());
            std::thread::spawn(move || {
                for cmd in pcs.lines().filter(|l| l.starts_with("pcs ")) {
                    let with_file = cmd.replacen("pcs ", &format!("pcs -f {} ", pcs_cib.display()), 1);
                    let (ok, out) = run(Command::new("sh").args(["-c", &with_file]));
                    assert!(ok, "{name}: {with_file}: {out}");
                }
                let (ok, out) = run(Command::new("crm_resource").env("CIB_file", &pcs_cib).arg("--list-raw"));
                assert!(ok && out.lines().count() >= want, "{name}: pcs made {out}");
            })
        };

        // Each primitive passes its agent's own validate-all.
        for (agent, params) in primitives(&crm) {
            let mut args = vec![
                "crm_resource".to_string(),
                "--validate".into(),
                "--class".into(),
                "ocf".into(),
                "--provider".into(),
                "lvs".into(),
                "--agent".into(),
                agent.clone(),
            ];
            for (k, v) in &params {
                args.push("--option".into());
                args.push(format!("{k}={v}"));
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let (ok, out) = ns.run(&refs);
            assert!(ok, "{name}: ocf:lvs:{agent} {params:?} fails validate-all: {out}");
        }
        pcs_runs.push((pcs_run, pcs_cib));
        for p in [&cib, &loaded] {
            let _ = std::fs::remove_file(p);
        }
    }
    for (run, cib) in pcs_runs {
        let done = run.join();
        let _ = std::fs::remove_file(cib);
        if let Err(panic) = done {
            std::panic::resume_unwind(panic);
        }
    }
}
