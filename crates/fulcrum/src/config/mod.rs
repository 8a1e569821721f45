//! Configuration: the TOML file (`schema`), its defaults, and validation into
//! checked domain types (`model`) with errors that name file, line, column,
//! field, what is wrong and how to fix it.

pub mod defaults;
mod diagnostic;
mod failure;
mod introspect;
pub mod model;
mod schema;
mod tls;
mod validate;

use std::path::Path;

use toml::de::{DeTable, DeValue};

pub use diagnostic::{ConfigErrors, Diagnostic};
pub use failure::default_retry_policy;
pub use model::*;
pub use validate::parse_duration;

use diagnostic::{Collector, did_you_mean};

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(src) => parse(&file, &src),
        Err(e) => Err(ConfigErrors {
            file: file.clone(),
            diagnostics: vec![Diagnostic {
                line: 0,
                column: 0,
                field: "(file)".into(),
                message: format!("cannot read the file: {e}"),
                help: Some("check the path given to --config and that the file is readable".into()),
            }],
        }),
    }
}

/// Things a valid config allows but an operator should know about:
/// `fulcrum check` prints them and `fulcrum run` logs them.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    if !config.admin.is_loopback() && config.admin.token_file.is_none() {
        warnings.push(format!(
            "admin.address {} is not loopback and admin.token_file is not set: anyone who can reach it reads the config and metrics, and its write actions (reload, drain) are refused; set [admin] token_file, or bind the admin API to 127.0.0.1",
            config.admin.address
        ));
    }
    warnings
}

/// Checks config text; `file` is only used in messages.
pub fn parse(file: &str, src: &str) -> Result<Config, ConfigErrors> {
    let mut c = Collector::new(src);
    let doc = match DeTable::parse(src) {
        Ok(doc) => doc,
        Err(e) => {
            c.error(
                e.span().unwrap_or(0..0),
                "(syntax)",
                e.message().trim().to_string(),
                Some("fix the TOML syntax at this spot".into()),
            );
            return Err(c.finish(file).expect_err("an error was just recorded"));
        }
    };
    let mut unknown: Vec<Vec<Segment>> = Vec::new();
    let typed: Result<schema::FileConfig, _> =
        serde_ignored::deserialize(toml::de::Deserializer::from(doc.clone()), |path| {
            unknown.push(segments(&path));
        });
    for path in &unknown {
        report_unknown(&mut c, doc.get_ref(), path);
    }
    let typed = match typed {
        Ok(t) => t,
        Err(e) => {
            let message = e.message().trim().to_string();
            let help = type_help(&message);
            let field = e
                .span()
                .and_then(|span| path_at(doc.get_ref(), &span))
                .unwrap_or_else(|| field_of_type_error(src, e.span()));
            c.error(e.span().unwrap_or(0..0), field, message, help);
            return Err(c.finish(file).expect_err("an error was just recorded"));
        }
    };
    // Relative paths in the file (certificates) start at the file's directory.
    let base = Path::new(file)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let config = validate::validate(typed, &mut c, base);
    c.finish(file)?;
    config.ok_or_else(|| ConfigErrors {
        file: file.to_string(),
        diagnostics: Vec::new(),
    })
}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

fn segments(path: &serde_ignored::Path<'_>) -> Vec<Segment> {
    use serde_ignored::Path as P;
    let mut out = match path {
        P::Root => return Vec::new(),
        P::Seq { parent, .. }
        | P::Map { parent, .. }
        | P::Some { parent }
        | P::NewtypeStruct { parent }
        | P::NewtypeVariant { parent } => segments(parent),
    };
    match path {
        P::Seq { index, .. } => out.push(Segment::Index(*index)),
        // `Spanned<T>` shows up as a map with private keys; they are not part of the file.
        P::Map { key, .. } if !key.starts_with("$__serde_spanned") => {
            out.push(Segment::Key(key.clone()))
        }
        _ => {}
    }
    out
}

fn report_unknown(c: &mut Collector<'_>, root: &DeTable<'_>, path: &[Segment]) {
    let Some((Segment::Key(name), parents)) = path.split_last() else {
        return;
    };
    let mut field = String::new();
    let mut section: Vec<&str> = Vec::new();
    // `None` stands for the root table.
    let mut current: Option<&DeValue<'_>> = None;
    let mut span = 0..0;
    for seg in parents {
        let next = match (seg, current) {
            (Segment::Key(k), None) => lookup(root, k),
            (Segment::Key(k), Some(DeValue::Table(t))) => lookup(t, k),
            (Segment::Index(i), Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        match seg {
            Segment::Key(k) => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(k);
                section.push(k);
            }
            Segment::Index(i) => field.push_str(&format!("[{i}]")),
        }
        let Some(next) = next else { break };
        span = next.span();
        current = Some(next.get_ref());
    }
    let table = match current {
        None => Some(root),
        Some(DeValue::Table(t)) => Some(t),
        Some(_) => None,
    };
    let key_span = table
        .and_then(|t| {
            t.iter()
                .find(|(key, _)| key.get_ref().as_ref() == name.as_str())
        })
        .map(|(key, _)| key.span());
    let known = schema::known_fields(&section);
    let help = match did_you_mean(name, known.iter().copied()) {
        Some(m) => format!("did you mean `{m}`?"),
        None if known.is_empty() => "remove it".into(),
        None => format!("remove it; known fields here are: {}", known.join(", ")),
    };
    let full = if field.is_empty() {
        name.clone()
    } else {
        format!("{field}.{name}")
    };
    c.error(
        key_span.unwrap_or(span),
        full,
        format!("unknown field `{name}`"),
        Some(help),
    );
}

fn lookup<'a, 'd>(t: &'a DeTable<'d>, key: &str) -> Option<&'a toml::Spanned<DeValue<'d>>> {
    t.iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

/// The dotted path (`runtime.workers`, `clusters[0].endpoints[1].weight`)
/// of the value whose span holds `span`: where a type error is. Searched
/// depth first over every value, since a table's own span (an array of
/// tables' header, say) need not cover its contents.
fn path_at(table: &DeTable<'_>, span: &std::ops::Range<usize>) -> Option<String> {
    fn search(
        value: &toml::Spanned<DeValue<'_>>,
        span: &std::ops::Range<usize>,
        path: String,
    ) -> Option<String> {
        match value.get_ref() {
            DeValue::Table(t) => t
                .iter()
                .find_map(|(k, v)| search(v, span, format!("{path}.{}", k.get_ref()))),
            DeValue::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, v)| search(v, span, format!("{path}[{i}]"))),
            _ => {
                let s = value.span();
                (s.start <= span.start && span.end <= s.end).then_some(path)
            }
        }
    }
    table
        .iter()
        .find_map(|(k, v)| search(v, span, k.get_ref().to_string()))
}

/// The dotted key on the line a type error points at, as the fallback field name.
fn field_of_type_error(src: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return "(value)".into();
    };
    let line_start = src
        .get(..span.start)
        .and_then(|s| s.rfind('\n'))
        .map_or(0, |i| i + 1);
    let line = src
        .get(line_start..)
        .and_then(|s| s.lines().next())
        .unwrap_or("");
    match line.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() => key.trim().to_string(),
        _ => line.trim().to_string(),
    }
}

fn type_help(message: &str) -> Option<String> {
    if message.contains("missing field") {
        Some("add the field; see examples/fulcrum.toml for every field with its default".into())
    } else if message.contains("invalid type") {
        Some(
            "check the value's type: strings are quoted (\"5s\"), numbers are not (weight = 3)"
                .into(),
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
