//! Printing results: aligned tables for people, JSON for scripts. A reader that closes the
//! pipe early (`| head`) ends the output quietly, not with a panic.

use std::io::Write;

use mrmat_api_client::ClientError;
use serde::Serialize;

use crate::cli::OutputFormat;

/// Writes `text` to stdout.
pub fn write(text: &str) -> Result<(), ClientError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(ClientError::Output(e.to_string()))
        }
        _ => Ok(()),
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
            write(&format!("{json}\n"))
        }
        OutputFormat::Table => write(&table(value).render()),
    }
}

/// Rows of text with an optional header, aligned by column.
#[derive(Debug, Default)]
pub struct Table {
    header: Option<Vec<String>>,
    rows: Vec<Vec<String>>,
}

/// Text from the server, fit for a terminal: control characters become spaces.
fn cell(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Table {
    /// A table with column headings.
    pub fn with_header(header: &[&str]) -> Self {
        Self {
            header: Some(header.iter().map(|h| (*h).to_owned()).collect()),
            rows: Vec::new(),
        }
    }

    /// A table of `key: value` lines.
    pub fn fields(fields: &[(&str, String)]) -> Self {
        Self {
            header: None,
            rows: fields
                .iter()
                .map(|(k, v)| vec![format!("{k}:"), cell(v)])
                .collect(),
        }
    }

    /// A single line of text.
    pub fn line(text: &str) -> Self {
        Self {
            header: None,
            rows: vec![vec![cell(text)]],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| cell(c)).collect());
    }

    /// The text, each line ending in a newline.
    pub fn render(&self) -> String {
        let all: Vec<&Vec<String>> = self.header.iter().chain(self.rows.iter()).collect();
        let columns = all.iter().map(|r| r.len()).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                all.iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in all {
            let last = row.len().saturating_sub(1);
            for (i, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if i < last {
                    let pad = widths[i] - cell.chars().count() + 2;
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_by_characters() {
        let mut table = Table::with_header(&["ID", "NAME"]);
        table.row(vec!["1".into(), "é".into()]);
        table.row(vec!["10".into(), "x".into()]);
        assert_eq!(table.render(), "ID  NAME\n1   é\n10  x\n");
    }

    #[test]
    fn fields_render_as_key_value_lines() {
        assert_eq!(
            Table::fields(&[("a", "1".into()), ("long", "2".into())]).render(),
            "a:     1\nlong:  2\n"
        );
    }

    #[test]
    fn control_characters_from_the_server_are_not_printed() {
        assert_eq!(Table::line("a\nb\u{1b}[2J").render(), "a b [2J\n");
    }
}
