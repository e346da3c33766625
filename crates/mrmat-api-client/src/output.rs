//! Printing results: aligned tables for people, JSON for scripts.

use serde::Serialize;

use crate::cli::OutputFormat;

/// Prints `value` as JSON, or as the rows `table` makes of it.
pub fn print<T: Serialize>(format: OutputFormat, value: &T, table: impl FnOnce(&T) -> Table) {
    match format {
        OutputFormat::Json => match serde_json::to_string_pretty(value) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("error: cannot print JSON: {e}"),
        },
        OutputFormat::Table => print!("{}", table(value).render()),
    }
}

/// Rows of text with an optional header, aligned by column.
#[derive(Debug, Default)]
pub struct Table {
    header: Option<Vec<String>>,
    rows: Vec<Vec<String>>,
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
                .map(|(k, v)| vec![format!("{k}:"), v.clone()])
                .collect(),
        }
    }

    /// A single line of text.
    pub fn line(text: impl Into<String>) -> Self {
        Self {
            header: None,
            rows: vec![vec![text.into()]],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
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
}
