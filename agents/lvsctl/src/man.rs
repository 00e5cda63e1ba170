//! `lvsctl --man`: the man page lvsctl(8), written from the same clap
//! declaration as `--help`, so the two cannot drift.

use clap::Command;

/// Escapes text for roff: backslashes and dashes, and a leading dot or quote.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// Paragraphs of a help text, each roff-escaped.
fn paragraphs(text: &str) -> String {
    text.split("\n\n")
        .map(|p| roff(&p.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect::<Vec<_>>()
        .join("\n.PP\n")
}

pub fn render(cmd: &Command) -> String {
    let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
    let mut s = format!(
        ".TH LVSCTL 8 \"\" \"lvs-agents {}\" \"System Administration\"\n.SH NAME\nlvsctl \\- {}\n\
         .SH SYNOPSIS\n.B lvsctl\n.I command\n[\\fIoptions\\fR]\n.SH COMMANDS\n",
        env!("CARGO_PKG_VERSION"),
        roff(&about)
    );
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set() && c.get_name() != "help") {
        let positionals: Vec<String> =
            sub.get_positionals().map(|a| format!("\\fI{}\\fR", a.get_id().as_str().to_uppercase())).collect();
        let usage = [sub.get_name().to_string()].into_iter().chain(positionals).collect::<Vec<_>>().join(" ");
        s.push_str(&format!(".SS \"lvsctl {usage}\"\n"));
        let text = sub.get_long_about().or(sub.get_about()).map(|a| a.to_string()).unwrap_or_default();
        s.push_str(&paragraphs(&text));
        s.push('\n');
        for a in sub.get_arguments().filter(|a| !a.is_positional() && !a.is_hide_set()) {
            if a.get_id() == "help" {
                continue;
            }
            let mut names = Vec::new();
            if let Some(c) = a.get_short() {
                names.push(format!("\\fB\\-{c}\\fR"));
            }
            if let Some(l) = a.get_long() {
                names.push(format!("\\fB\\-\\-{}\\fR", roff(l)));
            }
            let takes_value = a.get_action().takes_values();
            let value = if takes_value {
                let v = a
                    .get_value_names()
                    .and_then(|v| v.first())
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| a.get_id().as_str().to_uppercase());
                format!(" \\fI{}\\fR", roff(&v))
            } else {
                String::new()
            };
            let help = a.get_long_help().or(a.get_help()).map(|h| h.to_string()).unwrap_or_default();
            let defaults: Vec<String> =
                a.get_default_values().iter().map(|d| d.to_string_lossy().into_owned()).collect();
            let default = if takes_value && !defaults.is_empty() {
                format!(" (default: {})", defaults.join(", "))
            } else {
                String::new()
            };
            s.push_str(&format!(".TP\n{}{value}\n{}{}\n", names.join(", "), paragraphs(&help), roff(&default)));
        }
    }
    s.push_str(
        ".SH FILES\n.TP\n/run/lvs\\-agents\nThe agents' daemons' state (LVS_RUN_DIR overrides it).\n\
         .TP\n/proc/net/ip_vs_conn\nThe kernel's connection table, read by \\fBlist \\-\\-connections\\fR.\n\
         .SH SEE ALSO\n\\fBipvsadm\\fR(8), \\fBocf_lvs_vip\\fR(7), \\fBocf_lvs_service\\fR(7), \
         \\fBocf_lvs_realservers\\fR(7), \\fBocf_lvs_sorry\\fR(7), \\fBocf_lvs_sync\\fR(7)\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_and_option_is_on_the_page() {
        let cmd = crate::Cli::command();
        let page = render(&cmd);
        for sub in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
            assert!(page.contains(&format!(".SS \"lvsctl {}", sub.get_name())), "{} missing:\n{page}", sub.get_name());
            for a in sub.get_arguments().filter_map(|a| a.get_long()).filter(|l| *l != "help") {
                assert!(page.contains(&format!("\\-\\-{}", roff(a))), "--{a} of {} missing", sub.get_name());
            }
        }
        assert!(page.contains("\\fB\\-c\\fR, \\fB\\-\\-connections\\fR"), "{page}");
        assert!(page.contains("(default: 2)"), "status --interval's default");
    }
}
