//! The agent's man page (`man 7 ocf_lvs_<name>`), written from the same
//! declaration as meta-data and `--help`, so the three cannot drift.

use super::metadata::param_longdesc;
use super::spec::AgentSpec;

/// Escapes text for roff: backslashes, and a leading dot or quote.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

pub fn render(spec: &AgentSpec) -> String {
    let title = format!("OCF_LVS_{}", spec.name.to_uppercase());
    let mut s = format!(
        ".TH {title} 7 \"\" \"lvs-agents {ver}\" \"OCF resource agents\"\n\
         .SH NAME\nocf_lvs_{name} \\- {short}\n\
         .SH SYNOPSIS\n.B {bin}\n{{start|stop|monitor|reload|validate\\-all|meta\\-data|usage}}\n.br\n\
         .B {bin}\n.I {pos}\n{{start|stop|status}}\n\
         .SH DESCRIPTION\n{long}\n\
         .PP\nPacemaker runs it as \\fBocf:lvs:{name}\\fR with parameters in \\fBOCF_RESKEY_\\fIname\\fR \
         variables; heartbeat v1 runs it from /etc/ha.d/resource.d/{bin} with the positional form above.\n\
         .SH PARAMETERS\n",
        ver = env!("CARGO_PKG_VERSION"),
        name = spec.name,
        bin = spec.binary(),
        short = roff(spec.shortdesc),
        pos = roff(spec.heartbeat.usage),
        long = roff(spec.longdesc),
    );
    for p in spec.params {
        let mut tags = vec![p.content_type().to_string()];
        if p.required {
            tags.push("required".into());
        }
        if p.unique {
            tags.push("unique".into());
        }
        if let Some(d) = p.default {
            tags.push(format!("default: {d}"));
        }
        s.push_str(&format!(".TP\n.B {}\n({}) {}\n", p.name, roff(&tags.join(", ")), roff(&param_longdesc(p))));
    }
    s.push_str(".SH ACTIONS\n");
    for a in spec.actions {
        let mut line = format!("timeout {}s", a.timeout_s);
        if let Some(i) = a.interval_s {
            line.push_str(&format!(", interval {i}s"));
        }
        if let Some(d) = a.depth {
            line.push_str(&format!(", OCF_CHECK_LEVEL {d}"));
        }
        s.push_str(&format!(".TP\n.B {}\n{}\n", roff(a.name), line));
    }
    s.push_str(
        ".SH EXIT STATUS\n0 success, 1 generic error, 2 bad arguments, 3 unimplemented action, \
         4 insufficient privileges, 5 not installed, 6 not configured, 7 not running.\n\
         .SH SEE ALSO\n\\fBipvsadm\\fR(8), \\fBcrm\\fR(8), \\fBpcs\\fR(8)\n",
    );
    s
}
