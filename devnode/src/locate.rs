//! Finds the `ethetl-devnode` binary for the tests and benches of other packages (ethetl's),
//! where cargo sets no `CARGO_BIN_EXE_ethetl-devnode`: cargo builds a binary only for its own
//! package's tests. Under cargo the binary is (re)built first, so it is never missing or stale.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Overrides [`binary`]: the path of an `ethetl-devnode` binary to use as it is.
pub const BINARY_ENV: &str = "ETHETL_DEVNODE_BIN";

/// Why [`binary`] found no binary.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("cannot find the running executable")]
    CurrentExe(#[source] std::io::Error),
    #[error("{} is not inside a cargo target directory", exe.display())]
    NotInTarget { exe: PathBuf },
    #[error("cannot run {cargo} to build ethetl-devnode")]
    Spawn {
        cargo: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status})")]
    Build { command: String, status: String },
    #[error(
        "{} does not exist: build it with `cargo build -p ethetl-devnode` (or set {BINARY_ENV})",
        path.display()
    )]
    Missing { path: PathBuf },
}

/// Where the running test or bench executable was built: `<target>/[<triple>/]<dir>/deps/`.
#[derive(Debug, PartialEq, Eq)]
struct Build {
    target_dir: PathBuf,
    triple: Option<String>,
    /// The cargo profile (`dev` for the `debug` directory, else the directory's name).
    profile: String,
    /// `target_dir/[triple/]dir`: where cargo puts the binaries.
    profile_dir: PathBuf,
}

impl Build {
    fn of(exe: &Path) -> Option<Build> {
        let parent = exe.parent()?;
        // Tests and benches run from `deps/`; a binary or example one level up or down.
        let profile_dir = match parent.file_name()?.to_str()? {
            "deps" | "examples" => parent.parent()?,
            _ => parent,
        };
        let dir = profile_dir.file_name()?.to_str()?;
        let profile = match dir {
            "debug" => "dev".to_string(),
            other => other.to_string(),
        };
        let above = profile_dir.parent()?;
        // Cargo marks the target directory itself with CACHEDIR.TAG; one level further up
        // means a cross build (`target/<triple>/<dir>`).
        let (target_dir, triple) = if above.join("CACHEDIR.TAG").is_file() {
            (above.to_path_buf(), None)
        } else if above.parent()?.join("CACHEDIR.TAG").is_file() {
            let triple = above.file_name()?.to_str()?.to_string();
            (above.parent()?.to_path_buf(), Some(triple))
        } else {
            return None;
        };
        Some(Build {
            target_dir,
            triple,
            profile,
            profile_dir: profile_dir.to_path_buf(),
        })
    }
}

/// The `ethetl-devnode` binary of the same build (target directory, target triple and
/// profile) as the running executable: `target/<profile>/ethetl-devnode` next to the `deps/`
/// directory a test or bench runs from. When the process runs under cargo (`CARGO` is set, as
/// `cargo test` and `cargo bench` do) it first runs `cargo build -p ethetl-devnode` for that
/// build, a no-op when the binary is up to date. `ETHETL_DEVNODE_BIN` names a binary to use
/// instead.
pub fn binary() -> Result<PathBuf, LocateError> {
    if let Some(p) = std::env::var_os(BINARY_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(LocateError::CurrentExe)?;
    let build = Build::of(&exe).ok_or_else(|| LocateError::NotInTarget { exe: exe.clone() })?;
    let path = build
        .profile_dir
        .join(format!("ethetl-devnode{}", std::env::consts::EXE_SUFFIX));
    if let Some(cargo) = std::env::var_os("CARGO").filter(|c| !c.is_empty()) {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let mut cmd = Command::new(&cargo);
        cmd.args([
            "build",
            "--quiet",
            "--bin",
            "ethetl-devnode",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&build.target_dir)
        .args(["--profile", &build.profile]);
        if let Some(t) = &build.triple {
            cmd.args(["--target", t]);
        }
        let command = format!("{cmd:?}");
        let status = cmd.status().map_err(|source| LocateError::Spawn {
            cargo: cargo.to_string_lossy().into_owned(),
            source,
        })?;
        if !status.success() {
            return Err(LocateError::Build {
                command,
                status: status.to_string(),
            });
        }
    }
    if path.is_file() {
        Ok(path)
    } else {
        Err(LocateError::Missing { path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_of_a_test_executable() {
        let root =
            std::env::temp_dir().join(format!("ethetl-devnode-locate-{}", std::process::id()));
        std::fs::create_dir_all(root.join("x86_64-unknown-linux-gnu/release/deps")).unwrap();
        std::fs::create_dir_all(root.join("debug/deps")).unwrap();
        std::fs::write(root.join("CACHEDIR.TAG"), "").unwrap();

        let b = Build::of(&root.join("debug/deps/export-0123abcd")).unwrap();
        assert_eq!(b.target_dir, root);
        assert_eq!(b.triple, None);
        assert_eq!(b.profile, "dev");
        assert_eq!(b.profile_dir, root.join("debug"));

        let b = Build::of(&root.join("x86_64-unknown-linux-gnu/release/deps/e2e-42")).unwrap();
        assert_eq!(b.target_dir, root);
        assert_eq!(b.triple.as_deref(), Some("x86_64-unknown-linux-gnu"));
        assert_eq!(b.profile, "release");

        assert_eq!(Build::of(Path::new("/usr/bin/env")), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_binary_of_this_build() {
        // This very test runs from target/<profile>/deps under cargo.
        let p = binary().unwrap();
        assert!(
            p.is_file() && p.ends_with(format!("ethetl-devnode{}", std::env::consts::EXE_SUFFIX))
        );
    }
}
