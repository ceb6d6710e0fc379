//! Where gunicorn + Flask come from: `$BATON_VENV`, else PATH, else a venv made for the bench.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `bin` directory holding gunicorn, or why there is none (the Flask rows say so).
pub fn gunicorn_bin(repo: &Path) -> Result<PathBuf, String> {
    if let Some(v) = std::env::var_os("BATON_VENV") {
        let bin = PathBuf::from(v).join("bin");
        if bin.join("gunicorn").exists() {
            return Ok(bin);
        }
    }
    if let Some(bin) = on_path("gunicorn") {
        return Ok(bin);
    }
    let venv = repo.join("target/bench-venv");
    if !venv.join("bin/gunicorn").exists() {
        create(&venv, &repo.join("examples/flask/requirements.txt"))?;
    }
    Ok(venv.join("bin"))
}

/// The directory of `program` on PATH, if it is there.
fn on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).find(|dir| dir.join(program).is_file())
}

/// `python3 -m venv` + `pip install -r requirements.txt`, output shown as it happens.
fn create(venv: &Path, requirements: &Path) -> Result<(), String> {
    eprintln!("creating {} for gunicorn + Flask", venv.display());
    run(Command::new("python3").arg("-m").arg("venv").arg(venv))?;
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "-r"])
        .arg(requirements))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}
