//! `cairn [config-file] [--param value ...]`: runs the server, like redis-server.

use std::process::ExitCode;

use cairn::config::Config;
use cairn::server;

#[global_allocator]
static ALLOC: cairn::alloc::Counting = cairn::alloc::Counting;

const USAGE: &str = "Usage: cairn [/path/to/cairn.conf] [options] [-]
       cairn -v or --version
       cairn -h or --help
       cairn check|repair|inspect|snapshot|restore|convert|backup ... (operations
             toolbox: `cairn check --help`; see docs/operations.md)

Options are Redis configuration parameters: --port 7777 --dir /data --appendonly yes
Examples:
       cairn                      (127.0.0.1:6379, data in ./)
       cairn /etc/cairn/6379.conf
       cairn --port 7777 --save \"\" --appendonly yes";

fn main() -> ExitCode {
    let all: Vec<String> = std::env::args().collect();
    if all
        .get(1)
        .is_some_and(|a| cairn::ops::SUBCOMMANDS.contains(&a.as_str()))
    {
        return cairn::ops::run(all);
    }
    let args: Vec<String> = all.into_iter().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!(
            "Cairn server v={} (Redis {} compatible)",
            cairn::VERSION,
            cairn::REDIS_COMPAT_VERSION
        );
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    init_logging(&config);
    if config.get_i64("maxmemory") > 0 {
        cairn::alloc::single_arena();
    }
    raise_open_files_limit(config.get_i64("maxclients") as u64);
    // io-threads sets the number of event loops (default: one per core);
    // CAIRN_WORKERS overrides it, for benchmarks.
    let workers = std::env::var("CAIRN_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| config.get_i64("io-threads").max(1) as usize);
    let rt = match cairn::server::event_loop_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let srv = server::Server::new(config);
        cairn::evict::mark_startup();
        if let Err(e) = cairn::acl::load_at_startup(&srv) {
            tracing::error!("Aborting Cairn startup because of ACL errors: {e}");
            return ExitCode::from(1);
        }
        if let Err(e) = cairn::persistence::startup(&srv) {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
        let tls_configured = cairn::tls::configure_at_startup(&srv.tls, &srv.config.read());
        if let Err(e) = tls_configured {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
        let listener = match server::bind(&srv).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("Could not create server TCP listening socket: {e}");
                return ExitCode::from(1);
            }
        };
        let tls_listener = match cairn::tls::bind(&srv).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(1);
            }
        };
        tracing::info!(
            "Cairn {} ready to accept connections on port {}{} ({} I/O threads)",
            cairn::VERSION,
            srv.port.load(std::sync::atomic::Ordering::Relaxed),
            tls_listener
                .as_ref()
                .and_then(|l| l.local_addr().ok())
                .map(|a| format!(" and TLS port {}", a.port()))
                .unwrap_or_default(),
            workers
        );
        let s2 = srv.clone();
        tokio::spawn(async move {
            loop {
                wait_for_signal().await;
                tracing::info!("Received signal, shutting down");
                let s3 = s2.clone();
                let saved = tokio::task::spawn_blocking(move || {
                    cairn::cmd::persistence::save_before_shutdown(&s3, false, false)
                })
                .await;
                if matches!(saved, Ok(Ok(()))) {
                    break;
                }
                tracing::warn!("Signal received but errors trying to shut down the server, check the logs for more information");
            }
            s2.request_shutdown();
        });
        server::serve(srv.clone(), listener, tls_listener, workers).await;
        if let Err(e) = srv.persistence.stop_log() {
            tracing::error!("Error flushing the AOF on shutdown: {e}");
        }
        tracing::info!("Cairn is now ready to exit, bye bye...");
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = int.recv() => {},
        _ = term.recv() => {},
    }
}

fn init_logging(config: &Config) {
    let level = match config.get("loglevel") {
        "debug" => "debug",
        "verbose" => "info",
        "notice" => "info",
        "warning" => "warn",
        _ => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let logfile = config.get("logfile").to_string();
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if logfile.is_empty() {
        builder.init();
    } else {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&logfile)
        {
            Ok(f) => builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init(),
            Err(e) => {
                eprintln!("Can't open the log file {logfile}: {e}; logging to stdout");
                tracing_subscriber::fmt().init();
            }
        }
    }
}

/// Like Redis: make room for maxclients connections plus files of our own,
/// as far as the hard limit allows.
fn raise_open_files_limit(maxclients: u64) {
    const RESERVED_FDS: u64 = 32;
    let want = maxclients + RESERVED_FDS;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= want {
            return;
        }
        let target = want.min(lim.rlim_max);
        let old = lim.rlim_cur;
        lim.rlim_cur = target;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 && target < want {
            tracing::warn!(
                "You requested maxclients of {maxclients} requiring at least {want} max file descriptors; the open files limit went from {old} to {target} (the hard limit)"
            );
        }
    }
}
