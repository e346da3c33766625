//! `cargo xtask rename NEW-NAME`: makes this template someone's own service in one step.
//!
//! Every form of the template's name is rewritten in every text file and every path
//! below the workspace root: crate and binary names (`mrmat-api`, `mrmat-api-client`,
//! `-types`, `-testkit`), their Rust paths (`mrmat_api_types::`), the environment
//! prefixes (`MRMAT_API_`, the tests' `MRMAT_TEST_`), metric names (`mrmat_api_...`),
//! scope and client names (`mrmat-api-resource-read`), the realm and database names
//! (`mrmat`), deployment files (`var/`) and docs. It is a rewrite of text, not of
//! syntax: the name is distinctive enough that every occurrence is the project's.
//!
//! The name's *stem* (`mrmat`, and `acme` for `acme-api`) stands alone where the
//! template used it alone (the Keycloak realm, the PostgreSQL role, `MRMAT_TEST_`).
//!
//! Left as they are: `.git/`, `target/`, `node_modules/`, files that are not UTF-8, this
//! module (its template name is data), and the upstream repository URL (a renamed
//! project is not that repository; the summary says to point it at yours). Runs once:
//! on a tree without `crates/mrmat-api` it refuses (exit 2) and changes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The template's name, kebab-case.
pub const TEMPLATE: &str = "mrmat-api";

/// The template's stem: its name without `-api`.
const TEMPLATE_STEM: &str = "mrmat";

/// The upstream repository: a link to where the template came from, not to the renamed
/// project, so it is left for the person to change.
const UPSTREAM: &str = "github.com/MrMatAP/mrmat-api-rust";

/// Directories never entered: version control, build output, installed npm packages.
const SKIPPED_DIRS: &[&str] = &[".git", "target", "node_modules"];

/// This module's own path below the root: it holds the template's name as data.
const THIS_FILE: &str = "xtask/src/rename.rs";

/// The crates the workspace has, as suffixes of the project's name.
const CRATE_SUFFIXES: &[&str] = &["", "-client", "-types", "-testkit"];

const USAGE: &str = "usage: cargo xtask rename NEW-NAME   (kebab-case, e.g. acme-api)";

/// Why a rename was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RenameError {
    /// The new name is not one the workspace can carry.
    #[error("{name:?} cannot be the new name: {reason}")]
    BadName {
        /// What was given.
        name: String,
        /// Why not, and what would do.
        reason: String,
    },
    /// The tree does not hold the template (renamed already, or not this workspace).
    #[error(
        "{root} has no crate {TEMPLATE} to rename ({reason}); the rename runs once, on a fresh clone of the template"
    )]
    NotTheTemplate {
        /// The workspace root.
        root: String,
        /// What is missing.
        reason: String,
    },
    /// A path the rename would create exists already.
    #[error("{0} exists already; the rename would overwrite it")]
    Exists(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl RenameError {
    /// The exit code: 2 for a refusal before anything changed, 1 for a failure on the way.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BadName { .. } | Self::NotTheTemplate { .. } | Self::Exists(_) => 2,
            Self::Io { .. } => 1,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RenameError + '_ {
    move |source| RenameError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A project name in the forms the workspace spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    kebab: String,
    stem: String,
}

/// Words Rust reserves: a crate named so has no usable path (`use type::...`).
const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe",
    "use", "where", "while", "abstract", "become", "box", "do", "final", "macro", "override",
    "priv", "try", "typeof", "unsized", "virtual", "yield",
];

impl Name {
    /// `text` as a new project name: lower-case ASCII words of letters and digits joined
    /// by single hyphens, starting with a letter, at most 50 characters (the longest
    /// crate, `NAME-testkit`, stays within crates.io's 64).
    pub fn parse(text: &str) -> Result<Self, RenameError> {
        let bad = |reason: &str| RenameError::BadName {
            name: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        if text.len() > 50 {
            return Err(bad("it is longer than 50 characters"));
        }
        if text.contains('_') || text.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad(
                "write it in kebab-case (lower case, words joined by '-'), e.g. acme-api; the snake_case and SCREAMING_CASE forms are derived from it",
            ));
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(bad(
                "use only a-z, 0-9 and '-' (it becomes crate, binary, file and variable names)",
            ));
        }
        if !text.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(bad(
                "start it with a letter (a Rust path cannot start with a digit)",
            ));
        }
        if text.ends_with('-') || text.contains("--") {
            return Err(bad("join its words with single hyphens, none at the end"));
        }
        let snake = text.replace('-', "_");
        if RUST_KEYWORDS.contains(&snake.as_str()) {
            return Err(bad(
                "it is a Rust keyword, so the crate could not be named in code",
            ));
        }
        if text.contains(TEMPLATE_STEM) {
            return Err(bad(
                "it contains the template's name; a rename is from the template to a new name",
            ));
        }
        let stem = text.strip_suffix("-api").unwrap_or(text).to_owned();
        Ok(Self {
            kebab: text.to_owned(),
            stem,
        })
    }

    /// `acme-api`: crates, binaries, scopes, files.
    pub fn kebab(&self) -> &str {
        &self.kebab
    }

    /// `acme_api`: Rust paths, metric names.
    pub fn snake(&self) -> String {
        self.kebab.replace('-', "_")
    }

    /// `ACME_API`: environment variables.
    pub fn screaming(&self) -> String {
        self.snake().to_ascii_uppercase()
    }

    /// `AcmeApi`: type names (`NotMrmatApi`).
    pub fn pascal(&self) -> String {
        pascal(&self.kebab)
    }

    /// The name without `-api`, in kebab-case: where the template says `mrmat` alone.
    pub fn stem(&self) -> &str {
        &self.stem
    }

    /// The crate names this name gives the workspace.
    pub fn crates(&self) -> Vec<String> {
        CRATE_SUFFIXES
            .iter()
            .map(|suffix| format!("{}{suffix}", self.kebab))
            .collect()
    }
}

fn pascal(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// `text` with every form of the template's name replaced by `name`'s, the upstream URL
/// kept.
pub fn rewrite(text: &str, name: &Name) -> String {
    text.split(UPSTREAM)
        .map(|part| rewrite_part(part, name))
        .collect::<Vec<_>>()
        .join(UPSTREAM)
}

fn rewrite_part(text: &str, name: &Name) -> String {
    // Whole names first, so what is left of the stem afterwards stands alone.
    let text = text
        .replace(TEMPLATE, name.kebab())
        .replace(&TEMPLATE.replace('-', "_"), &name.snake())
        .replace(
            &TEMPLATE.replace('-', "_").to_ascii_uppercase(),
            &name.screaming(),
        )
        .replace(&pascal(TEMPLATE), &name.pascal())
        .replace(
            &TEMPLATE_STEM.to_ascii_uppercase(),
            &name.stem().replace('-', "_").to_ascii_uppercase(),
        )
        .replace(&pascal(TEMPLATE_STEM), &pascal(name.stem()));
    // The stem alone, lower case: snake_case beside an underscore (`mrmat_test`, a
    // PostgreSQL role, where a hyphen would need quoting), kebab-case elsewhere (a realm).
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(TEMPLATE_STEM) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + TEMPLATE_STEM.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before == Some('_') || after == Some('_') {
            out.push_str(&name.stem().replace('-', "_"));
        } else {
            out.push_str(name.stem());
        }
        rest = &rest[at + TEMPLATE_STEM.len()..];
    }
    out.push_str(rest);
    out
}

/// Whether `text` holds any form of the template's name.
fn mentions_template(text: &str) -> bool {
    text.contains(TEMPLATE_STEM)
        || text.contains(&TEMPLATE_STEM.to_ascii_uppercase())
        || text.contains(&pascal(TEMPLATE_STEM))
}

/// What a rename did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files whose text changed.
    pub files: usize,
    /// Files and directories renamed.
    pub paths: usize,
}

/// Renames the workspace at `root` to `name`.
pub fn rename(root: &Path, name: &Name) -> Result<Summary, RenameError> {
    check_template(root)?;
    check_collisions(root, name)?;
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    walk(root, root, &mut files, &mut dirs)?;
    // Every path to create is checked before anything is written.
    for path in files.iter().chain(&dirs) {
        if let Some(target) = renamed(path, name)
            && target.exists()
        {
            return Err(RenameError::Exists(target.display().to_string()));
        }
    }
    let mut summary = Summary::default();
    for path in &files {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        if !mentions_template(&text) {
            continue;
        }
        let new = rewrite(&text, name);
        if new != text {
            std::fs::write(path, new).map_err(io(path))?;
            summary.files += 1;
        }
    }
    // Deepest first, so a directory is renamed after what is inside it.
    let mut paths: Vec<&PathBuf> = files.iter().chain(&dirs).collect();
    paths.sort_by_key(|path| std::cmp::Reverse(path.components().count()));
    for path in paths {
        if let Some(target) = renamed(path, name) {
            std::fs::rename(path, &target).map_err(io(path))?;
            summary.paths += 1;
        }
    }
    Ok(summary)
}

/// `path` with its last component renamed, when that names the template.
fn renamed(path: &Path, name: &Name) -> Option<PathBuf> {
    let file_name = path.file_name()?.to_str()?;
    if !mentions_template(file_name) {
        return None;
    }
    Some(path.with_file_name(rewrite(file_name, name)))
}

/// Refuses a tree that does not hold the template's server crate.
fn check_template(root: &Path) -> Result<(), RenameError> {
    let manifest = root.join("crates").join(TEMPLATE).join("Cargo.toml");
    let not_template = |reason: String| RenameError::NotTheTemplate {
        root: root.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(&manifest)
        .map_err(|_| not_template(format!("crates/{TEMPLATE}/Cargo.toml is missing")))?;
    if !text.contains(&format!("name = \"{TEMPLATE}\"")) {
        return Err(not_template(format!(
            "crates/{TEMPLATE}/Cargo.toml names another package"
        )));
    }
    Ok(())
}

/// Refuses a name whose crates would take the name of a dependency in `Cargo.lock`
/// (`cargo xtask rename actix-web` would make two packages `actix-web`).
fn check_collisions(root: &Path, name: &Name) -> Result<(), RenameError> {
    let lock_path = root.join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path).map_err(io(&lock_path))?;
    for line in lock.lines() {
        let Some(package) = line
            .strip_prefix("name = \"")
            .and_then(|rest| rest.strip_suffix('"'))
        else {
            continue;
        };
        if name.crates().iter().any(|c| c == package) {
            return Err(RenameError::BadName {
                name: name.kebab().to_owned(),
                reason: format!(
                    "the workspace would get a crate {package}, which is the name of a dependency already"
                ),
            });
        }
    }
    Ok(())
}

/// Collects the files and directories below `dir`, skipping [`SKIPPED_DIRS`], this
/// module and symbolic links (what they point at is not the project's to rename).
fn walk(
    root: &Path,
    dir: &Path,
    files: &mut Vec<PathBuf>,
    dirs: &mut Vec<PathBuf>,
) -> Result<(), RenameError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io(&path))?;
        let skipped = entry
            .file_name()
            .to_str()
            .is_some_and(|n| SKIPPED_DIRS.contains(&n));
        if kind.is_dir() && !skipped {
            walk(root, &path, files, dirs)?;
            dirs.push(path);
        } else if kind.is_file() && path.strip_prefix(root).ok() != Some(Path::new(THIS_FILE)) {
            files.push(path);
        }
    }
    Ok(())
}

/// `cargo xtask rename NEW-NAME`.
pub fn main(args: Vec<String>) -> ExitCode {
    let [new] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if new == "-h" || new == "--help" {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let root = match crate::workspace::root() {
        Ok(root) => root,
        Err(reason) => {
            eprintln!("error: cannot find the workspace to rename: {reason}");
            return ExitCode::from(2);
        }
    };
    let result = Name::parse(new).and_then(|name| Ok((rename(&root, &name)?, name)));
    match result {
        Ok((summary, name)) => {
            println!(
                "renamed {TEMPLATE} to {}: {} files rewritten, {} files and directories renamed",
                name.kebab(),
                summary.files,
                summary.paths
            );
            relock(&root);
            println!(
                "left for you: the repository URL ({UPSTREAM}) in Cargo.toml, var/docker/Dockerfile and var/systemd; then `cargo xtask test`"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Lets cargo write `Cargo.lock` again: it lists packages by name, so renamed crates
/// move, and `--locked` builds refuse a lock file out of order. `cargo update
/// --workspace` re-locks only the workspace's own crates and keeps every dependency's
/// version; `--offline` keeps it from asking the registry (its index is cached by the
/// builds before). `cargo metadata` was tried first: it fetches every platform's
/// dependencies (`r-efi`), which fails offline.
fn relock(root: &Path) {
    let status = Command::new(crate::workspace::cargo())
        .args(["update", "--workspace", "--offline", "--quiet"])
        .current_dir(root)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!(
            "warning: `cargo update --workspace --offline` could not refresh Cargo.lock; run `cargo update --workspace` before a --locked build"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::parse(text).unwrap()
    }

    #[test]
    fn a_kebab_name_gives_every_form() {
        let acme = name("acme-api");
        assert_eq!(acme.kebab(), "acme-api");
        assert_eq!(acme.snake(), "acme_api");
        assert_eq!(acme.screaming(), "ACME_API");
        assert_eq!(acme.pascal(), "AcmeApi");
        assert_eq!(acme.stem(), "acme");
        assert_eq!(
            acme.crates(),
            [
                "acme-api",
                "acme-api-client",
                "acme-api-types",
                "acme-api-testkit"
            ]
        );
        let orders = name("big-co-orders2");
        assert_eq!(orders.snake(), "big_co_orders2");
        assert_eq!(orders.screaming(), "BIG_CO_ORDERS2");
        assert_eq!(orders.pascal(), "BigCoOrders2");
        assert_eq!(orders.stem(), "big-co-orders2", "no -api, no shorter stem");
    }

    #[test]
    fn every_form_of_the_template_name_is_rewritten() {
        let acme = name("acme-api");
        for (before, after) in [
            ("crates/mrmat-api-client", "crates/acme-api-client"),
            (
                "use mrmat_api_types::Problem;",
                "use acme_api_types::Problem;",
            ),
            (
                "MRMAT_API_DB=x MRMAT_API_CLIENT_SERVER=y",
                "ACME_API_DB=x ACME_API_CLIENT_SERVER=y",
            ),
            (
                "mrmat_api_http_requests_total",
                "acme_api_http_requests_total",
            ),
            ("mrmat-api-resource-read", "acme-api-resource-read"),
            ("ClientError::NotMrmatApi", "ClientError::NotAcmeApi"),
            ("CARGO_BIN_EXE_mrmat-api", "CARGO_BIN_EXE_acme-api"),
            ("MRMAT_TEST_POSTGRES_URL", "ACME_TEST_POSTGRES_URL"),
            ("realms/mrmat/protocol", "realms/acme/protocol"),
            (
                "postgres://mrmat_test:pw@h/mrmat",
                "postgres://acme_test:pw@h/acme",
            ),
        ] {
            assert_eq!(rewrite(before, &acme), after, "{before}");
        }
    }

    #[test]
    fn a_stem_of_several_words_is_snake_case_beside_underscores() {
        let big = name("big-co-api");
        assert_eq!(rewrite("mrmat_test mrmat", &big), "big_co_test big-co");
        assert_eq!(rewrite("MRMAT_TEST_IDP_LOG", &big), "BIG_CO_TEST_IDP_LOG");
        assert_eq!(rewrite("MrmatApi", &big), "BigCoApi");
    }

    #[test]
    fn the_upstream_repository_url_is_kept() {
        let text = r#"repository = "https://github.com/MrMatAP/mrmat-api-rust" # mrmat-api"#;
        assert_eq!(
            rewrite(text, &name("acme-api")),
            r#"repository = "https://github.com/MrMatAP/mrmat-api-rust" # acme-api"#
        );
    }

    #[test]
    fn bad_names_are_refused_with_what_would_do() {
        for (bad, says) in [
            ("", "empty"),
            ("Acme-Api", "kebab-case"),
            ("acme_api", "kebab-case"),
            ("acme api", "only a-z"),
            ("acmé", "only a-z"),
            ("9lives", "start it with a letter"),
            ("-acme", "start it with a letter"),
            ("acme-", "single hyphens"),
            ("acme--api", "single hyphens"),
            ("type", "keyword"),
            ("mrmat-api", "template"),
            ("my-mrmat", "template"),
            (&"a".repeat(51), "longer than 50"),
        ] {
            let error = Name::parse(bad).unwrap_err();
            assert_eq!(error.exit_code(), 2);
            assert!(error.to_string().contains(says), "{bad:?}: {error}");
        }
    }

    /// A small tree shaped like the workspace: renamed once, refused the second time.
    #[test]
    fn a_tree_is_renamed_once_and_refused_after() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("Cargo.toml", "members = [\"crates/mrmat-api\"]\n");
        write("Cargo.lock", "name = \"mrmat-api\"\nname = \"serde\"\n");
        write("crates/mrmat-api/Cargo.toml", "name = \"mrmat-api\"\n");
        write("crates/mrmat-api/src/main.rs", "use mrmat_api::run;\n");
        write(
            "var/systemd/mrmat-api.service",
            "EnvironmentFile=/etc/mrmat-api/env\n",
        );
        write("target/debug/mrmat-api", "build output\n");
        write(".git/config", "url = mrmat-api\n");
        write(THIS_FILE, "const TEMPLATE: &str = \"mrmat-api\";\n");
        std::fs::write(root.join("binary.bin"), [0xff, 0xfe, b'm']).unwrap();

        let summary = rename(root, &name("acme-api")).unwrap();
        assert_eq!(summary, Summary { files: 5, paths: 2 });
        let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
        assert_eq!(read("Cargo.toml"), "members = [\"crates/acme-api\"]\n");
        assert_eq!(read("crates/acme-api/src/main.rs"), "use acme_api::run;\n");
        assert_eq!(
            read("var/systemd/acme-api.service"),
            "EnvironmentFile=/etc/acme-api/env\n"
        );
        assert_eq!(read("target/debug/mrmat-api"), "build output\n");
        assert_eq!(read(".git/config"), "url = mrmat-api\n");
        assert!(read(THIS_FILE).contains("\"mrmat-api\""));

        let again = rename(root, &name("other-api")).unwrap_err();
        assert_eq!(again.exit_code(), 2);
        assert!(again.to_string().contains("runs once"), "{again}");
    }

    #[test]
    fn a_name_that_is_a_dependency_already_is_refused_before_anything_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("crates/mrmat-api")).unwrap();
        std::fs::write(
            root.join("crates/mrmat-api/Cargo.toml"),
            "name = \"mrmat-api\"\n",
        )
        .unwrap();
        std::fs::write(root.join("Cargo.lock"), "name = \"actix-web\"\n").unwrap();
        let error = rename(root, &name("actix-web")).unwrap_err();
        assert!(error.to_string().contains("dependency"), "{error}");
        assert!(root.join("crates/mrmat-api").exists());
    }
}
