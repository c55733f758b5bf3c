//! Reading Kafka-style `.properties` files into an ordered map, plus `--override` pairs.
//! Remembers which file (or override) each key came from so later errors can point at it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use java_properties::{LineContent, PropertiesIter};

use crate::ConfigError;

/// How values that came from the command line are named in error messages; there
/// is no file to point at, and naming the config file would send the user to the
/// wrong place.
pub const OVERRIDE_SOURCE: &str = "--override";

/// The key/value pairs of one properties file with command-line overrides applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Properties {
    path: PathBuf,
    entries: BTreeMap<String, String>,
    overridden: BTreeSet<String>,
}

impl Properties {
    /// Reads `path` with Java `Properties.load` semantics (ISO-8859-1, `\` escapes,
    /// continuation lines, `#`/`!` comments), which is what Kafka itself uses, so a
    /// file written for Kafka means the same thing here. Later duplicates win, as in Java.
    pub fn load(path: &Path) -> Result<Properties, ConfigError> {
        let file = File::open(path).map_err(|source| ConfigError::Io {
            file: path.display().to_string(),
            source,
        })?;
        let mut entries = BTreeMap::new();
        for line in PropertiesIter::new(BufReader::new(file)) {
            let line = line.map_err(|e| ConfigError::Parse {
                file: path.display().to_string(),
                line: e.line_number(),
                message: parse_message(&e),
            })?;
            if let LineContent::KVPair(key, value) = line.consume_content() {
                entries.insert(key, value);
            }
        }
        Ok(Properties {
            path: path.to_path_buf(),
            entries,
            overridden: BTreeSet::new(),
        })
    }

    /// Builds properties that did not come from a file, e.g. for tests or embedding;
    /// `source` is what error messages will call them.
    pub fn from_map(source: impl Into<PathBuf>, entries: BTreeMap<String, String>) -> Properties {
        Properties {
            path: source.into(),
            entries,
            overridden: BTreeSet::new(),
        }
    }

    /// Applies `--override key=value` pairs; they beat the file, and the last one wins.
    pub fn apply_overrides(&mut self, overrides: &[(String, String)]) {
        for (key, value) in overrides {
            self.entries.insert(key.clone(), value.clone());
            self.overridden.insert(key.clone());
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    pub fn into_entries(self) -> BTreeMap<String, String> {
        self.entries
    }

    /// Where the current value of `key` came from, for error messages.
    pub fn source_of(&self, key: &str) -> String {
        if self.overridden.contains(key) {
            OVERRIDE_SOURCE.to_string()
        } else {
            self.path.display().to_string()
        }
    }
}

/// The crate's own `Display` appends "(line_number = N)", which would repeat the
/// line we already put in front of the message.
fn parse_message(e: &java_properties::PropertiesError) -> String {
    use std::error::Error;
    #[allow(deprecated)]
    let mut message = e.description().to_string();
    if let Some(cause) = e.source() {
        message.push_str(&format!(": {cause}"));
    }
    message
}

/// Splits one `--override key=value` argument. Only the first `=` separates, because
/// values such as listener lists or JAAS strings may themselves contain `=`.
pub fn parse_override(s: &str) -> Result<(String, String), ConfigError> {
    let bad = |message: String| ConfigError::Parse {
        file: OVERRIDE_SOURCE.to_string(),
        line: None,
        message,
    };
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| bad(format!("{s:?} is not of the form key=value")))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(bad(format!("{s:?} has an empty key")));
    }
    Ok((key.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_file(text: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text).unwrap();
        f
    }

    #[test]
    fn loads_java_syntax_in_key_order() {
        let f = write_file(
            b"# comment\n! also a comment\nz.key = last\na.key:first\n\
              multi=one,\\\n    two\nspaced   value with trailing\nempty=\nescaped\\ key=x\\ty\n",
        );
        let p = Properties::load(f.path()).unwrap();
        let keys: Vec<&str> = p.entries().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["a.key", "empty", "escaped key", "multi", "spaced", "z.key"]
        );
        assert_eq!(p.get("z.key"), Some("last"));
        assert_eq!(p.get("a.key"), Some("first"));
        assert_eq!(p.get("multi"), Some("one,two"));
        assert_eq!(p.get("spaced"), Some("value with trailing"));
        assert_eq!(p.get("empty"), Some(""));
        assert_eq!(p.get("escaped key"), Some("x\ty"));
        assert_eq!(p.path(), f.path());
    }

    #[test]
    fn later_duplicate_wins() {
        let f = write_file(b"k=1\nk=2\n");
        assert_eq!(Properties::load(f.path()).unwrap().get("k"), Some("2"));
    }

    #[test]
    fn missing_file_is_io_error_naming_the_file() {
        let err = Properties::load(Path::new("/nonexistent/dir/server.properties")).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/dir/server.properties"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn bad_escape_is_parse_error_with_line() {
        let f = write_file(b"ok=1\n\nbad=\\uZZZZ\n");
        let err = Properties::load(f.path()).unwrap_err();
        match &err {
            ConfigError::Parse { file, line, .. } => {
                assert_eq!(file, &f.path().display().to_string());
                assert_eq!(*line, Some(3));
            }
            other => panic!("expected Parse, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{}:3: ", f.path().display())),
            "{msg}"
        );
        assert!(!msg.contains("line_number"), "{msg}");
    }

    #[test]
    fn overrides_win_and_are_attributed() {
        let f = write_file(b"a=file\nb=file\n");
        let mut p = Properties::load(f.path()).unwrap();
        p.apply_overrides(&[
            ("b".into(), "cli1".into()),
            ("c".into(), "new".into()),
            ("b".into(), "cli2".into()),
        ]);
        assert_eq!(p.get("a"), Some("file"));
        assert_eq!(p.get("b"), Some("cli2"));
        assert_eq!(p.get("c"), Some("new"));
        assert_eq!(p.source_of("a"), f.path().display().to_string());
        assert_eq!(p.source_of("b"), OVERRIDE_SOURCE);
    }

    #[test]
    fn parse_override_splits_at_first_equals() {
        assert_eq!(
            parse_override("listeners=PLAINTEXT://:9092").unwrap(),
            ("listeners".into(), "PLAINTEXT://:9092".into())
        );
        assert_eq!(
            parse_override(" a.b =x=y").unwrap(),
            ("a.b".into(), "x=y".into())
        );
        assert_eq!(parse_override("k=").unwrap(), ("k".into(), "".into()));
        let err = parse_override("novalue").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--override: \"novalue\" is not of the form key=value"
        );
        assert!(parse_override("=v").is_err());
    }
}
