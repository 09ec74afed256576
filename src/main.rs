//! `xmppd serve | check-config | ctl`: the command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use xmppd::config::{Config, LogFormat, Source};
use xmppd::server::{LogFilterSetter, Server};
use xmppd::storage::sqlite::SqliteStore;

/// An XMPP server daemon.
#[derive(Parser)]
#[command(name = "xmppd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server in the foreground (logs to stderr).
    Serve {
        /// Configuration file (default: ./config/xmppd.toml, then /etc/xmppd/xmppd.toml, then the embedded default).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and exit (0 when valid).
    CheckConfig {
        /// Configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Administration commands, named as ejabberdctl's (`xmppd ctl help`).
    Ctl {
        /// Configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { config } => match Config::load(config.as_deref()) {
            Ok((_, source)) => {
                println!("{}: configuration is valid", describe(&source));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Ctl { config, args } => {
            ExitCode::from(xmppd::ctl::run_cli(config.as_deref(), args).clamp(0, 255) as u8)
        }
    }
}

fn describe(source: &Source) -> String {
    match source {
        Source::File(p) => p.display().to_string(),
        Source::Embedded => "embedded default".into(),
    }
}

fn serve(path: Option<PathBuf>) -> ExitCode {
    let (config, source) = match Config::load(path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let set_filter = init_logging(&config);
    tracing::info!(config = %describe(&source), "xmppd {} starting", env!("CARGO_PKG_VERSION"));
    let file = match source {
        Source::File(p) => Some(std::fs::canonicalize(&p).unwrap_or(p)),
        Source::Embedded => None,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(config, file, set_filter)) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Install the log subscriber (`log.format`, `log.level` or `RUST_LOG`)
/// and return the setter reload uses for a new `log.level`.
fn init_logging(config: &Config) -> LogFilterSetter {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let from_env = std::env::var_os("RUST_LOG").is_some();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match config.log.format {
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).init(),
        LogFormat::Json => registry.with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr)).init(),
    }
    Box::new(move |level: &str| {
        if from_env {
            tracing::warn!("RUST_LOG is set and overrides log.level = {level:?}");
            return Ok(());
        }
        let f = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(f).map_err(|e| e.to_string())
    })
}

/// Tell systemd (Type=notify) how we are; nothing happens without
/// `NOTIFY_SOCKET`.
fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

async fn run(config: Config, file: Option<PathBuf>, set_filter: LogFilterSetter) -> anyhow::Result<()> {
    use anyhow::Context;
    use sd_notify::NotifyState;
    let store = SqliteStore::open(&config.data_dir).context("opening the store")?;
    let server = Server::bind(config, Arc::new(store)).await?;
    let shared = server.shared.clone();
    if let Some(f) = file {
        let _ = shared.config_file.set(f);
    }
    let _ = shared.log_filter.set(set_filter);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
        else {
            return;
        };
        shared.ready.cancelled().await;
        notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM received"); break }
                _ = int.recv() => { tracing::info!("SIGINT received"); break }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP received: reloading the configuration");
                    let mut reloading = vec![NotifyState::Reloading];
                    reloading.extend(NotifyState::monotonic_usec_now().ok());
                    notify(&reloading);
                    let s = shared.clone();
                    let status = match tokio::task::spawn_blocking(move || xmppd::reload::reload(&s)).await {
                        Ok(Ok(_)) => "serving; configuration reloaded".to_string(),
                        _ => "serving; last reload refused (see the log)".to_string(),
                    };
                    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
                }
                _ = shared.shutdown.cancelled() => break,
            }
        }
        notify(&[NotifyState::Stopping]);
        shared.shutdown.cancel();
    });
    server.run().await?;
    Ok(())
}
