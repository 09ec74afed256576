//! `xmppd-load`: the XMPP load generator (see `app` and bench/README.md).

mod app;

use clap::Parser;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = app::Args::parse();
    let json = args.json;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = args.threads {
        rt.worker_threads(t.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(app::run(args)) {
        Ok(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            let provision = report.get("scenario") == Some(&app::report::Value::Str("provision".into()));
            let failed = !provision
                && (report.int("logins_failed") > 0
                    || report.int("msgs_lost") != 0
                    || report.int("presence_lost") != 0
                    || report.int("logins_ok") == 0
                    || !matches!(report.get("errors"), None | Some(app::report::Value::Null)));
            if failed {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
