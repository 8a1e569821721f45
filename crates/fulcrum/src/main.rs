use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// mimalloc: measured faster than glibc malloc for the proxy's many small,
// short-lived allocations (see DESIGN.md and bench/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "fulcrum", version, about = "An L4/L7 load balancer")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the load balancer with a config file.
    Run {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Take the listening sockets over from the fulcrum running at the
        /// config's `runtime.upgrade_socket` (a binary upgrade); it drains once
        /// this one serves.
        #[arg(long)]
        upgrade: bool,
    },
    /// Check a config file and print every problem found; exit status 0 if valid.
    Check {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Start three demo backends, the load balancer and its admin server on loopback.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
        /// Worker threads (default: one per CPU core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Simulate the balancing algorithms on a synthetic workload (in-process) and write a report with plots.
    Simulate(fulcrum::simulate::Options),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match fulcrum::config::load(&config) {
            Ok(c) => {
                for warning in fulcrum::config::warnings(&c) {
                    eprintln!("warning: {}: {warning}", config.display());
                }
                println!(
                    "{}: ok ({} listener(s), {} cluster(s))",
                    config.display(),
                    c.listeners.len(),
                    c.clusters.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config, upgrade } => match fulcrum::config::load(&config) {
            Ok(c) => {
                fulcrum::telemetry::logging::init(c.runtime.log_level.as_deref());
                finish(fulcrum::runtime::run(c, Some(config), upgrade))
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Demo {
            listen,
            admin,
            workers,
        } => {
            fulcrum::telemetry::logging::init(None);
            finish(demo(listen, admin, workers))
        }
        Command::Simulate(options) => finish(fulcrum::simulate::run(&options)),
    }
}

fn demo(listen: SocketAddr, admin: SocketAddr, workers: Option<usize>) -> anyhow::Result<()> {
    let backends = fulcrum::demo::start_backends()?;
    let workers =
        workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let text = fulcrum::demo::config_text(listen, admin, &backends, workers);
    let config =
        fulcrum::config::parse("(demo config)", &text).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("fulcrum demo: backends fast, medium and slow-tail on {backends:?}");
    println!(
        "  try:  curl http://{listen}/             (repeat it: the answering backend changes)"
    );
    println!("        curl http://{admin}/clusters      (endpoints, health, load)");
    println!("        curl http://{admin}/metrics       (Prometheus)");
    println!("  Ctrl-C stops it.");
    fulcrum::runtime::run(config, None, false)
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
