//! The configuration reference (`docs/configuration.md`, `switchboard config-reference`),
//! generated from the embedded defaults so that it cannot drift from them: every key with its
//! default, the environment variable that overrides it and the comment above it in
//! `config/switchboard.toml`; the tables a file adds (trunks, routes, accounts…) as the
//! defaults' commented example. A unit test requires the committed document to be this
//! output.
//!
//! Written by hand over the defaults' text rather than a TOML parser: the parsers drop
//! comments, and the comments are the reference.

use std::fmt::Write;

/// The reference, in Markdown, of a defaults file laid out as `config/switchboard.toml` is:
/// a header comment, then keys each after the comment that describes it (keys that follow one
/// another with no comment between share the one above), then the tables' commented example.
pub fn markdown(defaults: &str) -> String {
    let mut out = String::new();
    out.push_str(
        "# Configuration reference\n\n\
         Generated from the embedded defaults ([`config/switchboard.toml`](../config/switchboard.toml))\n\
         by `switchboard config-reference`; a test keeps this file equal to its output.\n\
         Back to the [README](../README.md).\n\n",
    );
    let mut lines = defaults.lines().peekable();
    // The header: the file's opening comment, up to the first blank line.
    let mut header = Vec::new();
    while let Some(line) = lines.next_if(|l| l.starts_with('#')) {
        header.push(comment_text(line));
    }
    out.push_str(&paragraphs(&header));
    out.push('\n');

    let mut section = String::new();
    let mut comment: Vec<String> = Vec::new();
    // Keys that share the comment being collected, and their defaults.
    let mut group: Vec<(String, String)> = Vec::new();
    let mut example = Vec::new();
    let mut tables_intro = Vec::new();
    let flush = |out: &mut String, group: &mut Vec<(String, String)>, comment: &[String]| {
        if group.is_empty() {
            return;
        }
        for (key, value) in group.iter() {
            let _ = writeln!(
                out,
                "- `{key}` = `{value}` — env `SWITCHBOARD_{}`",
                key.to_uppercase().replace('.', "__")
            );
        }
        out.push('\n');
        out.push_str(&paragraphs(comment));
        out.push('\n');
        group.clear();
    };
    for line in lines {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            flush(&mut out, &mut group, &comment);
            comment.clear();
            section = name.to_owned();
            let _ = writeln!(out, "## `[{section}]`\n");
        } else if is_table_example(trimmed) || !example.is_empty() {
            // The tables' example runs to the end of the file; the comment before it says
            // what it is.
            if example.is_empty() {
                flush(&mut out, &mut group, &comment);
                tables_intro = std::mem::take(&mut comment);
            }
            example.push(
                line.strip_prefix("# ")
                    .unwrap_or(line.trim_start_matches('#')),
            );
        } else if let Some(text) = trimmed.strip_prefix('#') {
            if !group.is_empty() {
                flush(&mut out, &mut group, &comment);
                comment.clear();
            }
            comment.push(text.strip_prefix(' ').unwrap_or(text).to_owned());
        } else if let Some((key, value)) = trimmed.split_once(" = ") {
            let key = match section.as_str() {
                "" => key.to_owned(),
                s => format!("{s}.{key}"),
            };
            group.push((key, value.to_owned()));
        } else if trimmed.is_empty() && group.is_empty() && !comment.is_empty() {
            // A comment standing alone (about a section or what follows): a paragraph.
            out.push_str(&paragraphs(&comment));
            out.push('\n');
            comment.clear();
        }
    }
    flush(&mut out, &mut group, &comment);
    if !example.is_empty() {
        out.push_str("## Tables\n\n");
        out.push_str(&paragraphs(&tables_intro));
        out.push_str("\n```toml\n");
        for line in example {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str("```\n");
    }
    out
}

/// `# [[trunks]]`, maybe with a comment after it: where the tables' example starts (a
/// comment that only names a table in its prose does not).
fn is_table_example(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("# [[") else {
        return false;
    };
    let Some((name, after)) = rest.split_once("]]") else {
        return false;
    };
    let after = after.trim();
    name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        && (after.is_empty() || after.starts_with('#'))
}

fn comment_text(line: &str) -> String {
    let text = line.trim_start_matches('#');
    text.strip_prefix(' ').unwrap_or(text).to_owned()
}

/// Comment lines as Markdown: lines that start an indented or listed run (a shell example,
/// an environment variable) kept as code, the rest joined into paragraphs.
fn paragraphs(lines: &[String]) -> String {
    let mut out = String::new();
    let mut code = false;
    for line in lines {
        let is_code = line.starts_with("  ");
        if is_code != code {
            if is_code {
                out.push_str(if out.is_empty() { "```\n" } else { "\n\n```\n" });
            } else {
                out.push_str("```\n\n");
            }
            code = is_code;
        }
        if is_code {
            out.push_str(line.trim_start());
            out.push('\n');
        } else if line.is_empty() {
            out.push_str("\n\n");
        } else {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push(' ');
            }
            out.push_str(line);
        }
    }
    if code {
        out.push_str("```\n");
    }
    let end = out.trim_end_matches('\n').len();
    out.truncate(end);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/configuration.md` is the reference of the defaults the binary embeds: change the
    /// defaults, then run `switchboard config-reference > docs/configuration.md`.
    #[test]
    fn the_committed_reference_is_generated_from_the_embedded_defaults() {
        let committed = include_str!("../../docs/configuration.md");
        let generated = markdown(crate::config::DEFAULTS);
        assert!(
            committed == generated,
            "docs/configuration.md is stale: run `cargo run -- config-reference > docs/configuration.md`"
        );
    }

    /// Every key of the defaults is in the reference with its default and its variable, and
    /// the tables' example is there whole.
    #[test]
    fn every_key_is_named_with_its_default_and_variable() {
        let reference = markdown(crate::config::DEFAULTS);
        let table: toml::Table = toml::from_str(crate::config::DEFAULTS).unwrap();
        let mut keys = 0;
        for (name, value) in &table {
            let entries: Vec<(String, &toml::Value)> = match value {
                toml::Value::Table(t) => {
                    t.iter().map(|(k, v)| (format!("{name}.{k}"), v)).collect()
                }
                v => vec![(name.clone(), v)],
            };
            for (key, value) in entries {
                let line = format!("- `{key}` = `");
                let variable = format!(
                    "— env `SWITCHBOARD_{}`\n",
                    key.to_uppercase().replace('.', "__")
                );
                let found = (reference.lines()).find(|l| l.starts_with(&line));
                assert!(
                    found.is_some_and(|l| format!("{l}\n").ends_with(&variable)),
                    "{key} = {value} missing"
                );
                keys += 1;
            }
        }
        assert!(keys > 70, "{keys} keys");
        assert!(reference.contains("[[trunks]]") && reference.contains("[[numbers]]"));
    }

    #[test]
    fn comments_become_paragraphs_and_indented_lines_code() {
        let md = markdown(
            "# Head line one\n# and two.\n#   EXAMPLE=1\n\n[s]\n# About a.\na = 1\nb = \"x\"\n# About c.\nc = []\n",
        );
        assert!(
            md.contains("Head line one and two.\n\n```\nEXAMPLE=1\n```"),
            "{md}"
        );
        assert!(
            md.contains("- `s.a` = `1` — env `SWITCHBOARD_S__A`\n- `s.b` = `\"x\"` — env `SWITCHBOARD_S__B`\n\nAbout a.\n"),
            "{md}"
        );
        assert!(
            md.contains("- `s.c` = `[]` — env `SWITCHBOARD_S__C`\n\nAbout c.\n"),
            "{md}"
        );
    }
}
