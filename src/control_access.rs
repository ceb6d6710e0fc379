//! Who may use the control socket: root, baton's own uid, and members of `control_group`.
//!
//! The socket file's mode keeps everyone else out already (0600, or 0660 with the group), but
//! a socket systemd created, or a file mode loosened by hand, must not turn into a way to drive
//! deploys: every connection's peer is checked with SO_PEERCRED as well.

use std::path::Path;

use nix::unistd::{Gid, Group, Uid, User};

/// The control socket's access rule.
#[derive(Debug, Clone)]
pub struct ControlAccess {
    own_uid: Uid,
    group: Option<ControlGroup>,
}

/// The group whose members may connect besides root and baton's uid.
#[derive(Debug, Clone)]
struct ControlGroup {
    name: String,
    gid: Gid,
}

impl ControlAccess {
    /// Root and baton's uid only.
    pub fn owner_only() -> ControlAccess {
        ControlAccess {
            own_uid: Uid::effective(),
            group: None,
        }
    }

    /// Also members of the group called `name`; an unknown group is a one-line error.
    pub fn with_group(name: &str) -> Result<ControlAccess, String> {
        let group = Group::from_name(name)
            .map_err(|e| format!("control_group {name:?}: cannot look it up: {e}"))?
            .ok_or_else(|| format!("control_group {name:?}: no such group"))?;
        Ok(ControlAccess {
            own_uid: Uid::effective(),
            group: Some(ControlGroup {
                name: name.to_string(),
                gid: group.gid,
            }),
        })
    }

    /// Gives the socket file the mode (and group) this rule needs: 0600, or 0660 owned by the
    /// group. Its directory must be searchable by the group for members to reach it.
    pub fn secure_socket(&self, path: &Path) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let mode = match &self.group {
            Some(group) => {
                nix::unistd::chown(path, None, Some(group.gid)).map_err(|e| {
                    format!(
                        "cannot give {} to group {}: {e}",
                        path.display(),
                        group.name
                    )
                })?;
                0o660
            }
            None => 0o600,
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))
    }

    /// `Err` with the reason when a peer with these credentials may not connect.
    pub fn check(&self, uid: u32, gid: u32) -> Result<(), String> {
        let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
        if uid.is_root() || uid == self.own_uid {
            return Ok(());
        }
        if let Some(group) = &self.group
            && (gid == group.gid || is_member(uid, group))
        {
            return Ok(());
        }
        let allowed = match &self.group {
            Some(group) => format!("root, uid {} and group {}", self.own_uid, group.name),
            None => format!("root and uid {}", self.own_uid),
        };
        Err(format!(
            "uid {uid} may not use this control socket (only {allowed})"
        ))
    }
}

/// Membership as the user database says: the user's primary group or the group's member list
/// (SO_PEERCRED carries only the peer's effective gid, not its supplementary groups).
fn is_member(uid: Uid, group: &ControlGroup) -> bool {
    let Ok(Some(user)) = User::from_uid(uid) else {
        return false;
    };
    if user.gid == group.gid {
        return true;
    }
    matches!(Group::from_gid(group.gid), Ok(Some(g)) if g.mem.contains(&user.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_own_uid_pass_others_need_the_group() {
        let owner = ControlAccess::owner_only();
        let me = Uid::effective().as_raw();
        assert!(owner.check(0, 0).is_ok());
        assert!(owner.check(me, 12345).is_ok());
        let stranger = if me == 4_000_000 {
            4_000_001
        } else {
            4_000_000
        };
        let refused = owner.check(stranger, 4_000_000).unwrap_err();
        assert!(refused.contains("may not use"), "{refused}");

        let root_group = Group::from_gid(Gid::from_raw(0)).unwrap().unwrap().name;
        let grouped = ControlAccess::with_group(&root_group).unwrap();
        assert!(grouped.check(stranger, 0).is_ok(), "the group's gid passes");
        assert!(grouped.check(stranger, 4_000_000).is_err());
        assert!(
            ControlAccess::with_group("no-such-group-here")
                .unwrap_err()
                .contains("no such group")
        );
    }
}
