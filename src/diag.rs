//! Diagnostics: problems found in a file a person wrote, located by file, line, column and key.
//!
//! Owns the `Diagnostic` type every loader reports with and the byte-offset → line/column mapping.
//! It must never decide anything about tool calls; it only describes where input went wrong.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How serious a finding is: errors make `airlock check` (and startup) fail, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in one file, with the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    /// Dotted key path such as `tool[2].class` or `classes.financial.timeout`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if self.key.is_empty() {
            write!(f, ": {sev}: {}", self.message)
        } else {
            write!(f, ": {sev}: {}: {}", self.key, self.message)
        }
    }
}

/// A file's text kept beside its path so spans can be turned into lines.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    pub fn read(path: &Path) -> Result<Source, Diagnostic> {
        std::fs::read_to_string(path)
            .map(|text| Source {
                path: path.to_path_buf(),
                text,
            })
            .map_err(|e| Diagnostic {
                severity: Severity::Error,
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                key: String::new(),
                message: format!("cannot read file: {e}"),
            })
    }

    /// 1-based (line, column) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    /// An error at `span` (or the whole file when `None`).
    pub fn error(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        self.at(Severity::Error, span, key, message)
    }

    pub fn warning(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        self.at(Severity::Warning, span, key, message)
    }

    fn at(
        &self,
        severity: Severity,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, column) = span.map_or((0, 0), |s| self.line_col(s.start));
        Diagnostic {
            severity,
            file: self.path.clone(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Parse TOML into `T`, turning a syntax or type error into a located diagnostic.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, Diagnostic> {
        toml::from_str(&self.text).map_err(|e| {
            let key = self.key_at(e.span());
            self.error(e.span(), &key, e.message().trim().to_string())
        })
    }

    /// Best-effort name of the key on the line a span starts at (`key = ...`).
    fn key_at(&self, span: Option<Range<usize>>) -> String {
        let Some(span) = span else {
            return String::new();
        };
        let start = self.text[..span.start.min(self.text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line = self.text[start..].lines().next().unwrap_or("");
        match line.split_once('=') {
            Some((k, _)) if !k.trim().starts_with('[') => k.trim().to_string(),
            _ => String::new(),
        }
    }
}

/// All diagnostics of a load, so callers can print every problem at once.
#[derive(Debug, Clone, Default, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// How many of the findings are errors.
    pub fn errors(&self) -> usize {
        self.0
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Source;

    #[test]
    fn line_and_column_are_one_based() {
        let s = Source {
            path: "x.toml".into(),
            text: "a = 1\nbb = 2\n".into(),
        };
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        assert_eq!(s.line_col(9), (2, 4));
    }

    #[test]
    fn parse_error_names_line_and_key() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            a: u32,
            b: u32,
        }
        let s = Source {
            path: "x.toml".into(),
            text: "a = 1\nb = \"two\"\n".into(),
        };
        let d = s.parse::<T>().unwrap_err();
        assert_eq!(d.line, 2);
        assert_eq!(d.key, "b");
        assert!(d.to_string().starts_with("x.toml:2:"), "{d}");
    }
}
