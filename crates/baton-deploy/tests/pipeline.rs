//! Mirror, releases and history against a real bare repository made with the git CLI.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use baton_clock::utc_now;
use baton_deploy::{Entry, History, Mirror, Outcome, Release, Releases, Source};
use common::{TempDir, Upstream};

/// The file `name` of `release`.
fn read(release: &Release, name: &str) -> String {
    std::fs::read_to_string(release.dir.join(name)).unwrap()
}

fn local_source(repo: &str) -> Source {
    Source {
        repo: repo.to_string(),
        branch: "main".to_string(),
        ..Source::default()
    }
}

/// A state dir with a mirror fetched from an upstream that has one commit.
struct Fixture {
    tmp: TempDir,
    upstream: Upstream,
    mirror: Mirror,
    releases: Releases,
    first: String,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let tmp = TempDir::new(tag);
        let upstream = Upstream::new(tmp.path());
        let first = upstream.commit("main", &[("hello.txt", "one\n"), ("run.sh", "#!/bin/sh\n")]);
        let state = tmp.path().join("state");
        let mirror = Mirror::open_or_init(&state.join("mirror.git")).unwrap();
        let releases = Releases::new(&state);
        Fixture {
            tmp,
            upstream,
            mirror,
            releases,
            first,
        }
    }

    fn state(&self) -> std::path::PathBuf {
        self.tmp.path().join("state")
    }

    fn source(&self) -> Source {
        local_source(self.upstream.bare.to_str().unwrap())
    }

    /// A release checked out, built and served through probation: a complete deploy.
    fn deploy(&self) -> baton_deploy::Release {
        let head = self.mirror.fetch(&self.source()).unwrap();
        let release = self.releases.checkout(&self.mirror, head).unwrap();
        self.releases.mark_built(&release).unwrap();
        self.releases.mark_passed(&release).unwrap();
        release
    }
}

#[test]
fn fetches_by_path_and_file_url_and_follows_the_branch() {
    let f = Fixture::new("fetch");
    let by_path = f.mirror.fetch(&f.source()).unwrap();
    assert_eq!(by_path.to_string(), f.first);

    let second = f.upstream.commit("main", &[("hello.txt", "two\n")]);
    let url = format!("file://{}", f.upstream.bare.display());
    let by_url = f.mirror.fetch(&local_source(&url)).unwrap();
    assert_eq!(by_url.to_string(), second);

    // The explicit refspec stores the branch, so --rev can name it, or a short sha.
    assert_eq!(f.mirror.resolve("main").unwrap().to_string(), second);
    assert_eq!(
        f.mirror.resolve(&f.first[..8]).unwrap().to_string(),
        f.first
    );
    assert_eq!(f.mirror.resolve(&second).unwrap().to_string(), second);
    assert!(f.mirror.resolve("nope").is_err());
    assert!(f.mirror.resolve("--upload-pack=x").is_err());

    // A missing branch is an error, not a silently stale head.
    let mut other = f.source();
    other.branch = "does-not-exist".into();
    let err = f.mirror.fetch(&other).unwrap_err().to_string();
    assert!(err.contains("no branch `does-not-exist`"), "{err}");

    // A force-push (history rewrite) is followed: the refspec has a `+`.
    let work = &f.upstream.work;
    common::git(work, &["reset", "-q", "--hard", &f.first]);
    std::fs::write(work.join("hello.txt"), "rewritten\n").unwrap();
    common::git(work, &["commit", "-q", "-am", "rewrite"]);
    common::git(work, &["push", "-q", "-f", "origin", "HEAD:main"]);
    let rewritten = common::git(work, &["rev-parse", "HEAD"]);
    assert_eq!(f.mirror.fetch(&f.source()).unwrap().to_string(), rewritten);

    // Reopening an existing mirror works; a missing repository is a readable error.
    Mirror::open_or_init(f.mirror.dir()).unwrap();
    let err = f
        .mirror
        .fetch(&local_source(
            f.tmp.path().join("missing.git").to_str().unwrap(),
        ))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("fetching main from "), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn checkout_creates_distinct_release_directories() {
    let f = Fixture::new("checkout");
    let a = f.deploy();
    let b = f.deploy();
    assert_ne!(a.id, b.id, "two deploys in one second get distinct ids");
    assert_eq!(a.commit, f.first);
    assert!(a.id.ends_with(&f.first[..12]) || a.id.contains(&f.first[..12]));
    assert_eq!(read(&a, "hello.txt"), "one\n");
    assert_eq!(a.dir, f.state().join("releases").join(&a.id));
    // The mirror stays bare: no index or work tree written into it.
    assert!(!f.mirror.dir().join("index").exists());

    let listed: Vec<String> = f.releases.list().into_iter().map(|r| r.id).collect();
    assert_eq!(listed, [a.id.clone(), b.id.clone()]);
    assert_eq!(f.releases.get(&b.id).unwrap(), b);

    // A newer commit lands in its own directory; the old one is untouched.
    f.upstream.commit("main", &[("hello.txt", "two\n")]);
    let c = f.deploy();
    assert_eq!(read(&c, "hello.txt"), "two\n");
    assert_eq!(read(&a, "hello.txt"), "one\n");
    assert!(f.mirror.resolve("0000000").is_err());
}

#[test]
fn executable_bits_survive_checkout() {
    let f = Fixture::new("modes");
    common::git(&f.upstream.work, &["update-index", "--chmod=+x", "run.sh"]);
    common::git(&f.upstream.work, &["commit", "-q", "-m", "x"]);
    common::git(&f.upstream.work, &["push", "-q", "origin", "HEAD:main"]);
    let release = f.deploy();
    let mode = std::fs::metadata(release.dir.join("run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "mode {mode:o}");
}

#[test]
fn shared_entries_are_linked_and_checked() {
    let f = Fixture::new("shared");
    f.upstream.commit(
        "main",
        &[(".env", "FROM_REPO=1\n"), ("instance/readme", "repo\n")],
    );
    let release = f.deploy();
    let shared = f.state().join("shared");

    let entries = vec![
        ".env".to_string(),
        "instance/".to_string(),
        "config/secrets.py".to_string(),
    ];
    let err = f
        .releases
        .link_shared(&release, &entries)
        .unwrap_err()
        .to_string();
    assert!(err.contains(".env") && err.contains("missing"), "{err}");

    std::fs::create_dir_all(shared.join("instance")).unwrap();
    std::fs::create_dir_all(shared.join("config")).unwrap();
    std::fs::write(shared.join(".env"), "SECRET=1\n").unwrap();
    std::fs::write(shared.join("instance/app.db"), "db").unwrap();
    std::fs::write(shared.join("config/secrets.py"), "KEY = 1\n").unwrap();
    f.releases.link_shared(&release, &entries).unwrap();

    assert_eq!(read(&release, ".env"), "SECRET=1\n");
    assert_eq!(read(&release, "instance/app.db"), "db");
    assert!(
        !release.dir.join("instance/readme").exists(),
        "checkout's dir replaced"
    );
    assert_eq!(
        std::fs::read_link(release.dir.join("config/secrets.py")).unwrap(),
        shared.join("config/secrets.py")
    );
    // Linking again (a rollback re-link) is idempotent.
    f.releases.link_shared(&release, &entries).unwrap();

    for bad in ["/etc/passwd", "../escape", "a/../../b", ""] {
        assert!(
            f.releases
                .link_shared(&release, &[bad.to_string()])
                .is_err(),
            "{bad}"
        );
    }
    // A file declared as a directory, and vice versa.
    assert!(
        f.releases
            .link_shared(&release, &[".env/".to_string()])
            .is_err()
    );
    assert!(
        f.releases
            .link_shared(&release, &["instance".to_string()])
            .is_err()
    );

    // Deleting the release (prune) must not delete what the links point to.
    f.releases.mark_failed(&release, "test").unwrap();
    let deleted = f.releases.prune(5).unwrap();
    assert_eq!(deleted, vec![release.id.clone()]);
    assert_eq!(
        std::fs::read_to_string(shared.join(".env")).unwrap(),
        "SECRET=1\n"
    );
    assert!(shared.join("instance/app.db").exists());
}

#[test]
fn shared_links_never_pass_through_a_checked_out_symlink() {
    let f = Fixture::new("shared-symlink");
    let outside = f.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secrets.py"), "precious").unwrap();
    std::os::unix::fs::symlink(&outside, f.upstream.work.join("config")).unwrap();
    f.upstream.commit("main", &[]);
    let release = f.deploy();
    std::fs::create_dir_all(f.state().join("shared/config")).unwrap();
    std::fs::write(f.state().join("shared/config/secrets.py"), "x").unwrap();
    let err = f
        .releases
        .link_shared(&release, &["config/secrets.py".to_string()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a directory"), "{err}");
    assert_eq!(
        std::fs::read_to_string(outside.join("secrets.py")).unwrap(),
        "precious"
    );
}

#[test]
fn current_switches_atomically_and_remembers_previous() {
    let f = Fixture::new("current");
    assert!(f.releases.current().is_none());
    let a = f.deploy();
    let b = f.deploy();
    f.releases.set_current(&a).unwrap();
    assert_eq!(f.releases.current(), Some(a.clone()));
    assert!(f.releases.previous().is_none());

    f.releases.set_current(&b).unwrap();
    assert_eq!(f.releases.current(), Some(b.clone()));
    assert_eq!(f.releases.previous(), Some(a.clone()));
    let link = std::fs::read_link(f.state().join("current")).unwrap();
    assert_eq!(link, Path::new("releases").join(&b.id), "relative symlink");
    assert!(!f.state().join("current.tmp").exists());
    assert_eq!(
        std::fs::read_to_string(f.state().join("current/hello.txt")).unwrap(),
        "one\n"
    );

    // Setting the current release again changes nothing; rolling back swaps the two.
    f.releases.set_current(&b).unwrap();
    assert_eq!(f.releases.previous(), Some(a.clone()));
    f.releases.set_current(&a).unwrap();
    assert_eq!(f.releases.current(), Some(a.clone()));
    assert_eq!(f.releases.previous(), Some(b.clone()));

    // A stale current.tmp from a crash does not block the switch.
    std::os::unix::fs::symlink("junk", f.state().join("current.tmp")).unwrap();
    f.releases.set_current(&b).unwrap();
    assert_eq!(f.releases.current(), Some(b));
}

#[test]
fn prune_keeps_newest_successful_and_never_current_or_previous() {
    let f = Fixture::new("prune");
    let r: Vec<_> = (0..7).map(|_| f.deploy()).collect();
    // Current = r[1], previous = r[0]: both old, both must survive.
    f.releases.set_current(&r[0]).unwrap();
    f.releases.set_current(&r[1]).unwrap();
    f.releases
        .mark_failed(&r[5], "build exited with status 2")
        .unwrap();
    f.releases.mark_failed(&r[6], "not ready").unwrap();
    assert_eq!(
        r[5].failure().as_deref(),
        Some("build exited with status 2")
    );

    let deleted = f.releases.prune(2).unwrap();
    // Successful: r0..r4; newest two are r4, r3. Failed r5, r6 go; current/previous stay.
    assert_eq!(deleted, [r[2].id.clone(), r[5].id.clone(), r[6].id.clone()]);
    let left: Vec<String> = f.releases.list().into_iter().map(|x| x.id).collect();
    assert_eq!(
        left,
        [
            r[0].id.clone(),
            r[1].id.clone(),
            r[3].id.clone(),
            r[4].id.clone()
        ]
    );

    // keep = 0 still keeps the live ones, and the newest passed one (the rollback target).
    let deleted = f.releases.prune(0).unwrap();
    assert_eq!(deleted, [r[3].id.clone()]);
    assert_eq!(f.releases.last_passed().unwrap().id, r[4].id);
    assert_eq!(f.releases.current().unwrap().id, r[1].id);
    assert_eq!(f.releases.previous().unwrap().id, r[0].id);
    assert!(f.releases.prune(0).unwrap().is_empty());
}

#[test]
fn history_round_trip_and_bound() {
    let tmp = TempDir::new("history");
    let history = History::new(tmp.path());
    assert!(history.last(5).unwrap().is_empty());
    let entry = |n: usize| Entry {
        release: format!("r{n}"),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        ..Entry::running("webhook".into())
    };
    history.append(entry(1)).unwrap();
    history
        .update_last(|e| {
            e.outcome = Outcome::Failed;
            e.reason = Some("build exited with status 2".into());
            e.finished_at = Some(utc_now());
        })
        .unwrap();
    history.append(entry(2)).unwrap();
    let last = history.last(10).unwrap();
    assert_eq!(last.len(), 2);
    assert_eq!(last[0].release, "r2");
    assert_eq!(last[1].outcome, Outcome::Failed);
    assert_eq!(
        last[1].reason.as_deref(),
        Some("build exited with status 2")
    );

    let json = std::fs::read_to_string(tmp.path().join("history.json")).unwrap();
    assert!(json.contains("\"outcome\": \"failed\""), "{json}");
    assert!(json.contains("\"outcome\": \"running\""), "{json}");
    assert!(!tmp.path().join("history.json.tmp").exists());

    assert_eq!(history.close_running("baton restarted").unwrap(), 1);
    assert_eq!(history.last(1).unwrap()[0].outcome, Outcome::Failed);

    for n in 3..=250 {
        history.append(entry(n)).unwrap();
    }
    let all = history.load().unwrap();
    assert_eq!(all.len(), baton_deploy::history::MAX_ENTRIES);
    assert_eq!(all.last().unwrap().release, "r250");
    assert_eq!(all[0].release, "r51");

    // A corrupt history is kept aside (never overwritten) and a new one started.
    std::fs::write(tmp.path().join("history.json"), "{not json").unwrap();
    history.append(entry(0)).unwrap();
    let aside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("history.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), "{not json");
    let fresh = history.load().unwrap();
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].release, "r0");
}

#[test]
fn validate_reports_bad_sources_in_one_line() {
    let tmp = TempDir::new("validate");
    let key = tmp.path().join("deploy_key");
    std::fs::write(&key, "not really a key").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let known = tmp.path().join("known_hosts");
    std::fs::write(&known, "").unwrap();

    let ssh = |deploy_key: Option<&Path>, known_hosts: Option<&Path>| Source {
        repo: "git@example.org:me/app.git".into(),
        branch: "main".into(),
        deploy_key: deploy_key.map(Path::to_path_buf),
        known_hosts: known_hosts.map(Path::to_path_buf),
        host_fingerprints: vec![],
    };
    let check = |source: Source, needle: &str| {
        let err = source.validate().unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        assert!(!err.contains('\n'), "{err}");
    };

    check(ssh(None, Some(&known)), "no deploy_key");
    check(ssh(Some(&tmp.path().join("nope")), Some(&known)), "nope");
    check(ssh(Some(&key), Some(&known)), "chmod 600");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    check(ssh(Some(&key), None), "host keys are always verified");
    check(
        ssh(Some(&key), Some(&tmp.path().join("no_known_hosts"))),
        "no_known_hosts",
    );
    ssh(Some(&key), Some(&known)).validate().unwrap();

    let mut pinned = ssh(Some(&key), None);
    pinned.host_fingerprints = vec!["SHA256:short".into()];
    check(pinned.clone(), "SHA256:<base64>");
    pinned.host_fingerprints = vec![format!("SHA256:{}", "A".repeat(43))];
    pinned.validate().unwrap();

    let mut bad_branch = local_source("/srv/app.git");
    bad_branch.branch = "".into();
    check(bad_branch.clone(), "branch is empty");
    bad_branch.branch = "a..b".into();
    check(bad_branch, "not a valid git branch name");
    check(
        local_source("https://github.com/me/app.git"),
        "not supported",
    );
    check(local_source("ssh://host"), "not a valid git URL");
    local_source("file:///srv/app.git").validate().unwrap();
    local_source("./app.git").validate().unwrap();
}

#[test]
fn an_unfinished_release_counts_as_failed_and_a_legacy_one_as_passed() {
    let f = Fixture::new("phases");
    let good = f.deploy();
    let head = f.mirror.fetch(&f.source()).unwrap();
    let cut_short = f.releases.checkout(&f.mirror, head).unwrap();
    assert!(!cut_short.built() && !cut_short.passed());
    let why = cut_short
        .failure()
        .expect("a release whose build never completed failed");
    assert!(why.contains("interrupted"), "{why}");
    f.releases.mark_built(&cut_short).unwrap();
    assert!(cut_short.built() && !cut_short.passed());
    assert!(
        cut_short.failure().is_some(),
        "built but never served through probation"
    );
    assert_eq!(f.releases.last_passed(), Some(good.clone()));

    // A release made before phases were recorded: no .state file.
    let legacy = f.releases.checkout(&f.mirror, head).unwrap();
    std::fs::remove_file(f.state().join(format!("release-state/{}.json", legacy.id))).unwrap();
    assert!(legacy.passed() && legacy.failure().is_none());
    assert_eq!(f.releases.get(&legacy.id).unwrap().commit, head.to_string());
    std::fs::write(legacy.dir.join(".baton-failed"), "old failure\n").unwrap();
    assert_eq!(legacy.failure().as_deref(), Some("old failure"));

    // A repository that commits baton's file names cannot declare itself anything, nor make
    // baton write through them.
    let outside = f.tmp.path().join("outside.txt");
    std::fs::write(&outside, "untouched").unwrap();
    for name in [".baton-commit", "build.log"] {
        std::os::unix::fs::symlink(&outside, f.upstream.work.join(name)).unwrap();
    }
    let evil = f.upstream.commit("main", &[("hello.txt", "evil\n")]);
    let release = f
        .releases
        .checkout(&f.mirror, f.mirror.fetch(&f.source()).unwrap())
        .unwrap();
    assert_eq!(release.commit, evil);
    assert!(release.failure().is_some());
    let commit_file = std::fs::symlink_metadata(release.dir.join(".baton-commit")).unwrap();
    assert!(
        commit_file.is_file(),
        "the committed symlink was replaced by baton's file"
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
}
