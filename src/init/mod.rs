//! `baton init`: one command from an installed package to a configured, enabled app — the
//! config, a deploy key, the webhook secret, the socket drop-ins and `systemctl enable` — and
//! the exact steps left to do at the forge. Re-running it changes nothing: existing keys and
//! secrets are kept, and a config that differs from what it would write is refused, not
//! overwritten.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::forge_setup::Site;

mod files;
use files::{Change, Existing, Owner, ensure_dir, ensure_file, read_existing, write_new};

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// The app's name: /etc/baton/NAME.toml, baton@NAME.service.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Repository to deploy (git@host:owner/name.git or ssh://...).
    #[arg(long, value_name = "URL")]
    pub repo: String,
    /// Branch whose pushes deploy.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// Where the app socket listens (host:port); default: the unit's /run/baton/NAME.app.sock.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where the webhook socket listens (host:port); default /run/baton/NAME.webhook.sock.
    #[arg(long, value_name = "ADDR")]
    pub webhook_listen: Option<String>,
    /// The public URL the forge will POST to (its path becomes the webhook path).
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// The repository host's key fingerprint (SHA256:...), needed for hosts other than
    /// github.com and gitlab.com. Repeatable.
    #[arg(long, value_name = "SHA256:...")]
    pub host_fingerprint: Vec<String>,
    /// Build command, run with `sh -c` in each new release.
    #[arg(long, value_name = "SHELL COMMAND")]
    pub build: Option<String>,
    /// When a new generation counts as ready (`[app] ready`: notify, http:/PATH,
    /// notify+http:/PATH, delay:D).
    #[arg(long, value_name = "MODE")]
    pub ready: Option<String>,
    /// A path kept across releases (`[source] shared`; a trailing `/` makes it a directory),
    /// created empty under the state directory's `shared/`. Repeatable.
    #[arg(long, value_name = "PATH")]
    pub shared: Vec<String>,
    /// Parent of the apps' state directories (the unit's StateDirectory=baton/NAME).
    #[arg(long, default_value = "/var/lib/baton", value_name = "DIR")]
    pub state_root: PathBuf,
    /// Print what would be done, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not run systemctl (daemon-reload, enable --now).
    #[arg(long)]
    pub no_enable: bool,
    /// The account the service runs as; it owns the deploy key.
    #[arg(long, default_value = "baton", value_name = "USER")]
    pub user: String,
    /// Directory for configs, keys and secrets (the units read /etc/baton).
    #[arg(long, default_value = "/etc/baton", value_name = "DIR")]
    pub etc_dir: PathBuf,
    /// Directory for the socket drop-ins.
    #[arg(long, default_value = "/etc/systemd/system", value_name = "DIR")]
    pub unit_dir: PathBuf,
    /// The app's command line, relative to the release directory.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub fn run(args: &InitArgs) -> Result<(), String> {
    check_name(&args.name)?;
    let site = Site::from_repo(&args.repo);
    let service_user = lookup_user(&args.user)?;
    let me = Owner {
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    let name = &args.name;
    let etc = &std::path::absolute(&args.etc_dir)
        .map_err(|e| format!("--etc-dir {}: {e}", args.etc_dir.display()))?;
    let key_path = etc.join(format!("{name}.deploy_key"));
    let secret_path = etc.join(format!("{name}.secret"));
    let config_path = etc.join(format!("{name}.toml"));
    let webhook_path = webhook_path(args.webhook_url.as_deref())?;
    let config = config_text(args, site.as_ref(), &key_path, &webhook_path);
    check_config(&config, site.as_ref(), args)?;

    let dropins: Vec<(PathBuf, String)> = [
        (format!("baton@{name}.socket"), &args.listen),
        (format!("baton-webhook@{name}.socket"), &args.webhook_listen),
    ]
    .into_iter()
    .filter_map(|(unit, addr)| {
        let text = format!(
            "# Written by `baton init {name}`.\n[Socket]\nListenStream=\nListenStream={}\n",
            addr.as_ref()?
        );
        Some((args.unit_dir.join(format!("{unit}.d/listen.conf")), text))
    })
    .collect();
    // Refuse a conflicting config or drop-in before writing anything.
    for (path, text) in
        std::iter::once((&config_path, &config)).chain(dropins.iter().map(|(p, t)| (p, t)))
    {
        ensure_file(path, text, 0o644, me, Existing::MustMatch, true)?;
    }

    let mut changed = false;
    let mut report = |what: &str, path: &Path, change: Change| {
        let verb = match (change, args.dry_run) {
            (Change::Unchanged, _) => "unchanged",
            (Change::Created, true) => "would create",
            (Change::Created, false) => "created",
        };
        changed |= change == Change::Created;
        println!("{verb:>12}  {what} {}", path.display());
    };

    ensure_dir(etc, 0o755, args.dry_run)?;
    let public_key = ensure_deploy_key(&key_path, name, service_user, args.dry_run)?;
    report("deploy key", &key_path, public_key.1);
    let public_key = match (public_key, args.dry_run) {
        ((_, Change::Created), true) => "<the public half of the new key>".to_string(),
        ((line, _), _) => line,
    };
    let pub_path = etc.join(format!("{name}.deploy_key.pub"));
    let change = ensure_file(
        &pub_path,
        &public_key,
        0o644,
        me,
        Existing::Keep,
        args.dry_run,
    )?;
    report("public key", &pub_path, change);
    let change = ensure_secret(&secret_path, me, args.dry_run)?;
    report("webhook secret", &secret_path, change);
    let change = ensure_file(
        &config_path,
        &config,
        0o644,
        me,
        Existing::MustMatch,
        args.dry_run,
    )?;
    report("config", &config_path, change);
    if !args.shared.is_empty() {
        let shared = args.state_root.join(name).join("shared");
        for dir in [args.state_root.join(name), shared.clone()] {
            let change = files::ensure_owned_dir(&dir, 0o750, service_user, args.dry_run)?;
            report("state directory", &dir, change);
        }
        for entry in &args.shared {
            let path = shared.join(entry.trim_end_matches('/'));
            let change = if entry.ends_with('/') {
                files::ensure_owned_dir(&path, 0o750, service_user, args.dry_run)?
            } else {
                ensure_file(&path, "", 0o600, service_user, Existing::Keep, args.dry_run)?
            };
            report("shared", &path, change);
        }
    }

    let mut dropins_changed = false;
    for (path, text) in &dropins {
        if let Some(dir) = path.parent() {
            ensure_dir(dir, 0o755, args.dry_run)?;
        }
        let change = ensure_file(path, text, 0o644, me, Existing::MustMatch, args.dry_run)?;
        dropins_changed |= change == Change::Created;
        report("drop-in", path, change);
    }

    if !args.no_enable {
        changed |= enable(name, dropins_changed, args.dry_run)?;
    }
    if !changed {
        println!("nothing to do: baton init {name} was already done");
    }
    println!();
    let payload_url = match &args.webhook_url {
        Some(url) => url.clone(),
        None => format!(
            "https://YOUR-SERVER{webhook_path} (a reverse proxy in front of the webhook \
             socket: docs/proxy.md)"
        ),
    };
    match &site {
        Some(site) => print!(
            "{}",
            site.instructions(
                public_key.trim(),
                &payload_url,
                &secret_path.display().to_string()
            )
        ),
        None => println!("The repository is local: no deploy key or webhook to set up."),
    }
    println!("Then check everything with: baton doctor {name}");
    Ok(())
}

/// An app name ends up in unit names and file names: keep it to what both accept plainly.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "app name `{}` must be 1-64 of a-z, 0-9, `-`, `_` (it names units and files)",
            name.escape_debug()
        ))
    }
}

fn lookup_user(user: &str) -> Result<Owner, String> {
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Ok(Owner {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }),
        Ok(None) => Err(format!(
            "user `{user}` does not exist: the baton package creates it (or \
             `useradd --system --user-group --home-dir /var/lib/baton --shell /usr/sbin/nologin {user}`)"
        )),
        Err(e) => Err(format!("cannot look up user `{user}`: {e}")),
    }
}

/// The path part of `--webhook-url` (default `/webhook`).
fn webhook_path(url: Option<&str>) -> Result<String, String> {
    let Some(url) = url else {
        return Ok("/webhook".to_string());
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("--webhook-url {url} must start with https:// (or http://)"))?;
    match rest.find('/') {
        Some(i) if rest.len() > i + 1 => Ok(rest[i..]
            .split(['?', '#'])
            .next()
            .unwrap_or("/")
            .to_string()),
        _ => Ok("/webhook".to_string()),
    }
}

/// A TOML string: `toml` quotes and escapes it.
fn quoted(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

fn quoted_list(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| quoted(v)).collect();
    format!("[{}]", items.join(", "))
}

fn config_text(args: &InitArgs, site: Option<&Site>, key: &Path, webhook_path: &str) -> String {
    let mut out = format!(
        "# Written by `baton init {}`. Edit freely; `baton check -c` this file afterwards.\n",
        args.name
    );
    out.push_str("[app]\n");
    out.push_str(&format!("command = {}\n", quoted_list(&args.command)));
    if let Some(ready) = &args.ready {
        out.push_str(&format!("ready = {}\n", quoted(ready)));
    }
    out.push('\n');
    out.push_str("[webhook]\n");
    out.push_str(&format!("path = {}\n", quoted(webhook_path)));
    if let Some(repository) = site.and_then(Site::repository) {
        out.push_str(&format!("repository = {}\n", quoted(repository)));
    }
    out.push_str("\n[source]\n");
    out.push_str(&format!("repo = {}\n", quoted(&args.repo)));
    out.push_str(&format!("branch = {}\n", quoted(&args.branch)));
    if site.is_some() {
        out.push_str(&format!(
            "deploy_key = {}\n",
            quoted(&key.display().to_string())
        ));
    }
    if !args.host_fingerprint.is_empty() {
        out.push_str(&format!(
            "host_fingerprints = {}\n",
            quoted_list(&args.host_fingerprint)
        ));
    }
    if !args.shared.is_empty() {
        out.push_str(&format!("shared = {}\n", quoted_list(&args.shared)));
    }
    if let Some(build) = &args.build {
        out.push_str("\n[build]\n");
        out.push_str(&format!(
            "command = {}\n",
            quoted_list(&["sh".into(), "-c".into(), build.clone()])
        ));
    }
    out
}

/// Refuses what `baton run` would refuse, before anything is written: the config must parse,
/// the repository URL and branch must be valid, and the host must be trusted (a pinned forge
/// or `--host-fingerprint`).
fn check_config(text: &str, site: Option<&Site>, args: &InitArgs) -> Result<(), String> {
    toml::from_str::<crate::config::FileConfig>(text)
        .map_err(|e| format!("internal error: generated config: {e}"))?;
    for fp in &args.host_fingerprint {
        baton_deploy::Fingerprint::parse(fp).map_err(|e| e.to_string())?;
    }
    let source = baton_deploy::Source {
        repo: args.repo.clone(),
        branch: args.branch.clone(),
        host_fingerprints: args.host_fingerprint.clone(),
        ..baton_deploy::Source::default()
    };
    // The key does not exist yet, so the one complaint about it is expected; for ssh the
    // host-key rule is checked here instead.
    match source.validate() {
        Err(e) if !e.to_string().contains("no deploy_key is set") => return Err(e.to_string()),
        _ => {}
    }
    if let Some(site) = site {
        let pinned = baton_deploy::forge_keys::forge_for(&site.host, site.port).is_some();
        if !pinned && args.host_fingerprint.is_empty() {
            return Err(format!(
                "{} is not github.com or gitlab.com, whose host keys baton knows: pass \
                 --host-fingerprint SHA256:... as the server's owner gives it \
                 (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server)",
                site.host
            ));
        }
    }
    Ok(())
}

/// The deploy key's public half, generating the key (ed25519, OpenSSH format, 0600, owned by
/// the service user) unless it exists. An existing key is read, never replaced.
fn ensure_deploy_key(
    path: &Path,
    name: &str,
    owner: Owner,
    dry_run: bool,
) -> Result<(String, Change), String> {
    if let Some(existing) = read_existing(path)? {
        let text = String::from_utf8(existing)
            .map_err(|_| format!("deploy key {} is not an OpenSSH key", path.display()))?;
        let key = PrivateKey::from_openssh(&text)
            .map_err(|e| format!("deploy key {} cannot be read: {e}", path.display()))?;
        let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
        if meta.mode() & 0o077 != 0 || meta.uid() != owner.uid {
            return Err(format!(
                "deploy key {0} must be mode 0600 and owned by uid {1}: run `chown {1} {0} && chmod 600 {0}`",
                path.display(),
                owner.uid
            ));
        }
        return Ok((public_line(&key)?, Change::Unchanged));
    }
    let mut key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519)
        .map_err(|e| format!("cannot generate a deploy key: {e}"))?;
    key.set_comment(format!("baton {name} deploy key"));
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| format!("cannot encode the deploy key: {e}"))?;
    if !dry_run {
        write_new(path, text.as_bytes(), 0o600, owner)?;
    }
    Ok((public_line(&key)?, Change::Created))
}

fn public_line(key: &PrivateKey) -> Result<String, String> {
    key.public_key()
        .to_openssh()
        .map(|line| format!("{line}\n"))
        .map_err(|e| format!("cannot encode the public key: {e}"))
}

/// 32 random bytes as hex, root-only: systemd hands it to the service as a credential.
fn ensure_secret(path: &Path, owner: Owner, dry_run: bool) -> Result<Change, String> {
    if read_existing(path)?.is_some() {
        return Ok(Change::Unchanged);
    }
    let mut bytes = [0u8; 32];
    ssh_key::rand_core::RngCore::try_fill_bytes(&mut ssh_key::rand_core::OsRng, &mut bytes)
        .map_err(|e| format!("no randomness for the webhook secret: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if !dry_run {
        write_new(path, format!("{hex}\n").as_bytes(), 0o600, owner)?;
    }
    Ok(Change::Created)
}

/// `systemctl daemon-reload` when drop-ins changed, then `enable --now` both sockets unless
/// they are enabled already. True when it ran (or would run) anything.
fn enable(name: &str, reload: bool, dry_run: bool) -> Result<bool, String> {
    let unit = format!("baton@{name}.socket");
    let enabled = Command::new("systemctl")
        .args(["is-enabled", "--quiet", &unit])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut steps: Vec<Vec<&str>> = Vec::new();
    if reload {
        steps.push(vec!["daemon-reload"]);
    }
    // Both sockets listen from now on: the webhook one too, so that the forge's first
    // delivery (and `baton doctor`'s ping) reach baton.
    let webhook = format!("baton-webhook@{name}.socket");
    if !enabled || reload {
        steps.push(vec!["enable", "--now", &unit, &webhook]);
    }
    if steps.is_empty() {
        println!("{:>12}  {unit} enabled", "unchanged");
    }
    let ran = !steps.is_empty();
    for step in steps {
        let shown = format!("systemctl {}", step.join(" "));
        if dry_run {
            println!("{:>12}  {shown}", "would run");
            continue;
        }
        let out = Command::new("systemctl")
            .args(&step)
            .output()
            .map_err(|e| format!("cannot run systemctl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{shown} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        println!("{:>12}  {shown}", "ran");
    }
    Ok(ran)
}
