//! Where gunicorn + Flask come from: `$BATON_VENV`, else PATH, else a venv made for the bench.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::tools::{on_path, output};

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

/// `python3 -m venv` + `pip install -r requirements.txt`.
fn create(venv: &Path, requirements: &Path) -> Result<(), String> {
    eprintln!("creating {} for gunicorn + Flask", venv.display());
    output(Command::new("python3").arg("-m").arg("venv").arg(venv))?;
    let pip = venv.join("bin/pip");
    output(
        Command::new(pip)
            .args(["install", "-q", "-r"])
            .arg(requirements),
    )
    .map(drop)
}
