//! `baton run`: gather sockets, then supervise generations until SIGTERM/SIGINT.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use baton_handoff::generation::LaunchSpec;
use baton_handoff::listen::{self, Socket};
use baton_handoff::steer::{Origin, Steering};
use baton_handoff::supervisor::{self, Request, Settings};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

mod resumed;
mod sockets;

use crate::config::{Config, RunFlags};
use crate::control;
use crate::trigger::{Action, Dispatcher};
use crate::upgrade::Upgrader;
use crate::webhook::{self, Endpoint, dedupe::Deliveries, secret};
use baton_handoff::error::ReloadError;
use resumed::Resumed;
use sockets::{copy_socket, kit_listener, open_control, socket_copy, take_named};

/// Socket names that stay with baton when socket-activated; all others go to the app.
const BATON_SOCKETS: &[&str] = &["webhook", "control"];

pub fn run(flags: &RunFlags) -> Result<(), String> {
    // An upgraded image takes its sockets and generation from the image before it.
    let handed = crate::upgrade::take_state()?;
    let (inherited, resumed) = match handed {
        Some(state) => {
            let (sockets, resumed) = Resumed::take(state)?;
            (sockets, Some(resumed))
        }
        // SAFETY: nothing else runs yet; this is the only thread.
        None => (
            unsafe { listen::take_inherited() }.map_err(|e| e.to_string())?,
            None,
        ),
    };
    // The environment is edited: threads may start. Hash the binary before anyone asks.
    std::thread::spawn(crate::build_info::current);
    let config = Config::resolve(flags)?;
    if config.deploy.is_none() {
        config
            .command
            .check_executable()
            .map_err(|e| e.to_string())?;
    }
    // A generation that a crashed baton left serving keeps serving until a new one is ready.
    let record_path = config.runtime_dir.join("serving.json");
    let orphans = match &resumed {
        Some(_) => Vec::new(),
        None => baton_handoff::adopt::Record::find_orphans(&record_path),
    };
    for o in &orphans {
        tracing::warn!(
            "generation {} (pid {}) of a baton that stopped without draining still serves; it is drained once a new generation is ready",
            o.number,
            o.pid
        );
    }
    let activated = !inherited.is_empty();
    let (mut kept, app_sockets) = listen::split_by_name(inherited, BATON_SOCKETS);
    let app_sockets = if activated {
        if !config.listen.is_empty() && resumed.is_none() {
            tracing::warn!("socket-activated: ignoring --listen / [app] listen");
        }
        app_sockets
    } else {
        sockets::bind_all(&config.listen, orphans.first())?
    };
    if app_sockets.is_empty() {
        return Err(if activated {
            "socket activation passed no socket for the app (only baton's own)".into()
        } else {
            "no sockets for the app: give --listen ADDR or run under socket activation".into()
        });
    }
    for s in &app_sockets {
        tracing::info!("app socket {} on {}", s.name, s.origin);
    }
    let webhook = prepare_webhook(&config, take_named(&mut kept, "webhook"))?;
    let control_fd = take_named(&mut kept, "control");
    crate::paths::prepare_runtime(
        &config.runtime_dir,
        control_fd.is_none().then_some(&*config.control),
    )?;
    if config.deploy.is_some() {
        create_dir(&config.state_dir, "state")?;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let mut config = config;
        let state = config
            .deploy
            .as_ref()
            .map(|d| Arc::new(crate::deploy::DeployState::new(&d.state_dir)));
        let current = config
            .deploy
            .as_ref()
            .zip(state.as_ref())
            .map(|(d, s)| current_release(d, s));
        if let Some(Some(release)) = &current {
            // Relative app paths resolve inside the release.
            config.command.cwd = Some(release.dir.clone());
            config
                .command
                .check_executable()
                .map_err(|e| e.to_string())?;
        }
        // With deploys configured but no release yet, the first generation waits for the first
        // deploy, which runs like any other (control socket and webhook already up).
        let deploy_first = matches!(current, Some(None)) && resumed.is_none();
        supervise(
            config,
            state,
            app_sockets,
            control_fd,
            webhook,
            deploy_first,
            Predecessor {
                resumed,
                record: record_path,
                orphans,
            },
        )
        .await
    })
}

/// The release to run at start-up, if there is one; deploys interrupted by the last stop are
/// recorded as such.
fn current_release(
    deploy: &crate::deploy::Settings,
    state: &crate::deploy::DeployState,
) -> Option<baton_deploy::Release> {
    match state
        .history
        .close_running("interrupted: baton stopped during the deploy")
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!("{n} deploy(s) were interrupted by the last stop"),
        Err(e) => tracing::warn!("cannot close interrupted deploys in the history: {e}"),
    }
    let current = state.releases.current();
    match &current {
        Some(release) => tracing::info!("starting the current release {}", release.id),
        None => tracing::info!(
            "no current release: deploying {} first",
            deploy.source.branch
        ),
    }
    current
}

/// Waits for the start-up deploy, keeping systemd's start timeout extended meanwhile (a first
/// build can take longer than `TimeoutStartSec=`). If it fails there is nothing to serve: the
/// supervisor is told to stop with the reason.
async fn first_deploy(answer: crate::trigger::Pending, supervisor: mpsc::Sender<Request>) {
    tokio::pin!(answer);
    let outcome = loop {
        baton_handoff::upstream::extend_timeout(
            std::time::Duration::from_secs(60),
            "first deploy: fetching and building",
        );
        tokio::select! {
            outcome = &mut answer => break outcome,
            () = tokio::time::sleep(std::time::Duration::from_secs(20)) => {}
        }
    };
    let Err(reason) = outcome else {
        return;
    };
    let reason = format!("the first deploy failed: {reason}");
    let _ = supervisor.send(Request::Fail { reason }).await;
}

/// The webhook socket, its verification config and the delivery log, or `None` when no
/// webhook socket is configured. A secret without a socket (or the reverse) is an error.
fn prepare_webhook(
    config: &Config,
    activated: Option<Socket>,
) -> Result<Option<(Socket, baton_webhook::Config, Deliveries)>, String> {
    let w = &config.webhook;
    let socket = match (activated, &w.listen) {
        (Some(s), _) => Some(s),
        (None, Some(spec)) => Some(listen::bind(spec).map_err(|e| format!("webhook: {e}"))?),
        (None, None) => None,
    };
    let Some(socket) = socket else {
        if w.secret_file.is_some() {
            return Err("a webhook secret is configured but no webhook socket: give --webhook-listen or a socket named 'webhook'".into());
        }
        return Ok(None);
    };
    let path = secret::locate(w.secret_file.as_deref()).ok_or(
        "the webhook needs a secret: --webhook-secret-file FILE or the systemd credential 'webhook-secret'",
    )?;
    let bytes = secret::read(&path)?;
    let mut verify = baton_webhook::Config::new(
        baton_webhook::Secret::new(bytes).map_err(|e| format!("webhook secret: {e}"))?,
    );
    verify.branch = w.branch.clone();
    verify.path = w.path.clone();
    verify.repository = w.repository.clone();
    verify.deploy_on = w.deploy_on.clone();
    create_dir(&config.state_dir, "state")?;
    let deliveries = Deliveries::load(config.state_dir.join("webhook-deliveries.json"))?;
    tracing::info!(
        "webhook on {} at {} for branch {}",
        socket.origin,
        w.path,
        w.branch
    );
    Ok(Some((socket, verify, deliveries)))
}

fn create_dir(dir: &Path, what: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create {what} directory {}: {e}", dir.display()))?;
    // Fail at start-up, not at the first deploy, when the directory is not ours to write.
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK)
        .map_err(|e| format!("{what} directory {} is not writable: {e}", dir.display()))
}

type Webhook = Option<(Socket, baton_webhook::Config, Deliveries)>;

/// What this baton takes over from the one before it: an upgrade's state, or the generations
/// a crashed baton left serving (found through the record in the runtime directory).
struct Predecessor {
    resumed: Option<Resumed>,
    record: PathBuf,
    orphans: Vec<baton_handoff::adopt::Record>,
}

async fn supervise(
    config: Config,
    state: Option<Arc<crate::deploy::DeployState>>,
    app_sockets: Vec<Socket>,
    control_fd: Option<Socket>,
    webhook: Webhook,
    deploy_first: bool,
    predecessor: Predecessor,
) -> Result<(), String> {
    let Predecessor {
        mut resumed,
        record,
        orphans,
    } = predecessor;
    // Handlers first: an early SIGHUP must not kill baton with the default action.
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut usr2 = signal(SignalKind::user_defined2()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;

    let (control_listener, mut control_path) =
        open_control(&config.control, &config.control_access, control_fd)?;
    if let Some(r) = &resumed {
        // The image before created it: remove it when this one stops.
        control_path = r.control_path.clone();
    }
    let control_dup = socket_copy(
        &control_listener,
        "control",
        &config.control.display().to_string(),
    )?;
    let (tx, rx) = mpsc::channel(64);
    let (notices_tx, notices) = mpsc::unbounded_channel();
    let deploys = config.deploy.clone().zip(state).map(|(settings, state)| {
        let settings = Arc::new(settings);
        let (deploy_tx, deploy_rx) = mpsc::channel(64);
        let queue = crate::deploy::queue::run(
            settings.clone(),
            state.clone(),
            tx.clone(),
            deploy_rx,
            notices,
        );
        tokio::spawn(queue);
        (settings, state, deploy_tx)
    });
    let front = Dispatcher::new(tx.clone(), deploys.as_ref().map(|(_, _, d)| d.clone()));
    let mut startup_deploy = None;
    if let Some((settings, state, _)) = &deploys {
        if deploy_first {
            // Queued before the poller starts, so the poller sees it and does not race it.
            let action = Action::Deploy {
                rev: None,
                trigger: crate::deploy::Trigger::Startup,
            };
            startup_deploy = front.submit(action).await.ok();
        }
        if let Some(every) = settings.poll_interval {
            let poll =
                crate::deploy::poll::poll(settings.clone(), state.clone(), front.clone(), every);
            tokio::spawn(poll);
        }
    }
    let origin = match (&resumed, orphans.first()) {
        (Some(r), _) => Origin::Resumed {
            slot: r.supervisor.generation.slot,
        },
        (None, Some(o)) => Origin::TakingOver {
            orphans: orphans.len(),
            slot: o.slot,
        },
        (None, None) => Origin::Fresh,
    };
    let siblings = resumed
        .as_mut()
        .map(|r| std::mem::take(&mut r.siblings))
        .unwrap_or_default();
    let steering = Arc::new(Steering::new(app_sockets, siblings, &config.steer, origin));
    let upgrader = Arc::new(Upgrader {
        steering: steering.clone(),
        webhook: webhook
            .as_ref()
            .map(|(s, _, _)| copy_socket(s))
            .transpose()?,
        control: control_dup,
        control_path: control_path.clone(),
        supervisor: tx.clone(),
        front: front.clone(),
    });
    tokio::spawn(control::serve(
        control_listener,
        front.clone(),
        upgrader.clone(),
        config.control_access.clone(),
    ));
    if let Some(addr) = config.metrics {
        crate::metrics::start(addr, front.clone())?;
    }
    tracing::info!("control socket {}", config.control.display());
    if let Some((socket, verify, deliveries)) = webhook {
        let endpoint = Arc::new(Endpoint {
            config: verify,
            deliveries: Arc::new(Mutex::new(deliveries)),
            front: front.clone(),
            budget: webhook::budget::Budget::new(webhook::BODY_BUDGET),
        });
        let listener = kit_listener(socket)?;
        let tls = config.webhook.tls.as_ref();
        let tls = tls
            .map(|(c, k)| crate::tls::server_config(c, k))
            .transpose()?;
        tokio::spawn(webhook::serve(
            vec![listener],
            endpoint,
            std::future::pending(),
            tls,
        ));
    }

    let settings = Settings {
        launch: LaunchSpec {
            command: config.command,
            runtime_dir: config.runtime_dir,
            extra_env: Vec::new(),
        },
        steering,
        lifecycle: config.lifecycle,
        notices: deploys.is_some().then_some(notices_tx),
        start_at_once: !deploy_first,
        resume: resumed.as_ref().map(|r| r.supervisor.clone()),
        record: Some(record),
        orphans,
    };
    let mut lifecycle = tokio::spawn(supervisor::run(settings, rx));
    if let Some(r) = resumed {
        tokio::spawn(r.answer(front.clone()));
    }
    if let Some(answer) = startup_deploy {
        tokio::spawn(first_deploy(answer, tx.clone()));
    }
    let result = loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reload requested");
                match front.submit(Action::Reload).await {
                    Ok(outcome) => { tokio::spawn(log_sighup_outcome(outcome)); }
                    Err(e) => tracing::warn!("SIGHUP: {e}"),
                }
            }
            _ = usr2.recv() => {
                tracing::info!("SIGUSR2: upgrade in place requested");
                let why = upgrader.upgrade(None).await;
                tracing::error!("upgrade failed, this baton keeps running: {why}");
            }
            _ = term.recv() => break shut_down(&tx, &mut lifecycle, "SIGTERM").await,
            _ = int.recv() => break shut_down(&tx, &mut lifecycle, "SIGINT").await,
            done = &mut lifecycle => break done.map_err(|e| e.to_string())?.map_err(|e| e.to_string()),
        }
    };
    if let Some(path) = control_path {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// SIGHUP's answer goes to the log, since nobody waits for it.
async fn log_sighup_outcome(outcome: crate::trigger::Pending) {
    match outcome.await {
        Ok(_) => tracing::info!("SIGHUP: reload done"),
        Err(e) => tracing::error!("SIGHUP: reload failed: {e}"),
    }
}

async fn shut_down(
    tx: &mpsc::Sender<Request>,
    lifecycle: &mut tokio::task::JoinHandle<Result<(), ReloadError>>,
    why: &str,
) -> Result<(), String> {
    tracing::info!("{why}: draining and exiting");
    let _ = tx.send(Request::Shutdown).await;
    lifecycle
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
