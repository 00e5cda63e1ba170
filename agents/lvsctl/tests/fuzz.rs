//! The parsers never panic, whatever they are fed, and an import that
//! reports nothing unsupported always lints clean.

use proptest::prelude::*;

fn run(args: &[&str], input: &str) -> (i32, String) {
    let path = std::env::temp_dir().join(format!(
        "lvsctl-fuzz-{}-{:x}",
        std::process::id(),
        input.len() ^ input.bytes().map(usize::from).sum::<usize>()
    ));
    std::fs::write(&path, input).expect("write");
    let mut a: Vec<&str> = args.to_vec();
    let p = path.to_str().expect("path").to_string();
    a.push(&p);
    // Mutated names must not become DNS queries.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_lvsctl"))
        .args(&a)
        .env("LVSCTL_NO_RESOLVE", "1")
        .output()
        .expect("run");
    let _ = std::fs::remove_file(&path);
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned())
}

/// A seed without its deliberately unsupported lines, so that imports of
/// its mutations often exit 0 and the lint property is exercised.
fn seed(name: &str) -> String {
    let text = std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).expect("seed");
    text.lines().filter(|l| !l.contains("emailalert") && !l.contains("smtp_alert")).map(|l| format!("{l}\n")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        for args in [&["import", "--kind", "ldirectord"][..], &["import", "--kind", "keepalived"][..], &["lint"][..]] {
            let (code, _) = run(args, &text);
            prop_assert!([0, 1, 3].contains(&code), "{args:?} exited {code} on {text:?}");
        }
    }

    #[test]
    fn mutated_seeds_never_panic_and_clean_imports_lint_clean(
        cut in 0usize..2000, junk in "[ \\t{}=\"#,:a-z0-9.\\n]{0,40}", which in 0usize..2
    ) {
        let s = seed(["ldirectord.cf", "keepalived.conf"][which]);
        let at = s.char_indices().map(|(i, _)| i).nth(cut % s.chars().count().max(1)).unwrap_or(0);
        let text = format!("{}{junk}{}", &s[..at], &s[at..]);
        let (code, out) = run(&["import"], &text);
        prop_assert!([0, 3].contains(&code), "import exited {code}");
        // Whatever import emits, skipped directives aside, must lint clean.
        if code == 0 || code == 3 {
            let (lint, problems) = run(&["lint"], &out);
            prop_assert_eq!(lint, 0, "an import must lint clean: {}\n{}", problems, out);
        }
    }
}
