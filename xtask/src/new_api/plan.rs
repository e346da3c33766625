//! What `new-api` writes: the new files, rendered from the templates, and the edits of
//! existing files, each found by a line it must sit next to. Checked whole before any of
//! it is written, so a refused name or an unexpected workspace leaves nothing behind.

use std::path::{Path, PathBuf};

use super::error::Error;
use super::names::Names;

const API_DIR: &str = "crates/mrmat-api/src/api";
const REGISTRY: &str = "crates/mrmat-api/src/api/mod.rs";
const SCHEMA: &str = "crates/mrmat-api/src/db/schema.rs";
const MIGRATIONS: &str = "crates/mrmat-api/migrations";
const TYPES_LIB: &str = "crates/mrmat-api-types/src/lib.rs";
const SCOPES: &str = "crates/mrmat-api-types/src/scope.rs";
const API_TESTS: &str = "crates/mrmat-api/tests/api";

/// The templates, compiled in: `new-api` needs no file outside the binary to run.
mod templates {
    pub(super) mod crud {
        pub(in super::super) const MOD: &str = include_str!("../../templates/crud/mod.rs.tmpl");
        pub(in super::super) const V1: &str = include_str!("../../templates/crud/v1.rs.tmpl");
        pub(in super::super) const TYPES: &str = include_str!("../../templates/crud/types.rs.tmpl");
        pub(in super::super) const TESTS: &str = include_str!("../../templates/crud/tests.rs.tmpl");
        pub(in super::super) const SQLITE_UP: &str =
            include_str!("../../templates/crud/sqlite_up.sql.tmpl");
        pub(in super::super) const POSTGRES_UP: &str =
            include_str!("../../templates/crud/postgres_up.sql.tmpl");
        pub(in super::super) const DOWN: &str = include_str!("../../templates/crud/down.sql.tmpl");
        pub(in super::super) const SCHEMA: &str =
            include_str!("../../templates/crud/schema.rs.tmpl");
        pub(in super::super) const SCOPES: &str = include_str!("../../templates/crud/scopes.tmpl");
    }
    pub(super) mod plain {
        pub(in super::super) const MOD: &str = include_str!("../../templates/plain/mod.rs.tmpl");
        pub(in super::super) const V1: &str = include_str!("../../templates/plain/v1.rs.tmpl");
        pub(in super::super) const TYPES: &str =
            include_str!("../../templates/plain/types.rs.tmpl");
        pub(in super::super) const TESTS: &str =
            include_str!("../../templates/plain/tests.rs.tmpl");
    }
}

/// One change of an existing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// `line` into the first run of lines that start with `prefix`, where it sorts.
    SortedLine {
        /// What every line of the run starts with, e.g. `pub mod `.
        prefix: &'static str,
        /// The line.
        line: String,
    },
    /// `text` before the first line that is `closing` after the line that starts with
    /// `opener`: the last entry of a list.
    BeforeClosing {
        /// The start of the line that opens the list (after indentation).
        opener: &'static str,
        /// The whole line that closes it.
        closing: &'static str,
        /// What to insert (whole lines).
        text: String,
    },
    /// `text` at the end of the file.
    Append(String),
}

impl Edit {
    /// `text` with the edit made, or `None` when its place is not there.
    pub fn apply(&self, text: &str) -> Option<String> {
        let mut lines: Vec<&str> = text.lines().collect();
        match self {
            Edit::SortedLine { prefix, line } => {
                let start = lines.iter().position(|l| l.starts_with(prefix))?;
                let end = start
                    + lines[start..]
                        .iter()
                        .take_while(|l| l.starts_with(prefix))
                        .count();
                let at = start
                    + lines[start..end]
                        .iter()
                        .take_while(|l| **l < line.as_str())
                        .count();
                lines.insert(at, line);
                Some(joined(&lines))
            }
            Edit::BeforeClosing {
                opener,
                closing,
                text: insert,
            } => {
                let open = lines
                    .iter()
                    .position(|l| l.trim_start().starts_with(opener))?;
                let close = open + lines[open..].iter().position(|l| l == closing)?;
                let mut out = joined(&lines[..close]);
                out.push_str(insert);
                out.push_str(&joined(&lines[close..]));
                Some(out)
            }
            Edit::Append(more) => Some(format!("{text}{more}")),
        }
    }
}

fn joined(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// `template` with every `{{key}}` of `vars` replaced.
pub fn render(template: &str, vars: &[(&'static str, String)]) -> String {
    vars.iter().fold(template.to_owned(), |text, (key, value)| {
        text.replace(&format!("{{{{{key}}}}}"), value)
    })
}

/// Everything `new-api` writes.
#[derive(Debug)]
pub struct Plan {
    /// New files (relative to the workspace) and their content.
    creates: Vec<(PathBuf, String)>,
    /// Existing files and the edits each gets, in order.
    edits: Vec<(PathBuf, Vec<Edit>)>,
    /// What is already called NAME, if anything: checked before writing.
    taken: Vec<String>,
}

impl Plan {
    /// The plan for `names` in the workspace at `root`, at `now` (seconds since the epoch,
    /// for the migration's version).
    pub fn new(root: &Path, names: &Names, crud: bool, now: u64) -> Result<Self, Error> {
        let name = &names.name;
        let scope_prefix = match crud {
            true => scope_prefix(&read(root, SCOPES)?)?,
            false => String::new(),
        };
        let vars = names.vars(&scope_prefix);
        let (module, v1, types, tests) = match crud {
            true => (
                templates::crud::MOD,
                templates::crud::V1,
                templates::crud::TYPES,
                templates::crud::TESTS,
            ),
            false => (
                templates::plain::MOD,
                templates::plain::V1,
                templates::plain::TYPES,
                templates::plain::TESTS,
            ),
        };
        let mut creates = vec![
            (
                PathBuf::from(format!("{API_DIR}/{name}/mod.rs")),
                render(module, &vars),
            ),
            (
                PathBuf::from(format!("{API_DIR}/{name}/v1.rs")),
                render(v1, &vars),
            ),
            (
                PathBuf::from(format!("crates/mrmat-api-types/src/{name}.rs")),
                render(types, &vars),
            ),
            (
                PathBuf::from(format!("{API_TESTS}/{name}.rs")),
                render(tests, &vars),
            ),
        ];
        let mut edits = vec![
            (
                PathBuf::from(REGISTRY),
                vec![
                    Edit::SortedLine {
                        prefix: "pub(crate) mod ",
                        line: format!("pub(crate) mod {name};"),
                    },
                    Edit::BeforeClosing {
                        opener: "pub(crate) const APIS",
                        closing: "];",
                        text: format!("    {name}::v1::MOUNT,\n"),
                    },
                ],
            ),
            (
                PathBuf::from(TYPES_LIB),
                vec![Edit::SortedLine {
                    prefix: "pub mod ",
                    line: format!("pub mod {name};"),
                }],
            ),
            (
                PathBuf::from(format!("{API_TESTS}/main.rs")),
                vec![Edit::SortedLine {
                    prefix: "mod ",
                    line: format!("mod {name};"),
                }],
            ),
        ];
        let mut taken = Vec::new();
        let registry = read(root, REGISTRY)?;
        if registry.contains(&format!("mod {name};")) || registry.contains(&format!("\"{name}\"")) {
            taken.push(format!("an API or module `{name}` is in {REGISTRY}"));
        }
        if crud {
            let version = migration_version(&existing_versions(root)?, now);
            for (backend, up) in [
                ("sqlite", templates::crud::SQLITE_UP),
                ("postgres", templates::crud::POSTGRES_UP),
            ] {
                let dir = format!("{MIGRATIONS}/{backend}/{version}_create_{name}");
                creates.push((PathBuf::from(format!("{dir}/up.sql")), render(up, &vars)));
                creates.push((
                    PathBuf::from(format!("{dir}/down.sql")),
                    render(templates::crud::DOWN, &vars),
                ));
            }
            let schema = read(root, SCHEMA)?;
            if schema.contains(&format!(" {name} (")) {
                taken.push(format!("a table `{name}` is in {SCHEMA}"));
            }
            let scopes = read(root, SCOPES)?;
            let variant = &names.type_name;
            if scopes.contains(&format!("{variant}Read ="))
                || scopes.contains(&format!("{variant}Write ="))
            {
                taken.push(format!(
                    "the scopes {variant}Read/{variant}Write are in {SCOPES}"
                ));
            }
            edits.push((
                PathBuf::from(SCHEMA),
                vec![Edit::Append(render(templates::crud::SCHEMA, &vars))],
            ));
            edits.push((
                PathBuf::from(SCOPES),
                vec![Edit::BeforeClosing {
                    opener: "scopes! {",
                    closing: "}",
                    text: render(templates::crud::SCOPES, &vars),
                }],
            ));
        }
        Ok(Self {
            creates,
            edits,
            taken,
        })
    }

    /// Refuses (exit 2) when NAME is taken, and fails when a file to create exists or an
    /// edit's place is missing: before anything is written.
    pub fn check(&self, root: &Path) -> Result<(), Error> {
        let mut taken = self.taken.clone();
        let api_dir = root.join(API_DIR).join(self.name_dir());
        if api_dir.exists() {
            taken.push(format!("{} exists", relative(root, &api_dir)));
        }
        for (path, _) in &self.creates {
            // Files inside an API directory that exists were named with it.
            if root.join(path).exists() && !root.join(path).starts_with(&api_dir) {
                taken.push(format!("{} exists", path.display()));
            }
        }
        if !taken.is_empty() {
            return Err(Error::Name(format!(
                "the name is taken: {}; pick another name",
                taken.join("; ")
            )));
        }
        for (path, edits) in &self.edits {
            let mut text = read(root, path)?;
            for edit in edits {
                text = edit.apply(&text).ok_or_else(|| {
                    Error::Workspace(format!(
                        "{}: cannot find where to add {edit:?}; add it by hand (docs/ADDING_AN_API.md)",
                        path.display()
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// The API's directory name (the first created file's parent).
    fn name_dir(&self) -> PathBuf {
        self.creates
            .first()
            .and_then(|(path, _)| path.parent())
            .and_then(Path::file_name)
            .map(PathBuf::from)
            .unwrap_or_default()
    }

    /// Writes every file; returns what it wrote (relative paths).
    pub fn write(&self, root: &Path) -> Result<Vec<PathBuf>, Error> {
        let mut written = Vec::new();
        for (path, content) in &self.creates {
            let full = root.join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            std::fs::write(&full, content).map_err(|source| Error::Io { path: full, source })?;
            written.push(path.clone());
        }
        for (path, edits) in &self.edits {
            let mut text = read(root, path)?;
            for edit in edits {
                // `check` found every place; a file changed since is a workspace error.
                text = edit.apply(&text).ok_or_else(|| {
                    Error::Workspace(format!("{} changed while writing", path.display()))
                })?;
            }
            let full = root.join(path);
            std::fs::write(&full, text).map_err(|source| Error::Io { path: full, source })?;
            written.push(path.clone());
        }
        Ok(written)
    }

    /// Each file and whether it was created or edited.
    pub fn summary(&self) -> Vec<(PathBuf, &'static str)> {
        let created = self.creates.iter().map(|(p, _)| (p.clone(), "created"));
        let edited = self.edits.iter().map(|(p, _)| (p.clone(), "edited"));
        created.chain(edited).collect()
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read(root: &Path, path: impl AsRef<Path>) -> Result<String, Error> {
    let full = root.join(path);
    std::fs::read_to_string(&full).map_err(|source| Error::Io { path: full, source })
}

/// What the existing scope names start with (`mrmat-api` in `mrmat-api-resource-read`):
/// the scopes of a new API start the same, renamed workspaces included.
pub fn scope_prefix(scope_rs: &str) -> Result<String, Error> {
    scope_rs
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once("Read = \"")?;
            let (token, rest) = rest.split_once('"')?;
            let (_, rest) = rest.split_once("api: \"")?;
            let (api, _) = rest.split_once('"')?;
            token
                .strip_suffix(&format!("-{}-read", api.replace('_', "-")))
                .map(str::to_owned)
        })
        .next()
        .ok_or_else(|| {
            Error::Workspace(format!(
                "{SCOPES}: no scope of the form `XRead = \"PREFIX-API-read\", api: \"API\", Read;` in its scopes! list"
            ))
        })
}

/// The versions (`YYYY-MM-DD-HHMMSS`) of the migrations of both backends.
fn existing_versions(root: &Path) -> Result<Vec<String>, Error> {
    let mut versions = Vec::new();
    for backend in ["sqlite", "postgres"] {
        let dir = root.join(MIGRATIONS).join(backend);
        let entries = std::fs::read_dir(&dir).map_err(|source| Error::Io { path: dir, source })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((version, _)) = name.split_once('_') {
                versions.push(version.to_owned());
            }
        }
    }
    Ok(versions)
}

/// The new migration's version: now, or one second after the latest existing one when
/// that is later (diesel applies migrations in version order, and the new table refers
/// to `owners`, which an earlier migration makes).
pub fn migration_version(existing: &[String], now: u64) -> String {
    let now = version_at(now);
    match existing.iter().max() {
        Some(latest) if *latest >= now => next_version(latest),
        _ => now,
    }
}

/// `YYYY-MM-DD-HHMMSS` of `secs` since the epoch (UTC), by the civil-from-days algorithm
/// (Howard Hinnant's): no date crate for one timestamp.
fn version_at(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}-{:02}{:02}{:02}",
        rest / 3_600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The version one second after `version` within its day (a later second of the same
/// day always exists for the versions this repository uses, `...-000000`); a version of
/// another shape gets `-000001` appended to its date.
fn next_version(version: &str) -> String {
    match version.rsplit_once('-') {
        Some((date, time)) if time.len() == 6 => match time.parse::<u32>() {
            Ok(t) if t < 235_959 => format!("{date}-{:06}", t + 1),
            _ => format!("{version}1"),
        },
        _ => format!("{version}-000001"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_templates() -> Vec<&'static str> {
        vec![
            templates::crud::MOD,
            templates::crud::V1,
            templates::crud::TYPES,
            templates::crud::TESTS,
            templates::crud::SQLITE_UP,
            templates::crud::POSTGRES_UP,
            templates::crud::DOWN,
            templates::crud::SCHEMA,
            templates::crud::SCOPES,
            templates::plain::MOD,
            templates::plain::V1,
            templates::plain::TYPES,
            templates::plain::TESTS,
        ]
    }

    /// `{{word}}` left in a rendered template: a placeholder without a value.
    fn placeholders(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("{{") {
            let after = &rest[at + 2..];
            let word: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !word.is_empty() && after[word.len()..].starts_with("}}") {
                found.push(word);
            }
            rest = &rest[at + 2..];
        }
        found
    }

    #[test]
    fn every_placeholder_of_every_template_is_filled() {
        let names = Names::new("gift_cards").unwrap();
        let vars = names.vars("acme-api");
        for template in all_templates() {
            assert!(!placeholders(template).is_empty() || !template.contains("{{"));
            let rendered = render(template, &vars);
            assert_eq!(placeholders(&rendered), Vec::<String>::new(), "{rendered}");
        }
        let v1 = render(templates::crud::V1, &vars);
        assert!(v1.contains("mount!(\"gift_cards\", \"v1\""), "{v1}");
        assert!(v1.contains("Authorized<GiftCardWrite>"), "{v1}");
        let scopes = render(templates::crud::SCOPES, &vars);
        assert!(
            scopes.contains(
                "GiftCardRead = \"acme-api-gift-cards-read\", api: \"gift_cards\", Read;"
            ),
            "{scopes}"
        );
    }

    #[test]
    fn the_scope_prefix_is_read_from_the_existing_scopes() {
        let scope_rs = "scopes! {\n    /// Read resources.\n    ResourceRead = \"acme-api-resource-read\", api: \"resource\", Read;\n}\n";
        assert_eq!(scope_prefix(scope_rs).unwrap(), "acme-api");
        assert!(scope_prefix("pub enum Scope {}").is_err());
    }

    #[test]
    fn sorted_lines_go_where_they_sort_in_the_first_run() {
        let text = "//! doc\n\npub mod a;\npub mod c;\n\npub mod z;\n";
        let edit = Edit::SortedLine {
            prefix: "pub mod ",
            line: "pub mod b;".to_owned(),
        };
        assert_eq!(
            edit.apply(text).unwrap(),
            "//! doc\n\npub mod a;\npub mod b;\npub mod c;\n\npub mod z;\n"
        );
        let last = Edit::SortedLine {
            prefix: "pub mod ",
            line: "pub mod d;".to_owned(),
        };
        assert!(
            last.apply(text)
                .unwrap()
                .contains("pub mod c;\npub mod d;\n\n")
        );
        assert_eq!(last.apply("nothing\n"), None);
    }

    #[test]
    fn list_entries_go_before_the_closing_line_of_their_list() {
        let text = "const X: &[u8] = &[\n    1,\n];\npub(crate) const APIS: &[Mount] = &[\n    a::MOUNT,\n];\n";
        let edit = Edit::BeforeClosing {
            opener: "pub(crate) const APIS",
            closing: "];",
            text: "    b::MOUNT,\n".to_owned(),
        };
        assert_eq!(
            edit.apply(text).unwrap(),
            "const X: &[u8] = &[\n    1,\n];\npub(crate) const APIS: &[Mount] = &[\n    a::MOUNT,\n    b::MOUNT,\n];\n"
        );
        let missing = Edit::BeforeClosing {
            opener: "scopes! {",
            closing: "}",
            text: String::new(),
        };
        assert_eq!(missing.apply(text), None);
    }

    #[test]
    fn migration_versions_are_utc_dates_after_every_existing_one() {
        assert_eq!(version_at(0), "1970-01-01-000000");
        assert_eq!(version_at(951_868_799), "2000-02-29-235959");
        assert_eq!(version_at(1_796_569_445), "2026-12-06-150405");
        let existing = vec![
            "2026-11-23-000000".to_owned(),
            "2026-12-10-000000".to_owned(),
        ];
        assert_eq!(
            migration_version(&existing, 1_796_569_445),
            "2026-12-10-000001"
        );
        assert_eq!(
            migration_version(&existing, 1_900_000_000),
            version_at(1_900_000_000)
        );
    }
}
