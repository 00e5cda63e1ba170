//! Parameters: from `OCF_RESKEY_*` or heartbeat positional arguments to
//! typed values, with declared defaults applied and types checked.

use std::collections::BTreeMap;

use super::spec::{AgentSpec, ParamKind};
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// Parsed parameters of one agent call. Only declared names are present.
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: BTreeMap<&'static str, Value>,
    /// What the caller set explicitly, as given (defaults excluded).
    explicit: Vec<(&'static str, String)>,
}

/// `ocf_is_true` and its counterpart, as ocf-shellfuncs reads booleans.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" | "y" => Some(true),
        "no" | "false" | "0" | "off" | "n" => Some(false),
        _ => None,
    }
}

impl Params {
    /// Checks `raw` assignments against the declaration and applies defaults.
    /// Unknown names are returned for the caller to log, not rejected: the
    /// cluster manager passes names of its own and older configurations may
    /// carry retired ones.
    pub fn parse(spec: &AgentSpec, raw: &[(String, String)]) -> Result<(Params, Vec<String>)> {
        Params::parse_with(spec, raw, false)
    }

    /// Like [`Params::parse`], but values that do not check out are left
    /// out (with a warning) and missing required ones are tolerated. For
    /// stop, which must clean up whatever runs even when the parameters
    /// became invalid since start (an upgrade that tightened a check).
    pub fn parse_lenient(spec: &AgentSpec, raw: &[(String, String)]) -> (Params, Vec<String>) {
        Params::parse_with(spec, raw, true).unwrap_or_default()
    }

    fn parse_with(spec: &AgentSpec, raw: &[(String, String)], lenient: bool) -> Result<(Params, Vec<String>)> {
        let mut params = Params::default();
        let mut unknown = Vec::new();
        for (name, value) in raw {
            let Some(p) = spec.param(name) else {
                unknown.push(name.clone());
                continue;
            };
            // An empty value means "not set", as in shell agents.
            if value.is_empty() {
                continue;
            }
            let v = match convert(p.name, p.kind, value) {
                Ok(v) => v,
                Err(e) if lenient => {
                    tracing::warn!("{e}; left out");
                    continue;
                }
                Err(e) => return Err(e),
            };
            params.values.insert(p.name, v);
            params.explicit.push((p.name, value.clone()));
        }
        for p in spec.params {
            if params.values.contains_key(p.name) {
                continue;
            }
            match p.default {
                Some(d) if !d.is_empty() => {
                    let v = convert(p.name, p.kind, d)?;
                    params.values.insert(p.name, v);
                }
                _ if p.required && !lenient => {
                    return Err(Error::Configured(format!("required parameter '{}' is not set", p.name)))
                }
                _ => {}
            }
        }
        Ok((params, unknown))
    }

    /// [`Params::parse`] for `name=value` pairs given as string slices
    /// (tests, `lvsctl lint`); unknown names are dropped.
    pub fn from_pairs(spec: &AgentSpec, pairs: &[(&str, &str)]) -> Result<Params> {
        let raw: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Params::parse(spec, &raw).map(|(p, _)| p)
    }

    /// Reads `OCF_RESKEY_<name>` variables, skipping the cluster manager's
    /// own (`CRM_meta_*`, `crm_feature_set`).
    pub fn from_env_vars<I>(vars: I) -> Vec<(String, String)>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        vars.into_iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("OCF_RESKEY_")?;
                if name.starts_with("CRM_meta_") || name.starts_with("crm_") {
                    return None;
                }
                Some((name.to_string(), v))
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// A string (or select) parameter, if set or defaulted.
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// An integer parameter as the type its declared range fits (a value
    /// was range-checked when parsed, the default included), or None when
    /// unset without a default. A range that does not fit `T` is the
    /// agent's own mistake, said as such rather than a wrapped number.
    pub fn num<T: TryFrom<i64>>(&self, name: &str) -> Result<Option<T>> {
        self.int(name)
            .map(|i| T::try_from(i).map_err(|_| Error::generic(format!("{name}={i} does not fit its type"))))
            .transpose()
    }

    /// [`num`](Self::num) of a parameter that has a declared default.
    pub fn num_or_default<T: TryFrom<i64>>(&self, name: &str) -> Result<T> {
        self.num(name)?.ok_or_else(|| Error::generic(format!("{name} has no value and no default")))
    }

    /// A boolean parameter; unset without default reads as false.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Value::Bool(true)))
    }

    /// Whether the caller set `name` (as opposed to a default applying).
    pub fn is_explicit(&self, name: &str) -> bool {
        self.explicit.iter().any(|(n, _)| *n == name)
    }

    /// The explicit assignments as given, to hand to a daemon that parses
    /// them again (and so applies the same defaults).
    pub fn raw(&self) -> Vec<(String, String)> {
        self.explicit.iter().map(|(n, v)| (n.to_string(), v.clone())).collect()
    }
}

fn convert(name: &str, kind: ParamKind, value: &str) -> Result<Value> {
    match kind {
        ParamKind::String => Ok(Value::Str(value.to_string())),
        ParamKind::Integer { min, max } => {
            let n: i64 = value
                .trim()
                .parse()
                .map_err(|_| Error::Configured(format!("parameter '{name}': '{value}' is not a whole number")))?;
            if n < min || n > max {
                return Err(Error::Configured(format!("parameter '{name}': {n} is outside {min}..={max}")));
            }
            Ok(Value::Int(n))
        }
        ParamKind::Boolean => parse_bool(value).map(Value::Bool).ok_or_else(|| {
            Error::Configured(format!(
                "parameter '{name}': '{value}' is not a boolean (true/false, yes/no, 1/0, on/off)"
            ))
        }),
        ParamKind::Select(choices) => {
            if choices.contains(&value) {
                Ok(Value::Str(value.to_string()))
            } else {
                Err(Error::Configured(format!("parameter '{name}': '{value}' is not one of {}", choices.join(", "))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Heartbeat, ParamSpec, STANDARD_ACTIONS};

    fn no_positional(_: &[String]) -> Result<Vec<(&'static str, String)>> {
        Ok(vec![])
    }

    static SPEC: AgentSpec = AgentSpec {
        name: "t",
        version: "1.0",
        shortdesc: "s",
        longdesc: "l",
        params: &[
            ParamSpec::string("ip", "address").required().unique(),
            ParamSpec::integer("count", 1, 10, "count").default("5"),
            ParamSpec::boolean("quiet", "quiet"),
            ParamSpec::select("mode", &["a", "b"], "mode").default("a"),
        ],
        actions: STANDARD_ACTIONS,
        heartbeat: Heartbeat { usage: "", map: no_positional },
    };

    fn raw(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_apply_and_explicit_values_win() {
        let (p, unknown) = Params::parse(&SPEC, &raw(&[("ip", "1.2.3.4"), ("quiet", "yes")])).unwrap();
        assert_eq!(p.str("ip"), Some("1.2.3.4"));
        assert_eq!(p.int("count"), Some(5));
        assert!(p.flag("quiet"));
        assert_eq!(p.str("mode"), Some("a"));
        assert!(p.is_explicit("ip") && !p.is_explicit("count"));
        assert!(unknown.is_empty());
    }

    #[test]
    fn missing_required_is_a_configuration_error() {
        let err = Params::parse(&SPEC, &raw(&[("count", "3")])).unwrap_err();
        assert!(matches!(err, Error::Configured(ref m) if m.contains("'ip'")), "{err}");
    }

    #[test]
    fn empty_value_counts_as_unset() {
        assert!(Params::parse(&SPEC, &raw(&[("ip", "")])).is_err());
        let (p, _) = Params::parse(&SPEC, &raw(&[("ip", "x"), ("count", "")])).unwrap();
        assert_eq!(p.int("count"), Some(5));
    }

    #[test]
    fn type_errors_name_the_parameter() {
        for (k, v) in [("count", "five"), ("count", "11"), ("count", "0"), ("quiet", "perhaps"), ("mode", "c")] {
            let err = Params::parse(&SPEC, &raw(&[("ip", "x"), (k, v)])).unwrap_err();
            match err {
                Error::Configured(m) => assert!(m.contains(k), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn lenient_parsing_keeps_what_checks_out() {
        let (p, _) = Params::parse_lenient(&SPEC, &raw(&[("count", "99"), ("quiet", "yes")]));
        assert_eq!(p.str("ip"), None, "missing required tolerated");
        assert_eq!(p.int("count"), Some(5), "bad value replaced by the default");
        assert!(p.flag("quiet"));
    }

    #[test]
    fn unknown_names_are_reported_not_fatal() {
        let (_, unknown) = Params::parse(&SPEC, &raw(&[("ip", "x"), ("colour", "red")])).unwrap();
        assert_eq!(unknown, vec!["colour".to_string()]);
    }

    #[test]
    fn env_filter_drops_cluster_manager_names() {
        let vars = raw(&[
            ("OCF_RESKEY_ip", "1.1.1.1"),
            ("OCF_RESKEY_CRM_meta_timeout", "20000"),
            ("OCF_RESKEY_crm_feature_set", "3.16"),
            ("PATH", "/bin"),
        ]);
        assert_eq!(Params::from_env_vars(vars), raw(&[("ip", "1.1.1.1")]));
    }

    #[test]
    fn booleans_follow_ocf_is_true() {
        for t in ["yes", "TRUE", "1", "on"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["no", "False", "0", "off"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("2"), None);
    }
}
