//! The `mrmat-api` binary: parse the command line, start logging, load the settings, run.

use std::process::ExitCode;

use mrmat_api::cli::{Cli, Command, ReportFormat};
use mrmat_api::doctor::{DOCTOR_TOKEN_ENV, examine};
use mrmat_api::{Application, Settings, StartupError, logging};
use mrmat_api_types::secret::Secret;

/// Exit code of every configuration problem.
const CONFIG_ERROR: u8 = 2;

fn main() -> ExitCode {
    // A .env file in the working directory, and only there, supplies MRMAT_API_* variables:
    // one in a parent directory belongs to someone else.
    if let Err(e) = dotenvy::from_path(std::path::Path::new(".env"))
        && !e.not_found()
    {
        return fail(&StartupError::Other(format!(".env: {e}")));
    }
    let cli = Cli::parse();

    let command = cli.command.unwrap_or(Command::Serve);
    if command == Command::Openapi {
        return match mrmat_api::openapi_json() {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    }

    if let Command::Doctor { output } = command {
        return doctor(cli.options, output);
    }

    let settings = match Settings::load(cli.options) {
        Ok(settings) => settings,
        Err(e) => return fail(&e.into()),
    };
    // After the settings, so `debug` from the config file counts too.
    logging::init(settings.debug);
    log::debug!("{}", settings.summary());
    let code = match command {
        Command::Migrate => migrate(&settings),
        _ => serve(settings),
    };
    logging::flush();
    code
}

/// Runs the checks and prints them; 0 only when none failed.
fn doctor(options: mrmat_api::cli::Options, output: ReportFormat) -> ExitCode {
    let settings = Settings::load(options);
    if let Ok(settings) = &settings {
        logging::init(settings.debug);
    }
    let token = std::env::var(DOCTOR_TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(|t| Secret::new(t.trim()));
    let mut report = actix_web::rt::System::new().block_on(examine(settings, token));
    // Details quote the provider, the database and file names: text from outside, which
    // must not forge a line or reach the terminal as escape sequences, in either format.
    for check in &mut report.checks {
        check.detail = logging::escape(&check.detail).into_owned();
        check.fix = check
            .fix
            .take()
            .map(|fix| logging::escape(&fix).into_owned());
    }
    let text = match output {
        ReportFormat::Text => report.to_text(),
        ReportFormat::Json => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
    };
    print!("{text}");
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(error: &StartupError) -> ExitCode {
    // What was logged comes first.
    logging::flush();
    // The error may quote a file name, a database's message or a provider's answer.
    eprintln!("error: {}", logging::escape(&error.to_string()));
    ExitCode::from(CONFIG_ERROR)
}

fn migrate(settings: &Settings) -> ExitCode {
    match mrmat_api::migrate(settings) {
        Ok(applied) if applied.is_empty() => {
            println!("database is up to date");
            ExitCode::SUCCESS
        }
        Ok(applied) => {
            println!(
                "applied {} migration(s): {}",
                applied.len(),
                applied.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn serve(settings: Settings) -> ExitCode {
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        for listening in app.listening() {
            log::info!("listening on {listening}");
        }
        for addr in app.metrics_listening() {
            log::info!("metrics on http://{addr}/metrics");
        }
        app.run_until_stopped()
            .await
            .map_err(|e| StartupError::Other(e.to_string()))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}
