//! The flags of `baton run`: each overrides the same setting of the config file.

use std::ffi::OsString;
use std::path::PathBuf;

/// Flags of `baton run` that override the file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct RunFlags {
    /// TOML configuration file.
    #[arg(short = 'c', long)]
    pub config: Option<PathBuf>,
    /// Listen on [NAME=]ADDR (host:port, [ipv6-host]:port or a unix socket path) when not
    /// socket-activated. Repeatable.
    #[arg(long, value_name = "[NAME=]ADDR")]
    pub listen: Vec<String>,
    /// Control socket for `baton reload` / `baton status`.
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Let members of this group use the control socket too (default: root and baton's uid).
    #[arg(long, value_name = "NAME")]
    pub control_group: Option<String>,
    /// Directory for baton's persistent state.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Directory for baton's sockets (default: $RUNTIME_DIRECTORY, /run/baton as root, else
    /// $XDG_RUNTIME_DIR/baton).
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// Working directory of the app.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// When a new generation counts as ready: notify (READY=1, default), http:/PATH (a 2xx from
    /// the new generation on a private probe socket), notify+http:/PATH, or delay:DURATION.
    #[arg(long, value_name = "MODE")]
    pub ready: Option<String>,
    /// How long a new generation may take to become ready (default 60s).
    #[arg(long, value_name = "DURATION")]
    pub ready_timeout: Option<String>,
    /// Signal that asks the old generation to finish and exit (default SIGTERM).
    #[arg(long, value_name = "SIGNAL")]
    pub drain_signal: Option<String>,
    /// How long the old generation may drain before it is killed (default 30s).
    #[arg(long, value_name = "DURATION")]
    pub drain_timeout: Option<String>,
    /// How long a ready generation serves next to the old one, watched, before the old one is
    /// told to drain (default 5s; 0 turns probation off).
    #[arg(long, value_name = "DURATION")]
    pub probation: Option<String>,
    /// Deaths of the serving generation within a window that roll a release back:
    /// DEATHS/WINDOW (default 3/5m) or off.
    #[arg(long, value_name = "N/DURATION")]
    pub crash_loop: Option<String>,
    /// Share every socket between generations instead of steering new connections to the
    /// newest one before the old one drains (see docs/apps.md, "Steering").
    #[arg(long)]
    pub no_steer: bool,
    /// How long the old generation's accept queue must stay empty before it is told to drain
    /// (default 100ms).
    #[arg(long, value_name = "DURATION")]
    pub settle: Option<String>,
    /// Serve the push webhook on [NAME=]ADDR (when not socket-activated with a `webhook` socket).
    #[arg(long, value_name = "ADDR")]
    pub webhook_listen: Option<String>,
    /// URL path of the webhook endpoint (default /webhook).
    #[arg(long, value_name = "PATH")]
    pub webhook_path: Option<String>,
    /// File holding the webhook secret (default: the systemd credential `webhook-secret`).
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Only pushes to this repository (owner/name) deploy.
    #[arg(long, value_name = "OWNER/NAME")]
    pub webhook_repository: Option<String>,
    /// Branch whose pushes deploy (default main).
    #[arg(long)]
    pub branch: Option<String>,
    /// Git repository to deploy from (enables deploys: fetch, build, release directories).
    #[arg(long, value_name = "URL")]
    pub repo: Option<String>,
    /// Private deploy key for an ssh repository (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub deploy_key: Option<PathBuf>,
    /// known_hosts file for the repository's host (baton never reads ~/.ssh).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// The app's command line.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}
