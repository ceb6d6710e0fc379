//! Running a child as another user: the app and the build get their own uid, so that code
//! anyone with push access wrote cannot read baton's secrets or drive its control socket.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

use nix::unistd::{Gid, Group, Uid, User};

/// A user (and group) to run a child as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user's uid.
    pub uid: Uid,
    /// The configured group, else the user's primary group.
    pub gid: Gid,
    /// Supplementary groups: the user's groups from the group database (plus `gid`).
    pub groups: Vec<Gid>,
    /// The user's name, for `USER` and `LOGNAME`.
    pub name: String,
    /// The user's home directory, for `HOME`.
    pub home: PathBuf,
}

impl RunAs {
    /// Looks up `user` (a name or a numeric uid) and `group` (a name or a numeric gid; default:
    /// the user's primary group). `section` names the settings in errors, e.g. `[app]`.
    pub fn resolve(section: &str, user: &str, group: Option<&str>) -> Result<RunAs, String> {
        let found = match user.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => User::from_name(user),
        };
        let user_entry = found
            .map_err(|e| format!("{section} user {user:?}: cannot look it up: {e}"))?
            .ok_or_else(|| format!("{section} user {user:?}: no such user"))?;
        let gid = match group {
            None => user_entry.gid,
            Some(name) => {
                let found = match name.parse::<u32>() {
                    Ok(gid) => Group::from_gid(Gid::from_raw(gid)),
                    Err(_) => Group::from_name(name),
                };
                found
                    .map_err(|e| format!("{section} group {name:?}: cannot look it up: {e}"))?
                    .ok_or_else(|| format!("{section} group {name:?}: no such group"))?
                    .gid
            }
        };
        let c_name = std::ffi::CString::new(user_entry.name.clone())
            .map_err(|_| format!("{section} user {user:?}: the name contains a NUL byte"))?;
        let groups = nix::unistd::getgrouplist(&c_name, gid)
            .map_err(|e| format!("{section} user {user:?}: cannot list its groups: {e}"))?;
        Ok(RunAs {
            uid: user_entry.uid,
            gid,
            groups,
            name: user_entry.name,
            home: user_entry.dir,
        })
    }

    /// A section's `user`/`group` settings, resolved and checked that baton may switch to
    /// them; `None` without a user.
    pub fn configured(
        section: &str,
        user: Option<String>,
        group: Option<String>,
    ) -> Result<Option<RunAs>, String> {
        let Some(user) = user else {
            return match group {
                Some(_) => Err(format!("{section} group needs a user")),
                None => Ok(None),
            };
        };
        let run_as = RunAs::resolve(section, &user, group.as_deref())?;
        run_as.check_can_switch(section)?;
        Ok(Some(run_as))
    }

    /// Whether this is who baton already runs as: then nothing needs to change.
    pub fn is_self(&self) -> bool {
        self.uid == Uid::effective() && self.gid == Gid::effective()
    }

    /// One-line error unless baton may switch to this user: it is root, or has CAP_SETUID,
    /// CAP_SETGID and CAP_CHOWN (for the notify socket and the build's release), e.g. from the
    /// unit's `AmbientCapabilities=`.
    pub fn check_can_switch(&self, section: &str) -> Result<(), String> {
        if self.is_self() || Uid::effective().is_root() || has_switch_capabilities() {
            return Ok(());
        }
        Err(format!(
            "{section} user {:?}: baton runs as uid {} without CAP_SETUID, CAP_SETGID and \
             CAP_CHOWN; run it as root, grant AmbientCapabilities=CAP_SETUID CAP_SETGID \
             CAP_CHOWN, or remove the setting",
            self.name,
            Uid::effective()
        ))
    }

    /// `HOME`, `USER` and `LOGNAME` of this user, replacing baton's.
    pub fn identity_env(&self) -> [(&'static str, OsString); 3] {
        [
            ("HOME", self.home.clone().into_os_string()),
            ("USER", self.name.clone().into()),
            ("LOGNAME", self.name.clone().into()),
        ]
    }

    /// Makes `command` switch to this user between fork and exec: supplementary groups, then
    /// the gid, then the uid (after which the first two could no longer be changed).
    pub fn apply(&self, command: &mut tokio::process::Command) {
        if self.is_self() {
            return;
        }
        let (uid, gid, groups) = (self.uid, self.gid, self.groups.clone());
        // SAFETY: setgroups(2), setgid(2) and setuid(2) are async-signal-safe; the group list
        // was built before fork, so nothing is allocated in the child.
        unsafe {
            command.pre_exec(move || {
                nix::unistd::setgroups(&groups).map_err(io::Error::from)?;
                nix::unistd::setgid(gid).map_err(io::Error::from)?;
                nix::unistd::setuid(uid).map_err(io::Error::from)?;
                Ok(())
            });
        }
    }
}

/// Makes `command`'s child drop the ambient capabilities baton may hold (the unit's
/// `AmbientCapabilities=`) before exec, so no app or build inherits CAP_SETUID and friends —
/// whether or not it switches user (a non-root setuid keeps capabilities).
pub fn no_inherited_capabilities(command: &mut tokio::process::Command) {
    // SAFETY: prctl(2) is async-signal-safe; nothing is allocated between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let r = nix::libc::prctl(
                nix::libc::PR_CAP_AMBIENT,
                nix::libc::PR_CAP_AMBIENT_CLEAR_ALL as nix::libc::c_ulong,
                0 as nix::libc::c_ulong,
                0 as nix::libc::c_ulong,
                0 as nix::libc::c_ulong,
            );
            let error = io::Error::last_os_error();
            // EINVAL: a kernel before 4.3 has no ambient capabilities to clear.
            if r != 0 && error.raw_os_error() != Some(nix::libc::EINVAL) {
                return Err(error);
            }
            Ok(())
        });
    }
}

/// CapEff from /proc/self/status holds CAP_CHOWN (bit 0), CAP_SETGID (6) and CAP_SETUID (7).
fn has_switch_capabilities() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & 0b1100_0001 == 0b1100_0001)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_users_and_groups_by_name_or_number() {
        let root = RunAs::resolve("[app]", "root", None).unwrap();
        assert_eq!((root.uid.as_raw(), root.gid.as_raw()), (0, 0));
        assert_eq!(
            RunAs::resolve("[app]", "0", Some("0")).unwrap().name,
            "root"
        );
        let err = RunAs::resolve("[app]", "no-such-user-here", None).unwrap_err();
        assert_eq!(err, "[app] user \"no-such-user-here\": no such user");
        let err = RunAs::resolve("[build]", "root", Some("no-such-group")).unwrap_err();
        assert_eq!(err, "[build] group \"no-such-group\": no such group");
    }
}
