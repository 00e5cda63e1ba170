//! Logging the way cluster agents log: syslog with the identity
//! `agent(instance)[pid]`, `HA_LOGFILE`/`HA_DEBUGLOG` when set, and stderr
//! when a person is watching. Every sink is best effort: an agent must never
//! fail an action because a log destination is missing (these machines have
//! no /dev/log at all).

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{IsTerminal, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

struct Sinks {
    tag: String,
    syslog: Option<(UnixDatagram, u8)>,
    logfile: Option<String>,
    debuglog: Option<String>,
    stderr: bool,
    debug: bool,
    lock: Mutex<()>,
}

/// Syslog facility numbers by the names heartbeat's `HA_LOGFACILITY` uses.
fn facility(name: &str) -> Option<u8> {
    let n = match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    };
    Some(n)
}

fn severity(level: &Level) -> (u8, &'static str) {
    match *level {
        Level::ERROR => (3, "ERROR"),
        Level::WARN => (4, "WARNING"),
        Level::INFO => (6, "INFO"),
        _ => (7, "DEBUG"),
    }
}

/// Local time as syslog writes it, e.g. `Nov 22 13:41:55`.
fn timestamp() -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME).map(|t| t.tv_sec()).unwrap_or(0);
    // SAFETY: tm is plain data; zero is a valid start.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads now and writes only the tm we hand it.
    let ok = unsafe { !libc::localtime_r(&now, &mut tm).is_null() };
    if !ok {
        return String::from("Jan  1 00:00:00");
    }
    format!(
        "{} {:2} {:02}:{:02}:{:02}",
        MONTHS[usize::try_from(tm.tm_mon).unwrap_or(0).min(11)],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for Sinks {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = event.metadata().level();
        let is_debug = *level > Level::INFO;
        if is_debug && !self.debug && self.debuglog.is_none() {
            return;
        }
        let mut v = MessageVisitor(String::new());
        event.record(&mut v);
        v.0 = one_line(&v.0);
        let (sev, word) = severity(level);
        let _guard = self.lock.lock();
        let line = format!("{} {}: {}: {}\n", timestamp(), self.tag, word, v.0);
        if !is_debug || self.debug {
            if let Some((sock, fac)) = &self.syslog {
                let msg = format!("<{}>{}: {}: {}", fac * 8 + sev, self.tag, word, v.0);
                let _ = sock.send(msg.as_bytes());
            }
            if let Some(path) = &self.logfile {
                append(path, &line);
            }
            if self.stderr {
                let _ = std::io::stderr().write_all(format!("{word}: {}\n", v.0).as_bytes());
            }
        }
        if let Some(path) = &self.debuglog {
            if Some(path) != self.logfile.as_ref() || is_debug {
                append(path, &line);
            }
        }
    }
}

/// `text` on one line: control characters (a newline in a parameter
/// value would start a forged log line) are escaped as Rust escapes them.
pub fn one_line(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn append(path: &str, line: &str) {
    // O_NOFOLLOW: a symlink planted at the log path must not redirect our
    // (root's) writes to another file.
    let open = OpenOptions::new().create(true).append(true).custom_flags(libc::O_NOFOLLOW).open(path);
    if let Ok(mut f) = open {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Installs the global logger for one agent call or daemon. `env` is read
/// through the closure so tests can supply their own environment.
pub fn init(agent: &str, instance: &str, env: impl Fn(&str) -> Option<String>) {
    let name = if instance.is_empty() { agent.to_string() } else { format!("{agent}({instance})") };
    let tag = match env("HA_LOGTAG") {
        Some(t) if !t.is_empty() => format!("{t}[{}]", std::process::id()),
        _ => format!("{name}[{}]", std::process::id()),
    };
    let fac = env("HA_LOGFACILITY").unwrap_or_else(|| "daemon".into());
    let syslog = if fac == "none" {
        None
    } else {
        let f = facility(&fac).unwrap_or(3);
        UnixDatagram::unbound().ok().filter(|s| s.connect("/dev/log").is_ok()).map(|s| (s, f))
    };
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    let truthy = |k: &str| set(k).and_then(|v| super::params::parse_bool(&v)).unwrap_or(false);
    let sinks = Sinks {
        tag,
        syslog,
        logfile: set("HA_LOGFILE"),
        debuglog: set("HA_DEBUGLOG"),
        stderr: std::io::stderr().is_terminal(),
        debug: truthy("HA_debug") || truthy("OCF_TRACE_RA"),
        lock: Mutex::new(()),
    };
    // A second init (tests) keeps the first logger; that is fine.
    let _ = tracing_subscriber::registry().with(sinks).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_onto_one_line() {
        assert_eq!(one_line("plain text: ok"), "plain text: ok");
        assert_eq!(one_line("a\nb\r\tc\u{1b}[1m"), r"a\nb\r\tc\u{1b}[1m");
        assert_eq!(one_line("caf\u{e9}"), "caf\u{e9}", "non-ASCII text stays");
    }
}
