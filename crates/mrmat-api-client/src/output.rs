//! Printing: the one way this binary writes to stdout ([`write`]) and stderr
//! ([`write_err`]), and results as tables for people or JSON for scripts. Tables are
//! measured in terminal columns (a CJK character or an emoji takes two), and long cells
//! are cut with `…` so every line fits the terminal; JSON always carries the full values.
//! Every cell passes through the sanitiser.
//!
//! A reader that closes either pipe early (`| head`, `2>&1 | head`) ends the process at
//! once, quietly, with exit status [`EXIT_PIPE_CLOSED`]: what a shell reports for a tool
//! killed by SIGPIPE, as `cat` or `grep` would be. Rust ignores SIGPIPE, so a write to
//! the closed pipe fails with `EPIPE`, and `println!`/`eprintln!` would panic on it: they
//! are not used. Restoring SIGPIPE's default instead would also kill the process on a
//! write to a socket the provider reset, which must stay an error to report.

use std::io::{IsTerminal, Write};

use mrmat_api_client::ClientError;
use mrmat_api_client::sanitise::printable;
use serde::Serialize;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::cli::OutputFormat;

/// Space between columns.
const GAP: usize = 2;
/// A column is never cut below this width (or its heading's, when narrower).
const MIN_COLUMN: usize = 4;
const ELLIPSIS: char = '…';

/// The exit status when a reader closed stdout or stderr: 128 + SIGPIPE (13), as a shell
/// reports for a tool the signal ended, and as 130 (128 + SIGINT) is Ctrl-C's. Not 0: a
/// `token` or a login that could not be shown did not happen; not 1: nothing went wrong
/// that the person did not choose.
pub const EXIT_PIPE_CLOSED: u8 = 141;

/// Writes `text` to stdout. A closed pipe ends the process ([`EXIT_PIPE_CLOSED`]); any
/// other failure is an error.
pub fn write(text: &str) -> Result<(), ClientError> {
    let mut stdout = std::io::stdout().lock();
    emit(&mut stdout, text).map_err(|e| ClientError::Output(e.to_string()))
}

/// Writes `text` to stderr. A closed pipe ends the process ([`EXIT_PIPE_CLOSED`]); any
/// other failure is ignored, as there is nowhere left to say it.
pub fn write_err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = emit(&mut stderr, text);
}

/// Writes and flushes `text`; a closed pipe never returns.
fn emit(stream: &mut impl Write, text: &str) -> std::io::Result<()> {
    match stream
        .write_all(text.as_bytes())
        .and_then(|()| stream.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::exit(i32::from(EXIT_PIPE_CLOSED))
        }
        other => other,
    }
}

/// Prints `value` as JSON, or as the rows `table` makes of it.
pub fn print<T: Serialize>(
    format: OutputFormat,
    value: &T,
    table: impl FnOnce(&T) -> Table,
) -> Result<(), ClientError> {
    match format {
        OutputFormat::Json => {
            let json = serde_json::to_string_pretty(value)
                .map_err(|e| ClientError::Output(e.to_string()))?;
            write(&format!("{}\n", escape_for_terminal(&json)))
        }
        OutputFormat::Table => write(&table(value).render(terminal_width())),
    }
}

/// `json` with the characters serde leaves raw but a terminal would act on (C1 controls,
/// bidi controls) written as `\uXXXX` escapes: the same JSON value, safe to print. They
/// can only occur inside strings, where such an escape means the same character.
fn escape_for_terminal(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        // ASCII controls other than DEL are escaped by serde already; newlines and
        // indentation outside strings are the layout.
        let raw = !c.is_ascii() || c == '\u{7f}';
        if raw && printable(&c.to_string()) != c.to_string() {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// The width to fit tables into: `COLUMNS` when set (as shells and tests set it), else
/// stdout's terminal; `None` (no limit) when stdout is not a terminal.
pub fn terminal_width() -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
    {
        return Some(columns);
    }
    if !std::io::stdout().is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| usize::from(w.0))
}

/// Rows of text with an optional header, aligned by column.
///
/// Hand-written, not comfy-table, measured (2026-12, comfy-table 7.2.2 with default
/// features off): the crate is cheap (about 3 s of CPU to build, about 190 KB of release
/// binary) but cannot give this contract. Configured as close as it goes (no borders,
/// two-space gaps, `…` truncation, one line per row, id and time columns held at their
/// content width), a 3-column table at 12 and at 30 columns came out 36 wide, the name
/// column cut to one character and its heading wrapped down the page; letting the kept
/// columns shrink instead cuts them first, where this table cuts them last (ids and
/// times are what a person copies). The width rule below is the part it lacks, and
/// would have to be kept beside it anyway.
#[derive(Debug, Default)]
pub struct Table {
    header: Option<Vec<String>>,
    rows: Vec<Vec<String>>,
    /// Columns that keep their width when the table must shrink (ids, times).
    fixed: Vec<usize>,
    /// A detail view (`key: value`): shown whole, the terminal wraps long values.
    whole: bool,
}

impl Table {
    /// A table with column headings.
    pub fn with_header(header: &[&str]) -> Self {
        Self {
            header: Some(header.iter().map(|h| (*h).to_owned()).collect()),
            ..Self::default()
        }
    }

    /// Marks columns that are cut only when cutting the others is not enough.
    pub fn keep_width(mut self, columns: &[usize]) -> Self {
        self.fixed = columns.to_vec();
        self
    }

    /// A table of `key: value` lines, never cut: a detail view shows values whole.
    pub fn fields(fields: &[(&str, String)]) -> Self {
        Self {
            rows: fields
                .iter()
                .map(|(k, v)| match (k.is_empty(), v.is_empty()) {
                    // A blank line between groups.
                    (true, true) => Vec::new(),
                    _ => vec![format!("{k}:"), printable(v)],
                })
                .collect(),
            whole: true,
            ..Self::default()
        }
    }

    /// A single line of text.
    pub fn line(text: &str) -> Self {
        Self {
            rows: vec![vec![printable(text)]],
            ..Self::default()
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| printable(c)).collect());
    }

    /// The text, each line ending in a newline and no wider than `width` columns when
    /// given (unless even the narrowest columns cannot fit).
    pub fn render(&self, width: Option<usize>) -> String {
        let all: Vec<&Vec<String>> = self.header.iter().chain(self.rows.iter()).collect();
        let count = all.iter().map(|r| r.len()).max().unwrap_or(0);
        let natural: Vec<usize> = (0..count)
            .map(|c| {
                all.iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.width())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let widths = match width {
            Some(width) if !self.whole => self.fit(&natural, width),
            _ => natural,
        };
        let mut out = String::new();
        for row in all {
            let last = row.len().saturating_sub(1);
            for (i, cell) in row.iter().enumerate() {
                let column = widths.get(i).copied().unwrap_or(0);
                let shown = cut(cell, column);
                out.push_str(&shown);
                if i < last {
                    out.extend(std::iter::repeat_n(' ', column - shown.width() + GAP));
                }
            }
            out.push('\n');
        }
        out
    }

    /// Column widths that fit `width`: the widest cuttable column shrinks first, one
    /// column at a time, down to a floor; kept columns only when nothing else is left.
    fn fit(&self, natural: &[usize], width: usize) -> Vec<usize> {
        let mut widths = natural.to_vec();
        let gaps = GAP * widths.len().saturating_sub(1);
        let floor = |c: usize| {
            let heading = self
                .header
                .as_ref()
                .and_then(|h| h.get(c))
                .map_or(0, |h| h.width());
            natural[c].min(MIN_COLUMN.max(heading))
        };
        for allow_fixed in [false, true] {
            while widths.iter().sum::<usize>() + gaps > width {
                let widest = (0..widths.len())
                    .filter(|&c| allow_fixed || !self.fixed.contains(&c))
                    .filter(|&c| widths[c] > floor(c))
                    .max_by_key(|&c| (widths[c], std::cmp::Reverse(c)));
                match widest {
                    Some(c) => widths[c] -= 1,
                    None => break,
                }
            }
        }
        widths
    }
}

/// `text` cut to at most `width` columns, ending in `…` when cut.
pub fn cut(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let room = width.saturating_sub(1);
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > room {
            break;
        }
        used += w;
        out.push(c);
    }
    if width > 0 {
        out.push(ELLIPSIS);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widths(text: &str) -> Vec<usize> {
        text.lines().map(UnicodeWidthStr::width).collect()
    }

    #[test]
    fn columns_are_aligned_by_display_width() {
        let mut table = Table::with_header(&["ID", "NAME", "X"]);
        table.row(vec!["1".into(), "名前".into(), "a".into()]);
        table.row(vec!["10".into(), "x".into(), "b".into()]);
        assert_eq!(
            table.render(None),
            "ID  NAME  X\n1   名前  a\n10  x     b\n"
        );
    }

    #[test]
    fn long_cells_are_cut_with_an_ellipsis_to_fit_the_width() {
        let mut table = Table::with_header(&["ID", "NAME", "UPDATED"]).keep_width(&[0, 2]);
        table.row(vec![
            "1".into(),
            "n".repeat(255),
            "2026-01-01 00:00:00 UTC".into(),
        ]);
        table.row(vec![
            "2".into(),
            "🦀".repeat(100),
            "2026-01-01 00:00:00 UTC".into(),
        ]);
        let text = table.render(Some(80));
        assert!(widths(&text).iter().all(|&w| w <= 80), "{text}");
        assert!(text.contains('…'));
        assert!(
            text.contains("2026-01-01 00:00:00 UTC"),
            "kept columns stay whole"
        );
    }

    #[test]
    fn a_wide_character_that_does_not_fit_is_not_split() {
        assert_eq!(cut("名前名前", 4), "名…");
        assert_eq!(cut("abc", 3), "abc");
    }

    #[test]
    fn a_very_narrow_terminal_still_gets_every_column() {
        let mut table = Table::with_header(&["ID", "NAME"]);
        table.row(vec!["12345678".into(), "n".repeat(40)]);
        let text = table.render(Some(12));
        assert!(widths(&text).iter().all(|&w| w <= 12), "{text}");
    }

    #[test]
    fn json_output_escapes_what_a_terminal_would_act_on_and_keeps_the_value() {
        let value = serde_json::json!({"name": "a\u{9b}2J\u{202e}b\u{1b}[0m 名"});
        let json = serde_json::to_string_pretty(&value).unwrap();
        let safe = escape_for_terminal(&json);
        assert!(safe.contains(r"a\u009b2J\u202eb\u001b[0m 名"), "{safe}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&safe).unwrap(),
            value
        );
    }

    #[test]
    fn fields_render_as_key_value_lines() {
        assert_eq!(
            Table::fields(&[("a", "1".into()), ("long", "2".into())]).render(None),
            "a:     1\nlong:  2\n"
        );
    }

    #[test]
    fn escape_sequences_from_the_server_are_not_printed() {
        let rendered = Table::line("a\nb\u{1b}[2J").render(None);
        assert_eq!(rendered, "a b\u{fffd}\n");
    }
}
