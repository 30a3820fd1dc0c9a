//! Reading configuration files: the main one, and those `include` names,
//! a path or a glob(3) pattern as nginx takes them.

use std::path::{Path, PathBuf};

use glob::{MatchOptions, Pattern};

use super::{ConfigError, Location};

/// The text of a configuration file. A file that cannot be read is
/// `open() "path" failed (why)`, at `at` (the `include`) when given; text that
/// is not UTF-8 is refused at the line it is on.
pub(crate) fn read(path: &Path, at: Option<&Location>) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|err| ConfigError {
        message: format!("open() \"{}\" failed ({err})", path.display()),
        location: at.cloned(),
    })?;
    String::from_utf8(bytes).map_err(|err| {
        let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        ConfigError::at(
            "invalid UTF-8 in the configuration file",
            Location {
                file: path.to_path_buf(),
                line: u32::try_from(line).unwrap_or(u32::MAX),
            },
        )
    })
}

/// The files `include ARG` in `including` names, in the order they are read.
/// A relative `ARG` starts from the including file's folder. Without glob
/// characters (`*`, `?`, `[`, as nginx tests) it is one file, which must
/// exist when read; a pattern gives its matches sorted, and may match none
/// (nginx). Errors are whole messages.
pub(crate) fn include_paths(including: &Path, arg: &str) -> Result<Vec<PathBuf>, String> {
    let dir = including.parent().unwrap_or(Path::new(""));
    let joined = dir.join(arg);
    if !arg.contains(['*', '?', '[']) {
        return Ok(vec![joined]);
    }
    let failed = |why: &dyn std::fmt::Display| format!("glob() \"{}\" failed ({why})", joined.display());
    // The folder is taken literally, whatever characters its name has.
    let pattern = if Path::new(arg).is_absolute() || dir.as_os_str().is_empty() {
        arg.to_string()
    } else {
        let dir = dir.to_str().ok_or_else(|| failed(&"the folder name is not UTF-8"))?;
        format!("{}/{arg}", Pattern::escape(dir))
    };
    // As glob(3): `*` does not match a leading dot.
    let options = MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let matches = glob::glob_with(&pattern, options).map_err(|err| failed(&err))?;
    // A folder that cannot be listed is skipped, as glob(3) without GLOB_ERR.
    let mut paths: Vec<PathBuf> = matches.filter_map(Result::ok).collect();
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder with the given files (empty), removed on drop.
    struct Folder(PathBuf);

    impl Folder {
        fn new(name: &str, files: &[&str]) -> Folder {
            let dir = std::env::temp_dir().join(format!("postern-files-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            for file in files {
                let path = dir.join(file);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, "").unwrap();
            }
            std::fs::create_dir_all(&dir).unwrap();
            Folder(dir)
        }
    }

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn include_paths_rows() {
        let folder = Folder::new(
            "glob",
            &[
                "b.conf",
                "a.conf",
                "c.txt",
                ".hidden.conf",
                "sub/x.conf",
                "sub/y.conf",
                "odd[1]/z.conf",
            ],
        );
        let dir = &folder.0;
        let main = dir.join("postern.conf");
        let names = |paths: Vec<PathBuf>| -> Vec<String> {
            paths
                .iter()
                .map(|p| p.strip_prefix(dir).unwrap_or(p).display().to_string())
                .collect()
        };
        let rows: &[(&str, &[&str])] = &[
            ("a.conf", &["a.conf"]),
            ("missing.conf", &["missing.conf"]),
            ("*.conf", &["a.conf", "b.conf"]),
            ("?.conf", &["a.conf", "b.conf"]),
            ("[b-c].*", &["b.conf", "c.txt"]),
            ("sub/*.conf", &["sub/x.conf", "sub/y.conf"]),
            ("*/*.conf", &["odd[1]/z.conf", "sub/x.conf", "sub/y.conf"]),
            ("*.none", &[]),
            ("nowhere/*.conf", &[]),
        ];
        for &(arg, want) in rows {
            let got = include_paths(&main, arg).unwrap_or_else(|e| panic!("{arg}: {e}"));
            assert_eq!(names(got), want, "{arg}");
        }
        // The including file's folder is literal even with glob characters.
        let odd = dir.join("odd[1]/inner.conf");
        assert_eq!(names(include_paths(&odd, "*.conf").unwrap()), ["odd[1]/z.conf"]);
        // Absolute patterns ignore the including file's folder.
        let absolute = format!("{}/sub/*.conf", dir.display());
        assert_eq!(
            names(include_paths(Path::new("/elsewhere/x.conf"), &absolute).unwrap()),
            ["sub/x.conf", "sub/y.conf"]
        );
        // A relative including file: paths stay relative to where it is.
        assert_eq!(
            include_paths(Path::new("postern.conf"), "a.conf").unwrap(),
            [PathBuf::from("a.conf")]
        );
        assert_eq!(
            include_paths(Path::new("conf/postern.conf"), "a.conf").unwrap(),
            [PathBuf::from("conf/a.conf")]
        );
    }

    #[test]
    fn bad_pattern() {
        let err = include_paths(Path::new("/etc/postern/postern.conf"), "a/**b/*.conf").unwrap_err();
        assert!(
            err.starts_with("glob() \"/etc/postern/a/**b/*.conf\" failed ("),
            "{err}"
        );
    }

    #[test]
    fn read_errors() {
        let at = Location {
            file: PathBuf::from("/etc/postern/postern.conf"),
            line: 7,
        };
        let err = read(Path::new("/nonexistent/x.conf"), Some(&at)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "open() \"/nonexistent/x.conf\" failed (No such file or directory (os error 2)) in \
             /etc/postern/postern.conf:7"
        );
        assert_eq!(read(Path::new("/nonexistent/x.conf"), None).unwrap_err().location, None);
    }
}
