//! OCF meta-data XML, generated from the agent's declaration.
//!
//! The output must validate against both the OCF 1.0 DTD (what ocf-tester
//! uses) and resource-agents' metadata.rng, so it uses only what both
//! grammars allow: `lang` on every description, content types
//! string/integer/boolean, and `reload` rather than `reload-agent`.

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use super::spec::{AgentSpec, ParamKind, ParamSpec};
use crate::{Error, Result};

pub fn render(spec: &AgentSpec) -> Result<String> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    write(&mut w, spec).map_err(|e| Error::generic(format!("rendering meta-data: {e}")))?;
    let mut xml = String::from_utf8(w.into_inner()).map_err(|e| Error::generic(format!("rendering meta-data: {e}")))?;
    xml.push('\n');
    Ok(xml)
}

/// The long description as advertised, with the choices of a select
/// parameter and its range spelled out (the DTD has no `select` type).
pub fn param_longdesc(p: &ParamSpec) -> String {
    let base = if p.longdesc.is_empty() { p.shortdesc } else { p.longdesc };
    match p.kind {
        ParamKind::Select(choices) => format!("{base} One of: {}.", choices.join(", ")),
        _ => base.to_string(),
    }
}

fn write(w: &mut Writer<Vec<u8>>, spec: &AgentSpec) -> std::io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", None, None)))?;
    w.write_event(Event::DocType(BytesText::from_escaped("resource-agent SYSTEM \"ra-api-1.dtd\"")))?;
    w.create_element("resource-agent")
        .with_attributes([("name", spec.name), ("version", spec.version)])
        .write_inner_content(|w| {
            w.create_element("version").write_text_content(BytesText::new("1.0"))?;
            desc(w, "longdesc", spec.longdesc)?;
            desc(w, "shortdesc", spec.shortdesc)?;
            w.create_element("parameters").write_inner_content(|w| {
                for p in spec.params {
                    w.create_element("parameter")
                        .with_attributes([
                            ("name", p.name),
                            ("unique", if p.unique { "1" } else { "0" }),
                            ("required", if p.required { "1" } else { "0" }),
                        ])
                        .write_inner_content(|w| {
                            desc(w, "longdesc", &param_longdesc(p))?;
                            desc(w, "shortdesc", p.shortdesc)?;
                            let content = w.create_element("content").with_attribute(("type", p.content_type()));
                            match p.default {
                                Some(d) => content.with_attribute(("default", d)).write_empty()?,
                                None => content.write_empty()?,
                            };
                            Ok(())
                        })?;
                }
                Ok(())
            })?;
            w.create_element("actions").write_inner_content(|w| {
                for a in spec.actions {
                    let timeout = format!("{}s", a.timeout_s);
                    let interval = a.interval_s.map(|i| format!("{i}s"));
                    let depth = a.depth.map(|d| d.to_string());
                    let mut el = w
                        .create_element("action")
                        .with_attribute(("name", a.name))
                        .with_attribute(("timeout", timeout.as_str()));
                    if let Some(i) = &interval {
                        el = el.with_attribute(("interval", i.as_str()));
                    }
                    if let Some(d) = &depth {
                        el = el.with_attribute(("depth", d.as_str()));
                    }
                    el.write_empty()?;
                }
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(())
}

fn desc(w: &mut Writer<Vec<u8>>, tag: &str, text: &str) -> std::io::Result<()> {
    w.create_element(tag).with_attribute(("lang", "en")).write_text_content(BytesText::new(text))?;
    Ok(())
}
