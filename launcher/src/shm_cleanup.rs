//! Removes what a job's ranks may have left in /dev/shm.
//!
//! oxmpi names each node's shared-memory segment `oxmpi-<job id>-n<node>` and unlinks
//! it as soon as every local rank has mapped it, so normally nothing is left. A rank
//! that dies before mapping it (killed during start-up) leaves the name behind; the
//! launcher, which chose the job id, removes any such name once every rank is gone.
//! Invariant: only names of this job are touched.

use std::path::Path;

/// Removes `/dev/shm/oxmpi-<job>-*`.
pub fn remove_segments(job: &str) {
    remove_in(Path::new("/dev/shm"), job);
}

fn remove_in(dir: &Path, job: &str) {
    let prefix = format!("oxmpi-{job}-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_this_jobs_names() {
        let dir = std::env::temp_dir().join(format!("oxrun-shm-cleanup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["oxmpi-abc-n0", "oxmpi-abc-n1", "oxmpi-abcd-n0", "other"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        remove_in(&dir, "abc");
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        left.sort();
        assert_eq!(left, ["other", "oxmpi-abcd-n0"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
